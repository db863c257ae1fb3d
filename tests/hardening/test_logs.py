"""Nothing personal in any log line, at any level, on both backends.

Every record of every logger (the project's, SQLAlchemy's engine and pool, aiosqlite, asyncpg,
uvicorn, httpx, httpcore, aiogram, asyncio…) is captured at DEBUG and formatted the way a handler
prints it (message + traceback); no line may hold the canary name, phone number or the web chat
identity. Database errors are made to carry the canary (the drivers put it in their messages: the
test checks they did), below the routes where the routes now refuse such input, and through the
app's own error paths (receive's "handling failed", uvicorn's "Exception in ASGI application", the
outbox's failures).
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from contextlib import contextmanager

import httpx
from sqlalchemy import insert, select, text, update

from bots.base import InboundMessage
from conversations.models import Address, Contact, Conversation
from conversations.receive import receive
from handoff.models import Organisation
from tests.conftest import LiveServer, app_client, csrf_of, login
from tests.fakes.telegram_api import FakeTelegram
from tests.webchat import Person

NAME, PHONE = "Zoé Quintrelle", "0612345678"
CANARY = f"{NAME} {PHONE}"
NEEDLES = ["Quintrelle", PHONE, "06 12 34 56 78"]
LOUD = ["", "sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "sqlalchemy.orm", "asyncpg", "aiosqlite",
        "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore", "aiogram", "aiohttp", "asyncio",
        "starlette", "fastapi", "redis", "multipart", "allervers", "bots", "conversations", "handoff", "flows"]
log = logging.getLogger("conversations.hardening_test")  # like the app's own handlers
TG_SECRET = "tg-logs-secret"
TG_CHAT = 777000111


class Everything(logging.Handler):
    """Every record once, formatted as a handler prints it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.records: list[logging.LogRecord] = []  # kept alive: their ids stay unique
        self.seen: set[int] = set()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if id(record) in self.seen:
            return
        self.seen.add(id(record))
        self.records.append(record)
        self.lines.append(self.format(record))

    def names(self) -> set[str]:
        return {record.name for record in self.records}

    def check(self, *secrets: str) -> int:
        """No line holds a needle; returns how many lines were checked."""
        assert self.lines, "nothing was logged: the capture is broken"
        for line in self.lines:
            for needle in (*NEEDLES, *secrets):
                assert needle not in line, f"{needle!r} logged:\n{line[:3000]}"
        return len(self.lines)


@contextmanager
def everything_at_debug():
    handler = Everything()
    levels = {name: logging.getLogger(name).level for name in LOUD}
    attached = [logging.getLogger()]
    attached += [logging.getLogger(name) for name, logger in logging.root.manager.loggerDict.items()
                 if isinstance(logger, logging.Logger) and not logger.propagate]
    for name in LOUD:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for logger in attached:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in attached:
            logger.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def formatted(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


async def test_database_errors_carrying_a_canary_leave_no_trace_in_any_log_line(settings_for, backend):
    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        with everything_at_debug() as logs:
            raw: list[str] = []

            async def fails(label: str, work) -> None:
                try:
                    async with rt.sessionmaker() as session, session.begin():
                        await work(session)
                except Exception as error:  # as the app's handlers do: logged with its traceback
                    raw.append(formatted(error))
                    log.exception("%s failed", label)
                else:
                    raise AssertionError(f"{label}: no database error")

            async with rt.sessionmaker() as session, session.begin():
                organisation = (await session.execute(select(Organisation.id))).scalar()
                contact = Contact(organisation_id=organisation)
                session.add(contact)
                await session.flush()
                contact_id = contact.id

            async def not_a_boolean(session):
                await session.execute(insert(Contact).values(organisation_id=organisation, consent=CANARY))

            async def unique_violation(session):
                for _ in range(2):
                    await session.execute(insert(Address).values(contact_id=contact_id, channel="webchat",
                                                                 external_id=CANARY))

            async def lone_surrogate(session):
                await session.execute(text("SELECT :value"), {"value": CANARY + " \ud800"})

            async def integer_out_of_range(session):
                await session.execute(update(Contact).where(Contact.id == contact_id)
                                      .values(organisation_id=int("1" + PHONE) * 10 ** 20))

            await fails("a value of the wrong type", not_a_boolean)
            await fails("a unique violation", unique_violation)
            await fails("a lone surrogate", lone_surrogate)
            await fails("an integer out of range", integer_out_of_range)
            if backend == "postgres":
                async def nul_in_text(session):
                    await session.execute(update(Contact).where(Contact.id == contact_id).values(locale="\x00" + CANARY))

                async def too_long_for_its_column(session):
                    await session.execute(insert(Address).values(contact_id=contact_id, channel="webchat",
                                                                 external_id=CANARY * 10))

                await fails("a NUL in text", nul_in_text)
                await fails("a value too long for its column", too_long_for_its_column)

            # The app's own error path: receive() whose handling fails ("handling failed; storing the
            # message unhandled"), then whose unhandled storing fails too (unless such text is cleaned
            # before it is stored: then it is stored, and the logs must still be clean).
            uid = uuid.uuid4().hex
            try:
                await receive(rt, InboundMessage(channel="webchat", user_id=uid, external_id=f"{uid}:c1",
                                                 text=f"{CANARY} \ud800"))
            except Exception:
                log.exception("receive failed")
            await rt.drain()

            # The test can fail: the drivers did put the canary in their errors.
            assert any(NAME in r or PHONE in r for r in raw)
            if backend == "postgres":
                assert sum(NAME in r or PHONE in r for r in raw) >= 3  # asyncpg: bind errors and DETAIL
            assert sum("Traceback" in line for line in logs.lines) >= len(raw)
            checked = logs.check(uid)
            assert "sqlalchemy.engine.Engine" in logs.names()
            assert ("aiosqlite" in logs.names()) == (backend == "sqlite")
        print(f"\n[{backend}] database errors: {checked} log lines checked, {len(raw)} errors carried the canary "
              f"before scrubbing: {sum(NAME in r or PHONE in r for r in raw)}")


async def test_an_unhandled_error_logged_by_uvicorn_is_scrubbed(settings_for, backend):
    """A database error nobody catches reaches uvicorn ("Exception in ASGI application")."""
    settings = settings_for()
    live = LiveServer(settings)

    @live.app.get("/__test__/unhandled-database-error")
    async def unhandled(uid: str):  # a route of this test only: an error the app would not catch
        async with live.rt.sessionmaker() as session, session.begin():
            await session.execute(insert(Contact).values(organisation_id=1, consent=f"{CANARY} {uid}"))

    uid = uuid.uuid4().hex

    def request(method: str, path: str, **kwargs) -> httpx.Response:
        with httpx.Client(base_url=live.url, timeout=30) as client:  # uvicorn closes a connection after a 500
            return client.request(method, path, **kwargs)

    with everything_at_debug() as logs:
        with live:
            assert request("GET", "/__test__/unhandled-database-error", params={"uid": uid}).status_code == 500
            # Through the real web chat route: a lone surrogate in the text (a 4xx once refused).
            body = json.dumps({"uid": uid, "client_id": "client-surrogate", "text": CANARY + " \ud800"})
            with httpx.Client(base_url=live.url, timeout=30) as chat:  # a web chat identity first (cookie)
                assert chat.post("/chat/api/identity").status_code == 200
                response = chat.post("/chat/api/messages", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code in (200, 400, 422, 500)
            request("GET", "/chat/api/history", params={"uid": uid})
            request("GET", "/healthz")
        assert any(r.name == "uvicorn.error" and r.exc_info for r in logs.records), "uvicorn logged no traceback"
        checked = logs.check(uid)
    print(f"\n[{backend}] uvicorn: {checked} log lines checked")


async def test_a_whole_conversation_at_debug_logs_nothing_personal(settings_for, backend):
    async with FakeTelegram() as telegram:
        settings = settings_for(telegram_bot_token=telegram.token, telegram_webhook_secret=TG_SECRET,
                                telegram_api_base=telegram.base_url, delivery_base_backoff=0.01)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            with everything_at_debug() as logs:
                person = Person(client)
                await person.send("/start")
                await person.send(choice="oui")
                await person.send(f"Bonjour, je suis {CANARY}, zoe.quintrelle@example.org")
                await person.send("humain")

                async def telegram_says(update_id: int, words: str) -> None:
                    update = {"update_id": update_id, "message": {
                        "message_id": update_id, "date": 1795339805, "text": words,
                        "chat": {"id": TG_CHAT, "type": "private", "first_name": "Zoé"},
                        "from": {"id": TG_CHAT, "is_bot": False, "first_name": "Zoé", "language_code": "fr"}}}
                    response = await client.post("/bots/telegram/webhook", content=json.dumps(update), headers={
                        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
                    assert response.status_code == 200

                await telegram_says(1, "/start")
                await telegram_says(2, f"Je m'appelle {CANARY}")
                await telegram_says(3, "humain")
                await rt.drain()

                assert (await login(client, settings.demo_worker_email, settings.demo_worker_password)).status_code == 303
                async with rt.sessionmaker() as session:
                    conversations = (await session.execute(
                        select(Conversation.id, Address.channel).join(Address, Address.id == Conversation.address_id)
                        .order_by(Conversation.id))).all()
                for conversation_id, channel in conversations:
                    page = await client.get(f"/inbox/conversations/{conversation_id}")
                    assert page.status_code == 200
                    if channel == "telegram":  # the outbox's failures: two 5xx retried, then a refusal
                        telegram.fail_next("sendMessage", 500, times=2)
                    response = await client.post(f"/inbox/conversations/{conversation_id}/reply", data={
                        "text": f"Bonjour {CANARY}, je vous rappelle au {PHONE}", "csrf_token": csrf_of(page.text)})
                    assert response.status_code in (200, 303)
                    await rt.drain()
                    await client.post(f"/inbox/conversations/{conversation_id}/note", data={
                        "text": f"Note : {CANARY}", "csrf_token": csrf_of(page.text)})
                    if channel == "telegram":
                        telegram.fail_next("sendMessage", 400)
                        await client.post(f"/inbox/conversations/{conversation_id}/reply", data={
                            "text": f"Encore {CANARY}", "csrf_token": csrf_of(page.text)})
                        await rt.drain()
                await client.get("/chat/api/history", params={"uid": person.uid})
                await rt.drain()

                assert any(PHONE in t for t in telegram.sent_texts(TG_CHAT))  # the reply went out
                assert any(PHONE in m["text"] for m in await person.bot_lines())
                checked = logs.check(person.uid, str(TG_CHAT), "zoe.quintrelle")
                assert {"sqlalchemy.engine.Engine", "conversations.deliver"} <= logs.names()
        print(f"\n[{backend}] conversation: {checked} log lines checked")
