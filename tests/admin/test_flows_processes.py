"""A publish reaches every process within 2 s without restart: two real app processes on
PostgreSQL + Redis (as tests/e2e/test_live_across_processes.py), the admin publishes on A, a new
person on B's /chat gets the new welcome text. And the periodic fallback check, in one process."""

from __future__ import annotations

import asyncio
import html
import re
import time
import uuid

import httpx
import pytest

from tests.conftest import app_client, csrf_of
from tests.webchat import COOKIE, new_identity
from tests.e2e.test_live_across_processes import POSTGRES_URL, REDIS_URL, two_processes  # noqa: F401

PUBLISH_TO_VISIBLE_LIMIT = 2.0


async def first_bot_text(client: httpx.AsyncClient, text: str = "bonjour", timeout: float = 5.0) -> str:
    """A new person (a new web chat identity) writes on the web chat; the text of the bot's first message."""
    token, _ = await new_identity(client)
    headers = {"Cookie": f"{COOKIE}={token}"}
    response = await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, "text": text},
                                 headers=headers)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = (await client.get("/chat/api/history", headers=headers)).json()["messages"]
        bot = [m for m in history if m["from"] == "bot"]
        if bot:
            return bot[0]["text"]
        await asyncio.sleep(0.02)
    raise AssertionError("the bot did not answer")


async def publish_welcome(admin: httpx.AsyncClient, text: str) -> None:
    page = await admin.get("/admin/flows/welcome")
    fields = {"csrf_token": csrf_of(page.text), "mode": "form",
              "version": re.search(r'name="version" value="(\d+)"', page.text).group(1),
              "source": html.unescape(re.search(r'<textarea name="source" hidden[^>]*>(.*?)</textarea>',
                                                page.text, flags=re.S).group(1)),
              "f|hello|say": text}
    saved = await admin.post("/admin/flows/welcome/save", data=fields)
    assert saved.status_code == 303, saved.text
    preview = await admin.get("/admin/flows/welcome/publish")
    version = re.search(r'name="version" value="(\d+)"', preview.text).group(1)
    published = await admin.post("/admin/flows/welcome/publish",
                                 data={"csrf_token": csrf_of(preview.text), "version": version})
    assert published.status_code == 303, published.text


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL), reason="needs PostgreSQL and Redis shared by two processes")
async def test_publish_on_a_reaches_b_within_2_s(two_processes):  # noqa: F811
    a, b = two_processes
    timeout = httpx.Timeout(15)
    async with httpx.AsyncClient(base_url=a.url, timeout=timeout) as admin, \
            httpx.AsyncClient(base_url=b.url, timeout=timeout) as person:
        page = await admin.get("/inbox/login")
        response = await admin.post("/inbox/login", data={"email": "admin@demo.allervers.fr",
                                                          "password": "allervers-demo",
                                                          "csrf_token": csrf_of(page.text)})
        assert response.status_code == 303, response.text
        assert "Bonjour ! Je suis l'assistant" in await first_bot_text(person)

        measured, replies = [], []
        for run in range(1, 6):
            text = f"👋 Version {run} de l'accueil de {{{{ organisation }}}}."
            await publish_welcome(admin, text)
            published_at = time.monotonic()
            while True:
                asked_at = time.monotonic()
                said = await first_bot_text(person)
                if f"Version {run} de l'accueil" in said:
                    measured.append(time.monotonic() - published_at)
                    replies.append(time.monotonic() - asked_at)  # of which the person's own round trip
                    break
                assert time.monotonic() - published_at < PUBLISH_TO_VISIBLE_LIMIT, \
                    f"B still serves the old welcome {time.monotonic() - published_at:.2f} s after the publish"
        print("publish on A -> new welcome received on B's /chat (s):", ", ".join(f"{t:.3f}" for t in measured),
              "| of which the chat round trip (s):", ", ".join(f"{t:.3f}" for t in replies))
        assert max(measured) < PUBLISH_TO_VISIBLE_LIMIT
        for process in (a, b):
            assert "Traceback" not in process.log(), process.log()


async def publish_rebonjour_in_the_store(rt) -> int:
    """Write and publish a "👋 Rebonjour !" welcome straight in the store, without its announcement
    (as a lost message or an earlier run would leave it); the organisation's id."""
    from admin import flow_store
    from flows.library import shipped_sources

    source = shipped_sources()["welcome"].replace("👋 Bonjour !", "👋 Rebonjour !")
    async with rt.sessionmaker() as session, session.begin():
        organisation_id = await rt.default_organisation_id(session)
        await flow_store.save_draft(session, organisation_id, "welcome", source, 0, None)
        await flow_store.publish(session, organisation_id, "welcome", 1, ["test"], None)
    return organisation_id


async def test_missed_notification_caught_by_the_periodic_check(settings_for):
    """A revision written without its announcement (a lost message) is served after the check."""
    async with app_client(settings_for(flows_refresh_seconds=0.3)) as client:
        rt = client.app.state.rt
        organisation_id = await publish_rebonjour_in_the_store(rt)
        assert "Rebonjour" not in rt.engine_for(organisation_id).flows["welcome"].steps["hello"].say["fr"]
        deadline = time.monotonic() + 3
        while "Rebonjour" not in rt.engine_for(organisation_id).flows["welcome"].steps["hello"].say["fr"]:
            assert time.monotonic() < deadline, "the periodic check did not load the revision"
            await asyncio.sleep(0.05)
        from tests.webchat import Person

        said = await Person(client).send("bonjour")
        assert "👋 Rebonjour !" in said[0]["text"]


async def test_a_server_started_after_a_publish_still_understands_a_commune_by_name(settings_for):
    """The published flows are loaded at start-up before the directory gives the engines their
    commune resolver: the organisation's engine must share it (found by tests/scaleout/
    test_processes.py: a process restarted after a publish answered "Écrivez votre code postal"
    to "Rezé", for every person of that organisation)."""
    from tests.e2e.test_places_refresh import food_near_reze
    from tests.webchat import Person

    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        organisation_id = await publish_rebonjour_in_the_store(rt)
    async with app_client(settings) as client:  # the next start: the revision is loaded at once
        rt = client.app.state.rt
        assert organisation_id in rt.flow_engines
        answer = await food_near_reze(Person(client), first=True)
        assert "Écrivez votre code postal ou le nom de votre commune" not in answer, answer
        assert "Rezé" in answer, answer
