"""The outbox sends a message's venue as its own part, after its words (Telegram sendVenue), and
never sends the words twice: not when the venue's send fails and is retried, not after a crash
between the two (the sent journal noted the first part), not when the venue is refused for good.
Through the real app and the fake Bot API, on SQLite and on PostgreSQL + Redis when configured."""

from __future__ import annotations

import json
import os

from sqlalchemy import select, update

from bots.base import Link, OutboundMessage
from conversations.models import OUTBOUND, Message
from conversations.sent_journal import FileJournal, RedisJournal
from conversations.store import Pending, load_thread, queue_message
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram, text_update

SECRET = "secret-for-tests"
CHAT = 6262
WORDS = "1. Restos du Cœur de Lyon — à 350 m\n📍 12 rue de la Paix, 69002 Lyon\n☎️ +33 4 78 12 34 56"
VENUE = {"latitude": 45.76, "longitude": 4.83, "title": "Restos du Cœur de Lyon", "address": "12 rue de la Paix, 69002 Lyon"}
LINKS = [["🗺️ Voir sur la carte", "https://www.openstreetmap.org/?mlat=45.76000&mlon=4.83000"],
         ["📞 Appeler", "tel:+33478123456"]]


async def _started(client, fake) -> int:
    """A person who said /start: their conversation id."""
    response = await client.post("/bots/telegram/webhook", content=json.dumps(text_update("/start", chat_id=CHAT)),
                                 headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert response.status_code == 200
    rt = client.app.state.rt
    await rt.drain(timeout=15)
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Message.conversation_id).where(Message.direction == OUTBOUND))).scalar()


async def _queue_place(rt, conversation_id: int) -> int:
    pending = Pending.empty()
    async with rt.sessionmaker() as session, session.begin():
        thread = await load_thread(session, conversation_id)
        row = await queue_message(session, thread, OutboundMessage(WORDS), pending, flush=True)
        row.payload = {**(row.payload or {}), "links": LINKS, "venue": VENUE, "locale": "fr"}
        message_id, contact_id = row.id, thread.contact.id
    rt.outbox.kick(contact_id)
    await rt.drain(timeout=15)
    return message_id


def _settings(settings_for, fake):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET, telegram_api_base=fake.base_url)


async def _row(rt, message_id: int) -> Message:
    async with rt.sessionmaker() as session:
        return await session.get(Message, message_id)


def _words_sent(fake) -> list:
    return [c for c in fake.sent_messages(CHAT) if c.params["text"].startswith("1. Restos du Cœur")]


async def test_a_failing_venue_is_retried_alone(settings_for):
    with FakeTelegram() as fake:
        async with app_client(_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            conversation = await _started(client, fake)
            fake.fail_next("sendVenue", 500)
            message_id = await _queue_place(rt, conversation)
            row = await _row(rt, message_id)
        [words] = _words_sent(fake)
        assert [c.status for c in fake.calls("sendVenue")] == [500, 200]
        assert words.params["reply_markup"]["inline_keyboard"] == [[{"text": "🗺️ Voir sur la carte", "url": LINKS[0][1]}]]
        assert row.status == "sent" and row.platform_message_id == str(words.result["message_id"])
        assert row.payload["parts_sent"] == 2


async def test_a_venue_refused_for_good_leaves_the_words_sent(settings_for):
    with FakeTelegram() as fake:
        async with app_client(_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            conversation = await _started(client, fake)
            fake.fail_next("sendVenue", 400, description="Bad Request: wrong latitude or longitude")
            message_id = await _queue_place(rt, conversation)
            row = await _row(rt, message_id)
        assert len(_words_sent(fake)) == 1 and [c.status for c in fake.calls("sendVenue")] == [400]
        assert row.status == "sent" and "latitude" in row.payload["part_error"]


async def test_a_crash_between_the_words_and_the_venue_sends_only_the_venue(settings_for):
    with FakeTelegram() as fake:
        settings = _settings(settings_for, fake)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            conversation = await _started(client, fake)
            message_id = await _queue_place(rt, conversation)
        [words] = _words_sent(fake)
        assert len(fake.sent_venues(CHAT)) == 1

        # The crash: the words went out and were noted as the first of two parts; the process died
        # before the venue. The row is left 'sending'.
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(settings.database_url)
        async with engine.begin() as connection:
            await connection.execute(update(Message).where(Message.id == message_id).values(
                status="sending", platform_message_id=None, payload={"links": LINKS, "venue": VENUE}))
        await engine.dispose()
        note = {"status": "partial", "parts_sent": 1, "platform_id": str(words.result["message_id"])}
        if settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis_url)
            await RedisJournal(redis).note(message_id, note)
            await redis.aclose()
        else:
            dead = FileJournal(settings.media_dir.parent / "outbox-journal")
            await dead.note(message_id, note)
            os.close(dead._fds[dead._path])  # the process is gone: its file stays, unlocked
        fake.reset()

        async with app_client(settings) as client:
            rt = client.app.state.rt
            await rt.drain(timeout=15)
            row = await _row(rt, message_id)
        assert _words_sent(fake) == []  # the words are not sent again
        assert [c.method for c in fake.sent(CHAT)] == ["sendVenue"]
        assert row.status == "sent" and row.platform_message_id == str(words.result["message_id"])
