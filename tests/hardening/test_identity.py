"""The web chat identity is issued by the server (conversations/webchat_identity.py), travels in an
HttpOnly SameSite cookie only, and an old page's uid is exchanged once for one (its conversation
goes on). Through the real HTTP routes, on SQLite and on PostgreSQL + Redis; the page in Chromium."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from kernel.database import utcnow
from conversations.audio import silent_ogg_opus
from conversations.models import Address, Contact, Message
from conversations.webchat_identity import COOKIE, WebchatIdentity, purge_unused_identities
from tests.browser import assert_accessible, chromium, csp_violations, phone_page  # noqa: F401
from tests.conftest import LiveServer, app_client, wait_until
from tests.webchat import Person, new_identity


async def identities(client) -> list[WebchatIdentity]:
    async with client.app.state.rt.sessionmaker() as session:
        return list((await session.execute(select(WebchatIdentity))).scalars().all())


async def count(client, model) -> int:
    async with client.app.state.rt.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar()


async def test_the_server_issues_the_identity_in_an_http_only_cookie(settings_for):
    async with app_client(settings_for()) as client:
        response = await client.post("/chat/api/identity", json={})
        assert response.status_code == 200 and response.json() == {"ok": True, "issued": True}
        set_cookie = response.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/chat", "Max-Age="):
            assert attribute in set_cookie
        token = client.cookies.get(COOKIE)
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # token_urlsafe(32): 256 random bits
        assert token not in response.text  # never in a body the page could read
        (row,) = await identities(client)
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert re.fullmatch(r"[0-9a-f]{32}", row.external_id) and row.external_id not in token
        # Asked again with the cookie: the same identity, nothing new written.
        again = await client.post("/chat/api/identity", json={})
        assert again.json() == {"ok": True, "issued": False} and "set-cookie" not in again.headers
        assert len(await identities(client)) == 1


async def test_every_chat_route_refuses_a_missing_or_made_up_identity(settings_for):
    async with app_client(settings_for()) as client:
        person = await Person.joined(client)
        await person.send("/start")
        media = (await client.post("/chat/api/voice", data={"client_id": "voice-000001"}, headers=person.headers,
                                   files={"audio": ("v.ogg", silent_ogg_opus(1), "audio/ogg")})).json()["media_id"]
        messages_before = await count(client, Message)
        routes = [
            ("POST", "/chat/api/messages", {"json": {"client_id": "abcdefgh", "text": "bonjour", "uid": person.uid}}),
            ("GET", "/chat/api/history", {"params": {"uid": person.uid}}),
            ("GET", "/chat/api/stream", {"params": {"uid": person.uid}}),
            ("GET", f"/chat/api/media/{media}", {"params": {"uid": person.uid}}),
            ("POST", "/chat/api/voice", {"data": {"client_id": "abcdefgh", "uid": person.uid},
                                         "files": {"audio": ("v.ogg", silent_ogg_opus(1), "audio/ogg")}}),
        ]
        # The external id (in logs, in lock keys) is no credential, nor are 8 spaces, nor a guess.
        for cookie in ("", f"{COOKIE}={person.uid}", f"{COOKIE}=" + " " * 8, f"{COOKIE}=" + "A" * 43):
            for method, path, options in routes:
                response = await client.request(method, path, headers={"Cookie": cookie}, **options)
                assert response.status_code == 401, (cookie, path, response.status_code)
                assert "identity" in response.json()["detail"]
        assert await count(client, Message) == messages_before


async def test_the_body_and_the_query_string_cannot_choose_the_person(settings_for):
    async with app_client(settings_for()) as client:
        alice, bob = await Person.joined(client), await Person.joined(client)
        await alice.send("/start")
        await bob.send("/start")
        contacts = await count(client, Contact)
        # Bob names Alice in the body and in the query string: he still writes and reads as Bob.
        response = await client.post("/chat/api/messages", headers=bob.headers,
                                     json={"uid": alice.uid, "client_id": "bob-as-alice", "text": "je suis Alice"})
        assert response.status_code == 200
        await client.app.state.rt.drain()
        assert await count(client, Contact) == contacts
        async with client.app.state.rt.sessionmaker() as session:
            contact_of = (await session.execute(select(Message.contact_id).where(
                Message.external_id == f"{bob.uid}:bob-as-alice"))).scalar_one()
            bob_contact = (await session.execute(select(Address.contact_id).where(
                Address.external_id == bob.uid))).scalar_one()
        assert contact_of == bob_contact
        history = (await client.get("/chat/api/history", params={"uid": alice.uid}, headers=bob.headers)).json()
        assert any(m["text"] == "je suis Alice" for m in history["messages"])
        assert not any(m["text"] == "je suis Alice" for m in await alice.history())


async def old_page_uid(client) -> tuple[str, list[dict]]:
    """A visitor of the previous version: a conversation whose address is a uid the page chose and
    kept in localStorage (made here through the API, then its identity row removed, as before
    identities existed)."""
    person = await Person.joined(client)
    await person.send("/start")
    await person.send(choice="oui")
    history = await person.history()
    async with client.app.state.rt.sessionmaker() as session, session.begin():
        await session.execute(delete(WebchatIdentity).where(WebchatIdentity.external_id == person.uid))
    assert (await client.get("/chat/api/history", headers=person.headers)).status_code == 401
    return person.uid, history


async def test_an_old_page_exchanges_its_uid_once_and_its_conversation_goes_on(settings_for):
    async with app_client(settings_for()) as client:
        legacy, history = await old_page_uid(client)
        contacts = await count(client, Contact)
        token, answer = await new_identity(client, legacy_uid=legacy)
        assert answer == {"ok": True, "issued": True, "legacy": "claimed"}
        visitor = Person(client, token=token)
        assert await visitor.history() == history  # the conversation shows
        visitor.seen = len([m for m in history if m["from"] == "bot"])
        said = await visitor.send(choice="parler")
        assert said and await count(client, Contact) == contacts  # the same contact goes on
        assert visitor.uid == legacy
        (claimed,) = [row for row in await identities(client) if row.external_id == legacy]
        assert claimed.legacy is True

        # The same uid a second time (a copy of the old page, or someone who read it): refused.
        token2, answer2 = await new_identity(client, legacy_uid=legacy)
        assert answer2 == {"ok": True, "issued": True, "legacy": "refused"}
        stranger = Person(client, token=token2)
        assert await stranger.history() == [] and stranger.uid != legacy
        # Unknown uids, and the external id of a current identity, are refused too.
        for uid in ("0" * 32, "x\u0000" * 8, "é" * 70, stranger.uid):
            assert (await new_identity(client, legacy_uid=uid))[1]["legacy"] == "refused"
        # With a valid cookie, a refused exchange keeps that identity (no new cookie).
        response = await client.post("/chat/api/identity", json={"legacy_uid": legacy}, headers=visitor.headers)
        assert response.json() == {"ok": True, "issued": False, "legacy": "refused"}
        assert "set-cookie" not in response.headers
        for bad in (b"{oops", b"[" * 2000):
            response = await client.post("/chat/api/identity", content=bad, headers={"Cookie": ""})
            assert response.status_code in (400, 413)


async def test_identities_nobody_uses_are_purged(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        writer, idle = await Person.joined(client), await Person.joined(client)
        await writer.send("/start")
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(WebchatIdentity).values(created_at=utcnow() - timedelta(days=2)))
        assert await purge_unused_identities(rt) == 1
        assert [row.external_id for row in await identities(client)] == [writer.uid]
        assert (await client.get("/chat/api/history", headers=idle.headers)).status_code == 401
        assert (await client.get("/chat/api/history", headers=writer.headers)).status_code == 200


@pytest.mark.browser
def test_the_page_exchanges_an_old_uid_and_never_puts_the_identity_in_a_url(settings_for, chromium):  # noqa: F811
    import httpx
    from playwright.sync_api import expect

    from tests.e2e.whatsapp_helpers import in_db

    settings = settings_for()
    with LiveServer(settings) as live:
        # A visitor of the previous version: a conversation under a uid the old page kept in
        # localStorage (made through the API, then its identity row removed, as before identities).
        with httpx.Client(base_url=live.url, timeout=30) as old_browser:
            assert old_browser.post("/chat/api/identity", json={}).status_code == 200
            for body in ({"client_id": "legacy-000001", "text": "/start"},
                         {"client_id": "legacy-000002", "choice": "oui"}):
                assert old_browser.post("/chat/api/messages", json=body).status_code == 200
            wait_until(lambda: any("Que voulez-vous faire" in m["text"] for m in
                                   old_browser.get("/chat/api/history").json()["messages"]), timeout=15)

        async def forget(session):
            (uid,) = (await session.execute(select(WebchatIdentity.external_id))).scalars().all()
            await session.execute(delete(WebchatIdentity))
            return uid

        legacy = in_db(settings, forget)

        async def contacts(session):
            return (await session.execute(select(func.count()).select_from(Contact))).scalar()

        page = phone_page(chromium, base_url=live.url)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        page.add_init_script(f"if (!sessionStorage.getItem('seeded')) {{ sessionStorage.setItem('seeded', '1');"
                             f" localStorage.setItem('allervers-uid', '{legacy}'); }}")
        page.goto("/chat")
        expect(page.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()
        expect(page.locator(".bubble.me").filter(has_text="/start")).to_be_visible()  # the old history
        wait_until(lambda: page.evaluate("localStorage.getItem('allervers-uid')") is None, timeout=10)
        page.get_by_role("button", name="🙋 Parler à quelqu'un").last.click()
        expect(page.locator(".bubble.them").filter(has_text="C'est à quel sujet")).to_be_visible()  # live reply
        assert_accessible(page)
        assert in_db(settings, contacts) == 1  # the same person, not a new one
        assert not any("uid" in url or legacy in url for url in urls), urls
        assert page.js_errors == [] and csp_violations(page) == [] and page.console_errors == []
        page.context.close()
