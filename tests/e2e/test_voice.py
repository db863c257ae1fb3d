"""Voice notes on every channel, over real HTTP: a person's voice note (WhatsApp audio, Telegram
voice, web chat upload) is fetched after the webhook, stored, and plays in Chromium's inbox; a worker
records a reply in the browser (Chromium's fake microphone) or uploads one, and it reaches the fake
platform; limits get a plain message; erasure and the retention purge remove the files.

The Ogg/Opus files are made in the test (conversations.audio.silent_ogg_opus: real 20 ms Opus
frames of silence), so no ffmpeg is needed.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from handoff.auth import hash_password
from kernel.database import utcnow
from conversations.audio import ogg_duration, silent_ogg_opus
from conversations.models import Contact, Media, Message
from handoff.models import Organisation, Worker
from tests.browser import assert_accessible
from tests.conftest import LiveServer, app_client, csrf_of, eventually, wait_until
from tests.e2e.whatsapp_helpers import (
    PERSON,
    body_text,
    button,
    in_db,
    login,
    post,
    text,
    voice,
    wait_sent,
    whatsapp_settings,
)
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.telegram_api import FakeTelegram

TG_SECRET = "tg-secret"
CHAT = 111111111
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
def graph():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


@pytest.fixture
def telegram():
    with FakeTelegram() as fake:
        yield fake


def voice_settings(settings_for, graph, telegram, **overrides):
    return whatsapp_settings(settings_for, graph, telegram_bot_token=telegram.token,
                             telegram_webhook_secret=TG_SECRET, telegram_api_base=telegram.base_url,
                             max_media_bytes=200_000, max_media_seconds=60, **overrides)


def tg_update(update_id: int, *, text_: str | None = None, voice_: dict | None = None, callback: str | None = None) -> dict:
    person = {"id": CHAT, "is_bot": False, "first_name": "Sam", "language_code": "fr"}
    chat = {"id": CHAT, "type": "private", "first_name": "Sam"}
    if callback is not None:
        return {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": person, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1795339805, "chat": chat, "text": "…"}}}
    message = {"message_id": update_id, "date": 1795339805, "chat": chat, "from": person}
    message.update({"text": text_} if text_ is not None else {"voice": voice_})
    return {"update_id": update_id, "message": message}


def tg_post(client: httpx.Client, body: dict) -> httpx.Response:
    return client.post("/bots/telegram/webhook", content=json.dumps(body),
                       headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TG_SECRET})


def media_rows(settings) -> list[tuple[int, int, str, str, int | None]]:
    async def work(session):
        rows = await session.execute(select(Media.id, Media.contact_id, Media.content_type, Media.path,
                                            Media.duration_seconds).order_by(Media.id))
        return [tuple(r) for r in rows.all()]
    return in_db(settings, work)


def conversation_of(settings, channel: str) -> int:
    async def work(session):
        return (await session.execute(select(Message.conversation_id).where(Message.channel == channel)
                                      .order_by(Message.id).limit(1))).scalar()
    return in_db(settings, work)


def consent_and_menu_whatsapp(client, graph) -> None:
    assert post(client, text("v1", "Bonjour")).status_code == 200
    wait_sent(graph, "Êtes-vous d'accord")
    assert post(client, button("v2", "oui")).status_code == 200
    wait_sent(graph, "Que voulez-vous faire")


def audio_state(page) -> list:
    return page.evaluate("""async () => {
        const a = document.querySelector('#timeline audio');
        if (!a) return [-1, 0];
        if (a.readyState < 1) {
            await new Promise((resolve, reject) => {
                a.addEventListener('loadedmetadata', resolve, {once: true});
                a.addEventListener('error', () => reject(new Error('audio error ' + (a.error && a.error.code))), {once: true});
                a.load();
            });
        }
        return [a.readyState, a.duration];
    }""")


@pytest.mark.browser
def test_voice_notes_reach_the_inbox_and_worker_voice_replies_reach_the_person(settings_for, graph, telegram):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian's chromium is not installed")
    settings = voice_settings(settings_for, graph, telegram)
    note = silent_ogg_opus(2.0)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client, \
            sync_api.sync_playwright() as playwright:
        # WhatsApp: the person sends a voice note while with the bot.
        consent_and_menu_whatsapp(client, graph)
        media_id = graph.add_media(note)
        assert post(client, voice("v3", media_id)).status_code == 200
        ack = wait_sent(graph, "message vocal")
        assert "je ne peux pas l'écouter" in body_text(ack)
        assert [b["reply"]["title"] for b in ack["interactive"]["action"]["buttons"]] == \
            ["🙋 Oui, une personne", "↩️ Non, au menu"]
        stored = wait_until(lambda: media_rows(settings))
        assert stored[0][2] == "audio/ogg" and stored[0][4] == 2
        wa_file = Path(stored[0][3])
        assert wa_file.read_bytes() == note and Path(settings.media_dir).resolve() in wa_file.parents
        # The bot offers a named worker.
        assert post(client, button("v4", "oui")).status_code == 200
        wait_sent(graph, "Camille")

        # Telegram: a voice note too (fetched with getFile + download).
        telegram.register_file("tg-voice-1", note, "voice/file_1.oga")
        assert tg_post(client, tg_update(1, text_="/start")).status_code == 200
        telegram.wait_for(lambda: any("Êtes-vous d'accord" in t for t in telegram.sent_texts(CHAT)))
        assert tg_post(client, tg_update(2, callback="oui")).status_code == 200
        telegram.wait_for(lambda: any("Que voulez-vous faire" in t for t in telegram.sent_texts(CHAT)))
        assert tg_post(client, tg_update(3, voice_={"duration": 2, "mime_type": "audio/ogg", "file_id": "tg-voice-1",
                                                    "file_unique_id": "u1", "file_size": len(note)})).status_code == 200
        telegram.wait_for(lambda: any("message vocal" in t for t in telegram.sent_texts(CHAT)))
        wait_until(lambda: len(media_rows(settings)) == 2)
        assert tg_post(client, tg_update(4, callback="oui")).status_code == 200
        telegram.wait_for(lambda: any("Camille" in t for t in telegram.sent_texts(CHAT)))

        # Both play in Chromium's inbox.
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=live.url, locale="fr-FR")
            context.set_default_timeout(10_000)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Content-Security-Policy violations are console errors: none may happen.
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Refused to" in m.text else None)
            page.goto("/inbox/login")
            page.fill("input[name=email]", settings.demo_worker_email)
            page.fill("input[name=password]", settings.demo_worker_password)
            page.click("form button[type=submit]")
            page.wait_for_url("**/inbox")
            for channel in ("whatsapp", "telegram"):
                page.goto(f"/inbox/conversations/{conversation_of(settings, channel)}")
                ready, duration = audio_state(page)
                assert ready >= 1 and 1.5 < duration < 2.5, (channel, ready, duration)

            # The worker records a reply in the browser (fake microphone) for the WhatsApp person.
            page.goto(f"/inbox/conversations/{conversation_of(settings, 'whatsapp')}")
            page.click("[data-voice-record]")
            page.wait_for_selector("text=⏹️ Arrêter et envoyer")
            page.wait_for_timeout(1500)
            page.click("[data-voice-record]")
            graph.wait_for_sync(lambda g: any(b["type"] == "audio" for b in g.requests_for(PERSON)), timeout=10)
            page.wait_for_selector("text=✅ Message vocal envoyé.")
            upload = graph.uploads[-1]
            assert upload.content_type == "audio/ogg" and upload.content.startswith(b"OggS")
            assert 0.5 < ogg_duration(upload.content) < 5
            audio = [b for b in graph.requests_for(PERSON) if b["type"] == "audio"][-1]
            assert audio["audio"] == {"id": upload.media_id}
            assert any(body_text(b).startswith("🎤 Message vocal\n— Camille") for b in graph.requests_for(PERSON))
            assert_accessible(page)
            # ...and it plays in the inbox too.
            # (no wait_for_function: its string predicate is an eval, which the page's CSP refuses)
            wait_until(lambda: page.locator("#timeline audio").count() >= 2, timeout=15)
            assert errors == []
        finally:
            browser.close()

        # A voice reply uploaded to the Telegram person goes out with sendVoice.
        login(client, settings)
        tg_conversation = conversation_of(settings, "telegram")
        page_html = client.get(f"/inbox/conversations/{tg_conversation}").text
        response = client.post(f"/inbox/conversations/{tg_conversation}/voice",
                               data={"csrf_token": csrf_of(page_html)},
                               files={"audio": ("reply.ogg", note, "audio/ogg")})
        assert response.status_code in (200, 303)
        sent_voice = telegram.wait_for(lambda: telegram.sent(CHAT) and [c for c in telegram.sent(CHAT) if c.method == "sendVoice"])
        assert sent_voice[0].files["voice"].data == note
        assert sent_voice[0].params.get("caption", "").endswith("— Camille")

        # Erasure on request: the person's files are gone from disk.
        whatsapp_files = [Path(r[3]) for r in media_rows(settings) if r[1] == stored[0][1]]
        assert len(whatsapp_files) == 2 and all(p.exists() for p in whatsapp_files)
        assert post(client, text("v5", "supprimer mes données")).status_code == 200
        wait_sent(graph, "Voulez-vous vraiment supprimer")
        assert post(client, button("v6", "erase_yes")).status_code == 200
        wait_sent(graph, "vos données sont supprimées")
        wait_until(lambda: not any(p.exists() for p in whatsapp_files))
        assert all(r[1] != stored[0][1] for r in media_rows(settings))


def test_voice_limits_access_and_retention(settings_for, graph, telegram):
    settings = voice_settings(settings_for, graph, telegram, retention_purge_interval=0)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        consent_and_menu_whatsapp(client, graph)
        # Too large (found at download) and too long (read from the Ogg file): a plain message each.
        assert post(client, voice("L1", graph.add_media(b"\0" * 250_000))).status_code == 200
        wait_sent(graph, "trop lourd")
        assert post(client, voice("L2", graph.add_media(silent_ogg_opus(90)))).status_code == 200
        wait_sent(graph, "trop long (1 minute au plus)")
        # A failing download is retried; the message was stored all along.
        graph.fail_next(500, times=2, endpoint="fetch")
        assert post(client, voice("L3", graph.add_media(silent_ogg_opus(1)))).status_code == 200
        wait_until(lambda: len(media_rows(settings)) == 1)
        assert media_rows(settings)[0][4] == 1
        # A sticker is not silence either.
        assert post(client, _sticker("L4")).status_code == 200
        wait_sent(graph, "je comprends seulement les messages écrits")

        # Telegram declares the size: refused before downloading anything.
        assert tg_post(client, tg_update(1, text_="/start")).status_code == 200
        telegram.wait_for(lambda: any("Êtes-vous d'accord" in t for t in telegram.sent_texts(CHAT)))
        assert tg_post(client, tg_update(2, voice_={"duration": 3, "mime_type": "audio/ogg", "file_id": "big",
                                                    "file_unique_id": "u2", "file_size": 900_000})).status_code == 200
        telegram.wait_for(lambda: any("trop lourd" in t for t in telegram.sent_texts(CHAT)))
        assert not telegram.calls("getFile")

        # Web chat: the record button's upload; the person's page may play only its own files.
        # Who is who: the identity cookie the server issued to each browser (this client's jar).
        assert client.post("/chat/api/identity", json={}).status_code == 200
        assert client.post("/chat/api/voice", data={"client_id": "c" * 16},  # no identity: refused
                           files={"audio": ("voice.ogg", silent_ogg_opus(1.5), "audio/ogg")},
                           headers={"Cookie": ""}).status_code == 401
        response = client.post("/chat/api/voice", data={"client_id": "c" * 16},
                               files={"audio": ("voice.ogg", silent_ogg_opus(1.5), "audio/ogg")})
        assert response.status_code == 200 and response.json()["media_id"]
        web_media = response.json()["media_id"]
        assert client.get(f"/chat/api/media/{web_media}").content.startswith(b"OggS")
        with httpx.Client(base_url=live.url, timeout=30) as other_person:
            assert other_person.post("/chat/api/identity", json={}).status_code == 200
            assert other_person.get(f"/chat/api/media/{web_media}").status_code == 404
        too_long = client.post("/chat/api/voice", data={"client_id": "d" * 16},
                               files={"audio": ("voice.ogg", silent_ogg_opus(61), "audio/ogg")})
        assert too_long.status_code == 413 and "trop long" in too_long.json()["error"]
        assert client.post("/chat/api/voice", data={"client_id": "e" * 16},
                           files={"audio": ("v.ogg", b"\0" * 250_000, "audio/ogg")}).status_code == 413
        history = client.get("/chat/api/history").json()["messages"]
        assert any(m.get("audio") == web_media for m in history)

        # The inbox serves files only to workers of the contact's organisation.
        assert client.get(f"/inbox/media/{web_media}").status_code in (303, 401)  # login first
        login(client, settings)
        assert client.get(f"/inbox/media/{web_media}").status_code == 200

        async def other_worker(session):
            organisation = Organisation(slug="autre", name="Autre", whatsapp_templates={})
            session.add(organisation)
            await session.flush()
            session.add(Worker(organisation_id=organisation.id, email="dominique@autre.fr", first_name="Dominique",
                               password_hash=hash_password("mot-de-passe-autre")))
        in_db(settings, other_worker)
        with httpx.Client(base_url=live.url, timeout=30) as stranger:
            page = stranger.get("/inbox/login")
            stranger.post("/inbox/login", data={"email": "dominique@autre.fr", "password": "mot-de-passe-autre",
                                               "csrf_token": csrf_of(page.text)})
            assert stranger.get(f"/inbox/media/{web_media}").status_code == 403
            assert stranger.get(f"/inbox/conversations/{conversation_of(settings, 'whatsapp')}").status_code == 403

        # Retention: contacts silent for longer than retention_days go, with their files.
        files = [Path(r[3]) for r in media_rows(settings)]
        assert files and all(p.exists() for p in files)
        old = utcnow() - timedelta(days=settings.retention_days + 1)

        async def age(session):
            await session.execute(update(Contact).values(created_at=old, last_inbound_at=old))
            await session.execute(update(Message).values(created_at=old))
        in_db(settings, age)

    from conversations.retention import purge_expired

    async def purge():
        async with app_client(settings) as app:
            rt = app.app.state.rt
            assert await purge_expired(rt, dry_run=True) == 3
            return await purge_expired(rt)
    import asyncio
    assert asyncio.run(purge()) == 3
    assert not any(p.exists() for p in files)
    assert media_rows(settings) == []


def test_purge_command(settings_for, monkeypatch, capsys):
    from allervers.cli import main

    settings = settings_for()
    monkeypatch.setenv("ALLERVERS_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ALLERVERS_MEDIA_DIR", str(settings.media_dir))
    assert main(["purge", "--dry-run"]) == 0
    assert "0 contact(s) past the retention period (dry run" in capsys.readouterr().out


def _sticker(ident: str) -> dict:
    from tests.e2e.whatsapp_helpers import fixture

    body = fixture("sticker")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"], message["from"] = f"wamid.IN.{ident}", PERSON
    return body


__all__ = ["eventually"]
