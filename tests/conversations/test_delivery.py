"""Nothing lost: ordered delivery with retries, 429 retry_after, failures shown, crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time

from sqlalchemy import select, update

from conversations.models import Contact, Message
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram

SECRET = "secret-for-tests"


def start_update(update_id: int, chat_id: int = 777, text: str = "/start") -> bytes:
    return json.dumps({"update_id": update_id, "message": {
        "message_id": update_id, "date": 1763800000, "text": text,
        "chat": {"id": chat_id, "type": "private", "first_name": "A"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "A"}}}).encode()


async def post(client, body: bytes):
    return await client.post("/bots/telegram/webhook", content=body, headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})


def telegram_settings(settings_for, fake, **extra):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                        telegram_api_base=fake.base_url, **extra)


async def test_retries_honour_429_and_5xx_and_keep_order(settings_for):
    with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake)) as client:
            fake.fail_next("sendMessage", 429, retry_after=1)
            fake.fail_next("sendMessage", 500)
            started = time.monotonic()
            assert (await post(client, start_update(1))).status_code == 200
            await client.app.state.rt.drain(timeout=15)
            elapsed = time.monotonic() - started
            texts = fake.sent_texts(777)
            assert len(texts) == 2 and texts[0].startswith("👋 Bonjour") and "Êtes-vous d'accord" in texts[1]
            assert elapsed >= 1.0  # retry_after honoured
            statuses = [c.status for c in fake.calls("sendMessage")]
            assert statuses[:2] == [429, 500] and statuses[2:] == [200, 200]


async def test_a_message_that_cannot_be_delivered_is_marked_failed_for_the_worker(settings_for):
    with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake, delivery_max_attempts=3)) as client:
            fake.fail_next("sendMessage", 500, times=6)  # 2 messages x 3 attempts
            assert (await post(client, start_update(1))).status_code == 200
            await client.app.state.rt.drain(timeout=15)
            async with client.app.state.rt.sessionmaker() as session:
                rows = (await session.execute(select(Message).where(Message.direction == "out")
                                              .order_by(Message.id))).scalars().all()
            assert rows[0].status == "failed" and rows[0].attempts == 3
            # order per person: the second message waits for the first, then goes on
            assert len([c for c in fake.calls("sendMessage")]) >= 3

            fake.fail_next("sendMessage", 403, times=1)  # the person blocked the bot: not retried
            assert (await post(client, start_update(2, chat_id=778))).status_code == 200
            await client.app.state.rt.drain(timeout=15)
            async with client.app.state.rt.sessionmaker() as session:
                blocked = (await session.execute(select(Message).join(Contact, Contact.id == Message.contact_id)
                                                 .where(Message.direction == "out").order_by(Message.id.desc()))).scalars().all()
            assert any(m.status == "failed" and m.attempts == 1 for m in blocked)


async def test_nothing_is_lost_across_a_crash(settings_for):
    """Rows a crash left behind (an unhandled inbound message, queued replies) are handled at start-up."""
    settings = None
    with FakeTelegram() as fake:
        settings = telegram_settings(settings_for, fake, delivery_max_attempts=6)  # give up in ~3 s
        async with app_client(settings) as client:
            fake.fail_next("sendMessage", 500, times=100)
            assert (await post(client, start_update(1))).status_code == 200
            # Simulate a crash: the sender died; the reply rows stay queued; an inbound message
            # was stored but never handled.
            rt = client.app.state.rt
            await rt.outbox.close()
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(update(Message).where(Message.direction == "out")
                                      .values(status="sending", attempts=0, next_attempt_at=None))
                first = (await session.execute(select(Message).where(Message.direction == "in"))).scalar()
                session.add(Message(conversation_id=first.conversation_id, contact_id=first.contact_id,
                                    channel="telegram", direction="in", external_id="2", kind="choice", text=None,
                                    payload={"choice": "oui"}, status="received", attempts=0))
        fake.reset()
        async with app_client(settings) as client:  # restart
            await client.app.state.rt.drain(timeout=15)
            texts = fake.sent_texts(777)
            assert texts[0].startswith("👋 Bonjour")
            assert any("Êtes-vous d'accord" in t for t in texts)
            assert texts[-1] == "Que voulez-vous faire ? 👇"  # the stored "oui" was handled
            async with client.app.state.rt.sessionmaker() as session:
                pending = (await session.execute(select(Message).where(
                    Message.status.in_(("queued", "sending"))))).scalars().all()
                unhandled = (await session.execute(select(Message).where(
                    Message.direction == "in", Message.handled_at.is_(None)))).scalars().all()
            assert pending == [] and unhandled == []


async def test_long_polling_mode_takes_the_webhook_path(settings_for):
    import asyncio

    from allervers.serve import poll_telegram

    with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            fake.queue_update(json.loads(start_update(41, chat_id=999)))
            stop = asyncio.Event()
            polling = asyncio.create_task(poll_telegram(rt, stop))
            await fake.wait_for_async(lambda: len(fake.sent_texts(999)) >= 2, timeout=15)
            fake.queue_update(json.loads(start_update(42, chat_id=999, text="stop")))
            await fake.wait_for_async(lambda: len(fake.sent_texts(999)) >= 3, timeout=15)
            stop.set()
            await asyncio.wait_for(polling, 10)
            texts = fake.sent_texts(999)
            assert texts[0].startswith("👋 Bonjour") and "vous ne recevrez plus" in texts[-1]
            assert fake.calls("deleteWebhook")


@contextlib.asynccontextmanager
async def writes_held(settings):
    """Another connection blocks writes to the events table (as a long transaction elsewhere would)."""
    url = settings.database_url
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.execute("ROLLBACK")
            connection.close()
        return
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    transaction = connection.transaction()
    await transaction.start()
    await connection.execute("LOCK TABLE events IN EXCLUSIVE MODE")
    try:
        yield
    finally:
        await transaction.rollback()
        await connection.close()


async def test_a_person_deleted_while_their_message_is_in_flight_does_not_fail_the_others(settings_for):
    """Outcomes of several runners are written together; a contact deleted meanwhile (the retention
    purge does not wait for deliveries) makes that write fail, and the others are still recorded.
    Four people: while their sends are held, two are deleted; the first outcomes to come back are
    written alone (writes held), the three others wait and are written together."""
    from sqlalchemy import delete

    from conversations.models import Address

    with FakeTelegram() as fake:
        settings = telegram_settings(settings_for, fake)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            release = fake.hold("sendMessage")
            chats = [701, 702, 703, 704]
            for update_id, chat in enumerate(chats, start=1):
                assert (await post(client, start_update(update_id, chat_id=chat))).status_code == 200
            await fake.wait_for_async(lambda: len(fake.calls("sendMessage")) >= 4)
            async with rt.sessionmaker() as session, session.begin():
                gone = (await session.execute(select(Address.contact_id).where(
                    Address.external_id.in_(["701", "703"])))).scalars().all()
                await session.execute(delete(Contact).where(Contact.id.in_(gone)))
            async with writes_held(settings):
                release.set()
                await fake.wait_for_async(lambda: len(fake.calls("sendMessage")) >= 8)
                await asyncio.sleep(0.5)  # every runner has sent and waits for its outcomes to be written
            await rt.drain(timeout=15)
            async with rt.sessionmaker() as session:
                rows = (await session.execute(select(Message.contact_id, Message.status).where(
                    Message.direction == "out"))).all()
            assert len(rows) == 4 and not any(contact in gone for contact, _ in rows)
            assert {status for _, status in rows} == {"sent"}  # the others' replies: recorded
            assert len(fake.sent_texts(702)) == 2 and len(fake.sent_texts(704)) == 2
