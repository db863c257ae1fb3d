"""Erasure leaves nothing: no file or folder, nothing in SQLite's files (WAL included), and a
platform retrying an update after the erasure neither creates the person again nor welcomes them.

Through the real webhooks (Telegram: fake Bot API on loopback; WhatsApp: fake Graph API on
loopback), on SQLite and on PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, update

from kernel.database import utcnow
from conversations.audio import silent_ogg_opus
from conversations.models import Contact, ErasureTombstone, Media, Message
from conversations.retention import purge_expired
from conversations.tombstones import RETRY_WINDOW
from tests.conftest import app_client, eventually
from tests.e2e.whatsapp_helpers import PERSON, SECRET as WA_SECRET, button, sent_to, text as wa_text, whatsapp_settings
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.fakes.telegram_api import FakeTelegram

TG_SECRET = "tg-erasure-secret"
CHAT = 987654321  # the person who asks for erasure
OTHER = 555000111  # somebody else, who stays
CANARY = "Zoé Quintrelle 0612345678 habite 7 impasse des Canaris"
CANARY_BYTES = [CANARY.encode(), b"Quintrelle", b"0612345678", b"Canaris", str(CHAT).encode()]


def tg_update(update_id: int, chat: int = CHAT, *, text: str | None = None, callback: str | None = None,
              voice: dict | None = None) -> dict:
    person = {"id": chat, "is_bot": False, "first_name": "Zoé", "language_code": "fr"}
    room = {"id": chat, "type": "private", "first_name": "Zoé"}
    if callback is not None:
        return {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": person, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1795339805, "chat": room, "text": "…"}}}
    message = {"message_id": update_id, "date": 1795339805, "chat": room, "from": person}
    message.update({"text": text} if text is not None else {"voice": voice})
    return {"update_id": update_id, "message": message}


async def tg_post(client: httpx.AsyncClient, body: dict) -> None:
    response = await client.post("/bots/telegram/webhook", content=json.dumps(body), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET})
    assert response.status_code == 200, response.text


def tg_settings(settings_for, telegram: FakeTelegram, **overrides):
    return settings_for(telegram_bot_token=telegram.token, telegram_webhook_secret=TG_SECRET,
                        telegram_api_base=telegram.base_url, retention_purge_interval=0, **overrides)


async def count(rt, model, *where) -> int:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model).where(*where))).scalar()


def media_stored(rt):
    async def check() -> int:
        return await count(rt, Media)
    return check


async def sent_including(telegram: FakeTelegram, chat: int, words: str) -> list[str]:
    return await telegram.wait_for_async(lambda: [t for t in telegram.sent_texts(chat) if words in t], timeout=15)


def sqlite_files(settings) -> list[Path]:
    database = Path(settings.database_url.split("///", 1)[1])
    return [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-shm")) if p.exists()]


def assert_nothing_left_in_files(settings) -> int:
    """The canary and the person's chat id are in none of the SQLite files; returns bytes scanned."""
    scanned = 0
    for path in sqlite_files(settings):
        data = path.read_bytes()
        scanned += len(data)
        for needle in CANARY_BYTES:
            assert needle not in data, f"{needle!r} is still in {path.name} ({len(data)} bytes)"
    return scanned


async def consented_telegram_person(client, telegram, chat: int, first_update: int) -> None:
    await tg_post(client, tg_update(first_update, chat, text="/start"))
    await sent_including(telegram, chat, "Êtes-vous d'accord")
    await tg_post(client, tg_update(first_update + 1, chat, callback="oui"))
    await sent_including(telegram, chat, "Que voulez-vous faire")


async def test_erasure_leaves_no_file_no_folder_and_nothing_in_the_database_files(settings_for, backend):
    async with FakeTelegram() as telegram:
        settings = tg_settings(settings_for, telegram)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            await consented_telegram_person(client, telegram, OTHER, 1)  # stays
            await consented_telegram_person(client, telegram, CHAT, 101)
            await tg_post(client, tg_update(103, text=CANARY))
            telegram.register_file("erasure-voice", silent_ogg_opus(1), "voice/file_9.oga")
            await tg_post(client, tg_update(104, voice={"duration": 1, "mime_type": "audio/ogg",
                                                        "file_id": "erasure-voice", "file_unique_id": "ev1"}))
            await eventually(media_stored(rt), timeout=15)
            async with rt.sessionmaker() as session:
                contact_id, path = (await session.execute(select(Media.contact_id, Media.path))).one()
            folder = Path(settings.media_dir).resolve() / str(contact_id)
            assert Path(path).exists() and folder.is_dir()
            await rt.drain()
            if backend == "sqlite":  # the test can fail: the canary is in the files before the erasure
                assert any(CANARY.encode() in p.read_bytes() for p in sqlite_files(settings))

            await tg_post(client, tg_update(105, text="supprimer mes données"))
            await sent_including(telegram, CHAT, "Voulez-vous vraiment supprimer")
            await tg_post(client, tg_update(106, callback="erase_yes"))
            await sent_including(telegram, CHAT, "vos données sont supprimées")
            await rt.drain()

            assert not Path(path).exists()
            assert not folder.exists(), "an empty media folder named after the erased person is left"
            assert [p.name for p in Path(settings.media_dir).iterdir()] == []
            assert await count(rt, Contact) == 1  # the other person
            assert await count(rt, Message, Message.text.like("%Quintrelle%")) == 0
            assert await count(rt, ErasureTombstone) == 6  # updates 101-106, as keyed hashes only
            if backend == "sqlite":
                scanned = assert_nothing_left_in_files(settings)
                assert scanned > 0
                print(f"\nSQLite files scanned after the erasure: {scanned} bytes "
                      f"({', '.join(f'{p.name}={p.stat().st_size}' for p in sqlite_files(settings))})")
            # The other person is untouched and still served.
            await tg_post(client, tg_update(3, OTHER, text="menu"))
            await telegram.wait_for_async(
                lambda: sum("Que voulez-vous faire" in t for t in telegram.sent_texts(OTHER)) >= 2, timeout=15)


async def test_retention_purge_leaves_no_folder_and_nothing_in_the_database_files(settings_for, backend):
    async with FakeTelegram() as telegram:
        settings = tg_settings(settings_for, telegram)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            await consented_telegram_person(client, telegram, CHAT, 201)
            await tg_post(client, tg_update(203, text=CANARY))
            telegram.register_file("purge-voice", silent_ogg_opus(1), "voice/file_8.oga")
            await tg_post(client, tg_update(204, voice={"duration": 1, "mime_type": "audio/ogg",
                                                        "file_id": "purge-voice", "file_unique_id": "pv1"}))
            await eventually(media_stored(rt), timeout=15)
            await rt.drain()
            async with rt.sessionmaker() as session:
                contact_id = (await session.execute(select(Media.contact_id))).scalar()
            folder = Path(settings.media_dir).resolve() / str(contact_id)
            assert folder.is_dir()
            old = utcnow() - timedelta(days=settings.retention_days + 1)
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(update(Contact).values(created_at=old, last_inbound_at=old))
                await session.execute(update(Message).values(created_at=old))
                session.add(ErasureTombstone(digest="0" * 64, created_at=utcnow() - RETRY_WINDOW - timedelta(hours=1)))
                session.add(ErasureTombstone(digest="1" * 64, created_at=utcnow()))

            assert await purge_expired(rt) == 1
            assert not folder.exists() and [p.name for p in Path(settings.media_dir).iterdir()] == []
            assert await count(rt, Contact) == 0
            async with rt.sessionmaker() as session:  # old tombstones forgotten, recent ones kept
                assert (await session.execute(select(ErasureTombstone.digest))).scalars().all() == ["1" * 64]
            if backend == "sqlite":
                print(f"\nSQLite files scanned after the purge: {assert_nothing_left_in_files(settings)} bytes")


async def test_telegram_retries_after_an_erasure_create_nobody(settings_for):
    async with FakeTelegram() as telegram:
        settings = tg_settings(settings_for, telegram)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            await consented_telegram_person(client, telegram, CHAT, 301)
            await tg_post(client, tg_update(303, text="supprimer mes données"))
            await sent_including(telegram, CHAT, "Voulez-vous vraiment supprimer")
            await tg_post(client, tg_update(304, callback="erase_yes"))
            await sent_including(telegram, CHAT, "vos données sont supprimées")
            await rt.drain()
            assert await count(rt, Contact) == 0
            sent = len(telegram.sent(CHAT))

            # Telegram retries the confirming update, then earlier ones: duplicates, answered 200.
            for retried in (tg_update(304, callback="erase_yes"), tg_update(303, text="supprimer mes données"),
                            tg_update(301, text="/start")):
                await tg_post(client, retried)
            await rt.drain()
            await asyncio.sleep(0.3)
            assert await count(rt, Contact) == 0 and await count(rt, Message) == 0
            assert len(telegram.sent(CHAT)) == sent, "the erased person was written to again"

            # A genuinely new message: a new person, welcomed normally.
            await tg_post(client, tg_update(305, text="bonjour"))
            await sent_including(telegram, CHAT, "Êtes-vous d'accord")
            await rt.drain()
            assert await count(rt, Contact) == 1
            # The new person is known now: an old retried update is still a duplicate.
            welcomed = len(telegram.sent(CHAT))
            await tg_post(client, tg_update(304, callback="erase_yes"))
            await rt.drain()
            await asyncio.sleep(0.3)
            assert await count(rt, Message, Message.direction == "in") == 1
            assert len(telegram.sent(CHAT)) == welcomed


async def test_whatsapp_retries_after_an_erasure_create_nobody(settings_for):
    async with FakeGraphApi(access_token="test-access-token") as graph:
        settings = whatsapp_settings(settings_for, graph, retention_purge_interval=0)
        async with app_client(settings) as client:
            rt = client.app.state.rt

            async def post(body: dict) -> None:
                raw = json.dumps(body).encode()
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, WA_SECRET)})
                assert response.status_code == 200, response.text

            await post(wa_text("E1", "Bonjour"))
            await graph.wait_for(lambda g: sent_to(g, PERSON, "Êtes-vous d'accord"), timeout=15)
            await post(button("E2", "oui"))
            await graph.wait_for(lambda g: sent_to(g, PERSON, "Que voulez-vous faire"), timeout=15)
            await post(wa_text("E3", "supprimer mes données"))
            await graph.wait_for(lambda g: sent_to(g, PERSON, "Voulez-vous vraiment supprimer"), timeout=15)
            await post(button("E4", "erase_yes"))
            await graph.wait_for(lambda g: sent_to(g, PERSON, "vos données sont supprimées"), timeout=15)
            await rt.drain()
            assert await count(rt, Contact) == 0
            sent = len(graph.requests_for(PERSON))

            for retried in (button("E4", "erase_yes"), wa_text("E3", "supprimer mes données"), wa_text("E1", "Bonjour")):
                await post(retried)
            await rt.drain()
            await asyncio.sleep(0.3)
            assert await count(rt, Contact) == 0 and await count(rt, Message) == 0
            assert len(graph.requests_for(PERSON)) == sent, "the erased person was written to again"

            await post(wa_text("E5", "Bonjour"))
            await graph.wait_for(lambda g: len(sent_to(g, PERSON, "Êtes-vous d'accord")) == 2, timeout=15)
            assert await count(rt, Contact) == 1

