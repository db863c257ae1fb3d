"""Shared by the bad-input tests: the app with every channel on (fake platforms on loopback), signed
webhook posts, row counts, a capture of the server's log, and hypothesis strategies of payloads
built from the captured fixtures (tests/fixtures/telegram, tests/fixtures/whatsapp) with mutated fields."""

from __future__ import annotations

import copy
import json
import logging
import re
from contextlib import asynccontextmanager
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import func, select

from conversations.models import Contact, Message
from tests.conftest import FIXTURES, app_client, csrf_of, login
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.fakes.telegram_api import TOKEN

TELEGRAM_SECRET = "hardening-telegram-secret"
WHATSAPP_SECRET = "hardening-app-secret"
VERIFY_TOKEN = "hardening-verify-token"
GRAPH_TOKEN = "test-access-token"
TELEGRAM_FIXTURES = sorted((FIXTURES / "telegram").glob("*.json"))
WHATSAPP_FIXTURES = sorted((FIXTURES / "whatsapp").glob("*.json"))


def telegram_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "telegram" / f"{name}.json").read_text())


def whatsapp_fixture(name: str) -> dict:
    return json.loads((FIXTURES / "whatsapp" / f"{name}.json").read_text())


def all_channels(settings_for, telegram_api, graph_api, **overrides):
    """Settings with Telegram and WhatsApp configured against the fake platforms."""
    return settings_for(
        telegram_bot_token=TOKEN, telegram_webhook_secret=TELEGRAM_SECRET, telegram_api_base=telegram_api.base_url,
        whatsapp_access_token=GRAPH_TOKEN, whatsapp_app_secret=WHATSAPP_SECRET, whatsapp_verify_token=VERIFY_TOKEN,
        whatsapp_graph_api_base=graph_api.base_url, whatsapp_phone_number_id=FakeGraphApi.PHONE_NUMBER_ID,
        **overrides)


def raw(body: Any) -> bytes:
    """A body as bytes: given bytes as they are, str as UTF-8 (surrogates kept), else JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogatepass")
    return json.dumps(body).encode()  # ensure_ascii: "\u0000", "\ud800" travel as escapes


async def post_telegram(client, body: Any):
    return await client.post("/bots/telegram/webhook", content=raw(body),
                             headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
                                      "Content-Type": "application/json"})


async def post_whatsapp(client, body: Any):
    content = raw(body)
    return await client.post("/bots/whatsapp/webhook", content=content,
                             headers={"X-Hub-Signature-256": sign(content, WHATSAPP_SECRET),
                                      "Content-Type": "application/json"})


async def post_webchat(client, body: Any, token: str | None = None):
    """POST /chat/api/messages as the identity `token` (the cookie's value), or with no cookie."""
    from tests.webchat import COOKIE

    cookie = f"{COOKIE}={token}" if token is not None else ""
    return await client.post("/chat/api/messages", content=raw(body),
                             headers={"Content-Type": "application/json", "Cookie": cookie})


async def counts(client) -> tuple[int, int]:
    """(messages, contacts) stored: what a refused request must leave as it was."""
    async with client.app.state.rt.sessionmaker() as session:
        messages = (await session.execute(select(func.count()).select_from(Message))).scalar()
        contacts = (await session.execute(select(func.count()).select_from(Contact))).scalar()
    return messages, contacts


class ServerLog(logging.Handler):
    """Every record of the run, at DEBUG on the root logger: `problems` are the ERROR (and worse)
    records and the tracebacks (any record with exc_info or stack_info, or a message quoting one)."""

    def __init__(self, others_from: int = logging.NOTSET) -> None:
        """`others_from`: the level from which the root's other handlers (pytest's capture, which
        formats every record) still get records meanwhile; raise it for thousands of requests."""
        super().__init__(logging.DEBUG)
        self.count = 0
        self.problems: list[str] = []
        self.others_from = others_from
        self._others: list[tuple[logging.Handler, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        traceback = bool(record.exc_info or record.stack_info)
        if record.levelno >= logging.INFO or traceback:  # DEBUG texts (drivers' SQL) are many: not formatted
            text = record.getMessage()
            if record.levelno >= logging.ERROR or traceback or "Traceback (most recent call last)" in text:
                self.problems.append(f"{record.levelname} {record.name}: {text[:300]}")

    def __enter__(self) -> "ServerLog":
        root = logging.getLogger()
        self._level = root.level
        self._others = [(handler, handler.level) for handler in root.handlers]
        for handler, level in self._others:
            handler.setLevel(max(level, self.others_from))
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)
        for handler, level in self._others:
            handler.setLevel(level)


@asynccontextmanager
async def inbox_session(settings):
    """The app, a worker logged in, one conversation handed to them: (client, conversation id, csrf)."""
    from tests.webchat import Person

    async with app_client(settings) as client:
        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")
        await person.send("humain")
        assert (await login(client, settings.demo_worker_email, settings.demo_worker_password)).status_code == 303
        inbox = await client.get("/inbox")
        conversation_id = int(re.search(r'data-conversation="(\d+)"', inbox.text).group(1))
        yield client, conversation_id, csrf_of(inbox.text), person


# Hypothesis strategies -------------------------------------------------------------------------

NASTY_TEXT = st.sampled_from(["\u0000", "a\u0000b", "\ud800", "x\udfffy", "\ufeff", "\u202e", "%00", "'; --",
                              "\\u0000", "💬" * 3, "\r\n", " ", ""])
SHORT_TEXT = st.one_of(NASTY_TEXT, st.text(max_size=40), st.builds(lambda a, b: a + b, st.text(max_size=10), NASTY_TEXT))
LONG_TEXT = st.builds(lambda n, c: c * n, st.sampled_from([4097, 4200, 9000]), st.sampled_from(["a", "\u0000", "é"]))
TEXT = st.one_of(SHORT_TEXT, LONG_TEXT)  # bodies and forms; SHORT_TEXT for query strings (URLs stay < 64 kB)
HUGE_INT = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**200, -1, 0])
NUMBER = st.one_of(st.integers(), HUGE_INT, st.floats(allow_nan=False, allow_infinity=False))
ODD_NUMBER_JSON = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "1" * 400, "-0", "1.5e-400"])
DEEP = st.sampled_from(["[" * 5000, "{\"a\":" * 5000, "[" * 5000 + "]" * 5000, "[" * 900 + "]" * 900])
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, TEXT)
ANY_JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=8)
GARBAGE = st.one_of(st.binary(max_size=200), DEEP.map(str.encode),
                    st.sampled_from([b"", b"null", b"[]", b"{}", b"\xff\xfe", b'{"a":"\xed\xa0\x80"}', b"\x00" * 8]))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a JSON document (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


def _set(document: Any, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


@st.composite
def mutated(draw, documents: list[dict]) -> bytes:
    """A captured payload with one to three fields replaced (nasty text, huge or odd numbers, wrong
    types, deep nesting), serialised; sometimes a raw JSON token (NaN, 400 digits) is spliced in."""
    document = copy.deepcopy(draw(st.sampled_from(documents)))
    paths = _paths(document)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        try:
            _set(document, path, draw(st.one_of(TEXT, NUMBER, ANY_JSON, st.just([]), st.just({}))))
        except (KeyError, IndexError, TypeError):
            pass  # the path went away with an earlier change
        paths = _paths(document) or [path]
    body = json.dumps(document)
    if draw(st.integers(0, 5)) == 0:
        marker = "__ODD__"
        path = draw(st.sampled_from(_paths(document) or [("x",)]))
        try:
            _set(document, path, marker)
            body = json.dumps(document).replace(f'"{marker}"', draw(st.one_of(ODD_NUMBER_JSON, DEEP)))
        except (KeyError, IndexError, TypeError):
            pass
    return body.encode("utf-8", "surrogatepass")


def documents(paths) -> list[dict]:
    return [json.loads(path.read_text()) for path in paths if path.name != "malformed.json"]


UPDATE_ID = st.one_of(st.integers(1, 2**40), HUGE_INT)


@st.composite
def telegram_shaped(draw) -> bytes:
    """A private text message, caption or button press with drawn values in the fields that get
    stored: mostly accepted, so the storing path (not only the parser) meets the odd values."""
    kind = draw(st.sampled_from(["text", "callback_query", "photo", "location"]))
    update = telegram_fixture(kind)
    update["update_id"] = draw(UPDATE_ID)
    chat_id = draw(st.one_of(st.integers(1, 2**40), HUGE_INT))
    if kind == "callback_query":
        update["callback_query"]["data"] = draw(TEXT)
        update["callback_query"]["id"] = draw(st.one_of(st.just("q1"), SHORT_TEXT))
        update["callback_query"]["message"]["chat"]["id"] = chat_id
    else:
        message = update["message"]
        message["chat"]["id"] = chat_id
        if kind == "text":
            message["text"] = draw(TEXT)
        elif kind == "photo":
            message["caption"] = draw(TEXT)
        else:
            message["location"] = {"latitude": draw(NUMBER), "longitude": draw(NUMBER)}
        message["from"]["language_code"] = draw(st.one_of(st.just("fr"), SHORT_TEXT))
    return json.dumps(update).encode()


@st.composite
def whatsapp_shaped(draw) -> bytes:
    """A text, button, list reply or location from a drawn number, with drawn stored values."""
    kind = draw(st.sampled_from(["text", "interactive_button_reply", "interactive_list_reply", "location",
                                 "button_template_reply", "status_failed", "status_sent", "status_delivered"]))
    body = whatsapp_fixture(kind)
    value = body["entry"][0]["changes"][0]["value"]
    if kind.startswith("status_"):
        status = value["statuses"][0]
        status["id"] = draw(st.one_of(st.just("wamid.x"), SHORT_TEXT))
        if kind == "status_failed":
            status["errors"] = draw(st.one_of(ANY_JSON, st.lists(ANY_JSON, max_size=2)))
        # our biz_opaque_callback_data echoed (conversations/confirmations.py): ours-looking,
        # naming rows that exist or not, foreign, oversized, not a string, absent
        tracking = draw(st.one_of(
            st.builds(lambda org, row: f"ob:{org}:{row}", st.integers(-2, 3), st.one_of(st.integers(-5, 60), HUGE_INT)),
            st.builds(lambda t: "ob:" + t, SHORT_TEXT), TEXT, st.text(min_size=500, max_size=600),
            st.just("ob:1:" + "9" * 600), ANY_JSON, st.none()))
        if tracking is not None or draw(st.booleans()):
            status["biz_opaque_callback_data"] = tracking
        if draw(st.booleans()):
            status["recipient_id"] = draw(st.one_of(st.integers(33600000000, 33699999999).map(str), SHORT_TEXT, ANY_JSON))
        if draw(st.booleans()):
            value["metadata"]["phone_number_id"] = draw(st.one_of(st.just("100000000000002"), SHORT_TEXT))
        return json.dumps(body).encode()
    message = value["messages"][0]
    message["id"] = "wamid.FUZZ." + draw(st.one_of(st.integers(0, 10**6).map(str), SHORT_TEXT))
    message["from"] = draw(st.one_of(st.integers(33600000000, 33699999999).map(str), SHORT_TEXT))
    if kind == "text":
        message["text"]["body"] = draw(TEXT)
    elif kind == "location":
        message["location"].update(latitude=draw(NUMBER), longitude=draw(NUMBER))
    elif kind == "button_template_reply":
        message["button"].update(text=draw(TEXT), payload=draw(st.one_of(st.none(), TEXT)))
    else:
        reply = message["interactive"]["button_reply" if "button" in kind else "list_reply"]
        reply.update(id=draw(TEXT), title=draw(st.one_of(TEXT, ANY_JSON)))
    return json.dumps(body).encode()
