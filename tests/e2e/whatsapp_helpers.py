"""Helpers for WhatsApp end-to-end tests: Meta-shaped webhook bodies from the fixtures, signed posts,
the inbox as a worker sees it, and direct database changes (moving the clock back) from the test thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import re
from pathlib import Path

import httpx

from tests.conftest import csrf_of, wait_until
from tests.fakes.graph_api import FakeGraphApi, sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
SECRET = "test-app-secret"
VERIFY = "verify-me"
TOKEN = "test-access-token"
NUMBER = FakeGraphApi.PHONE_NUMBER_ID
OTHER_NUMBER = FakeGraphApi.OTHER_PHONE_NUMBER_ID
PERSON = "33639980001"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _with_message(name: str, ident: str, person: str, number: str, change) -> dict:
    body = copy.deepcopy(fixture(name))
    value = body["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = number
    message = value["messages"][0]
    message["id"], message["from"] = f"wamid.IN.{ident}", person
    value["contacts"][0]["wa_id"] = person
    change(message)
    return body


def text(ident: str, body: str, person: str = PERSON, number: str = NUMBER) -> dict:
    return _with_message("text", ident, person, number, lambda m: m["text"].update(body=body))


def button(ident: str, value: str, title: str = "…", person: str = PERSON, number: str = NUMBER) -> dict:
    return _with_message("interactive_button_reply", ident, person, number,
                         lambda m: m["interactive"].update(button_reply={"id": value, "title": title}))


def list_reply(ident: str, value: str, title: str = "…", person: str = PERSON, number: str = NUMBER) -> dict:
    return _with_message("interactive_list_reply", ident, person, number,
                         lambda m: m["interactive"].update(list_reply={"id": value, "title": title}))


def voice(ident: str, media_id: str, person: str = PERSON, number: str = NUMBER) -> dict:
    return _with_message("audio_voice", ident, person, number, lambda m: m["audio"].update(id=media_id))


def status(wamid: str, state: str, code: int | None = None) -> dict:
    body = copy.deepcopy(fixture("status_failed" if state == "failed" else f"status_{state}"))
    entry = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    entry["id"] = wamid
    if code is not None:
        entry["errors"][0]["code"] = code
    return body


def post(client: httpx.Client, body: dict, secret: str | None = SECRET) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(raw, secret)
    return client.post("/bots/whatsapp/webhook", content=raw, headers=headers)


def whatsapp_settings(settings_for, graph: FakeGraphApi, **overrides):
    return settings_for(whatsapp_access_token=TOKEN, whatsapp_app_secret=SECRET, whatsapp_verify_token=VERIFY,
                        whatsapp_graph_api_base=graph.base_url, whatsapp_phone_number_id=NUMBER, **overrides)


def interactive(body: dict) -> str | None:
    return body["interactive"]["type"] if body.get("type") == "interactive" else None


def body_text(body: dict) -> str:
    if body.get("type") == "text":
        return body["text"]["body"]
    if body.get("type") == "interactive":
        return body["interactive"]["body"]["text"]
    return ""


def sent_to(graph: FakeGraphApi, person: str = PERSON, containing: str = "") -> list[dict]:
    return [b for b in graph.requests_for(person) if containing in body_text(b)]


def wait_sent(graph: FakeGraphApi, containing: str, person: str = PERSON, timeout: float = 10.0) -> dict:
    return wait_until(lambda: (sent_to(graph, person, containing) or [None])[-1], timeout=timeout)


def login(client: httpx.Client, settings) -> None:
    page = client.get("/inbox/login")
    response = client.post("/inbox/login", data={"email": settings.demo_worker_email,
                                                 "password": settings.demo_worker_password,
                                                 "csrf_token": csrf_of(page.text)})
    assert response.status_code in (200, 303)


def first_conversation(client: httpx.Client) -> int:
    inbox = client.get("/inbox")
    assert inbox.status_code == 200
    return int(re.search(r'data-conversation="(\d+)"', inbox.text).group(1))


def reply(client: httpx.Client, conversation_id: int, text_: str) -> None:
    page = client.get(f"/inbox/conversations/{conversation_id}")
    response = client.post(f"/inbox/conversations/{conversation_id}/reply",
                           data={"text": text_, "csrf_token": csrf_of(page.text)})
    assert response.status_code in (200, 303), response.text


def in_db(settings, work):
    """Run `await work(session)` in one transaction, from the test thread (its own engine and loop)."""
    from kernel.database import make_engine, make_sessionmaker

    async def run():
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    # Its own thread: the caller may be inside an event loop (Playwright's sync API runs one).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()
