"""Shared media on an S3-compatible store (moto's server on loopback): stored as objects, served
through the app only (the bucket is private and anonymous reads are refused), sent to the
platforms, deleted on erasure and by the retention purge."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from kernel.database import utcnow
from conversations.audio import silent_ogg_opus
from conversations.models import Contact, Media, Message
from conversations.retention import purge_expired
from tests.conftest import app_client, csrf_of, eventually, login
from tests.fakes.telegram_api import FakeTelegram
from tests.hardening.test_erasure import (CHAT, OTHER, consented_telegram_person, media_stored, sent_including,
                                          tg_post, tg_settings, tg_update)
from tests.scaleout.s3server import S3Server


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


async def test_voice_notes_live_in_the_object_store_and_go_with_the_person(settings_for, backend, s3):
    s3.fresh_bucket()
    note = silent_ogg_opus(1)
    async with FakeTelegram() as telegram:
        settings = tg_settings(settings_for, telegram, **s3.settings())
        async with app_client(settings) as client:
            rt = client.app.state.rt
            await consented_telegram_person(client, telegram, OTHER, 1)
            await consented_telegram_person(client, telegram, CHAT, 101)
            telegram.register_file("s3-voice", note, "voice/file_7.oga")
            await tg_post(client, tg_update(104, voice={"duration": 1, "mime_type": "audio/ogg",
                                                        "file_id": "s3-voice", "file_unique_id": "s3v"}))
            await eventually(media_stored(rt), timeout=15)
            async with rt.sessionmaker() as session:
                media_id, contact_id, ref = (await session.execute(select(Media.id, Media.contact_id, Media.path))).one()
            key = f"media/{contact_id}/"
            assert ref.startswith(f"s3://{settings.s3_bucket}/{key}")
            assert [k for k in s3.keys() if k.startswith(key)] == [ref.split("/", 3)[3]]
            assert not Path(settings.media_dir).exists() or not any(Path(settings.media_dir).rglob("*.ogg"))
            # Private bucket: an anonymous read of the object is refused by the store itself.
            anonymous = httpx.get(f"{s3.url}/{settings.s3_bucket}/{ref.split('/', 3)[3]}")
            assert anonymous.status_code == 403

            # The worker plays it through the app (streamed), ranges included.
            assert (await login(client, settings.demo_worker_email, settings.demo_worker_password)).status_code == 303
            played = await client.get(f"/inbox/media/{media_id}")
            assert played.status_code == 200 and played.content == note
            assert played.headers["cache-control"] == "private, no-store"
            part = await client.get(f"/inbox/media/{media_id}", headers={"Range": "bytes=0-3"})
            assert part.status_code == 206 and part.content == b"OggS"
            assert (await client.get("/inbox/media/999999")).status_code == 404

            # A voice reply: stored in the bucket, uploaded to Telegram from a temporary copy.
            async with rt.sessionmaker() as session:
                conversation_id = (await session.execute(select(Message.conversation_id).where(
                    Message.contact_id == contact_id))).scalars().first()
            page = await client.get(f"/inbox/conversations/{conversation_id}")
            reply = await client.post(f"/inbox/conversations/{conversation_id}/voice",
                                      data={"csrf_token": csrf_of(page.text)},
                                      files={"audio": ("reply.ogg", note, "audio/ogg")})
            assert reply.status_code in (200, 303), reply.text
            sent = await telegram.wait_for_async(
                lambda: [c for c in telegram.sent(CHAT) if c.method == "sendVoice"], timeout=15)
            assert sent[0].files["voice"].data == note
            assert len([k for k in s3.keys() if k.startswith(key)]) == 2

            # Erasure on request: every object of the person is deleted; the other person's stay.
            await tg_post(client, tg_update(105, text="supprimer mes données"))
            await sent_including(telegram, CHAT, "Voulez-vous vraiment supprimer")
            await tg_post(client, tg_update(106, callback="erase_yes"))
            await sent_including(telegram, CHAT, "vos données sont supprimées")
            await rt.drain()
            assert [k for k in s3.keys() if k.startswith(key)] == []
            assert (await client.get(f"/inbox/media/{media_id}")).status_code == 404


async def test_web_chat_voice_and_the_retention_purge_on_the_object_store(settings_for, s3):
    s3.fresh_bucket()
    settings = settings_for(rate_limits_enabled=False, retention_purge_interval=0, **s3.settings())
    async with app_client(settings) as client:
        rt = client.app.state.rt
        assert (await client.post("/chat/api/identity", json={})).status_code == 200
        uploaded = await client.post("/chat/api/voice", data={"client_id": "c" * 16},
                                     files={"audio": ("voice.ogg", silent_ogg_opus(1.5), "audio/ogg")})
        assert uploaded.status_code == 200 and uploaded.json()["media_id"], uploaded.text
        media_id = uploaded.json()["media_id"]
        played = await client.get(f"/chat/api/media/{media_id}")
        assert played.status_code == 200 and played.content.startswith(b"OggS")
        # Another person cannot play it, even knowing its id.
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            assert (await other.post("/chat/api/identity", json={})).status_code == 200
            assert (await other.get(f"/chat/api/media/{media_id}")).status_code == 404
        assert len(s3.keys()) == 1
        # An object the row lost track of (a crash between upload and row): the purge finds it too.
        async with rt.sessionmaker() as session:
            contact_id = (await session.execute(select(Media.contact_id))).scalar()
        s3.client().put_object(Bucket=settings.s3_bucket, Key=f"media/{contact_id}/orphan.ogg", Body=b"OggS")
        await rt.drain()
        old = utcnow() - timedelta(days=settings.retention_days + 1)
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Contact).values(created_at=old, last_inbound_at=old))
            await session.execute(update(Message).values(created_at=old))
        assert await purge_expired(rt) >= 1
        assert s3.keys() == []
