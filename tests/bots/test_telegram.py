"""The Telegram adapter against the fake Bot API server, over real HTTP on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import pytest_asyncio

from bots.base import Attachment, BadPayload, Choice, DeliveryError, Location, OutboundMessage
from bots.telegram import FileTooLarge, RecipientBlocked, TelegramChannel, Unauthorized
from tests.fakes.telegram_api import CHAT_ID, TOKEN, FakeTelegram, callback_update, text_update

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
SECRET = "webhook-secret-for-tests"
# The async tests share one event loop and one channel (aiohttp session): closing one costs 0.25 s.
on_module_loop = pytest.mark.asyncio(loop_scope="module")


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture(scope="module")
def server():
    with FakeTelegram(max_long_poll=0.5) as tg:
        yield tg


@pytest.fixture
def fake(server):
    server.reset()
    return server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_channel(server):
    ch = TelegramChannel(TOKEN, webhook_secret=SECRET, api_base=server.base_url, request_timeout=5)
    yield ch
    await ch.close()


@pytest.fixture
def channel(shared_channel, fake):
    return shared_channel


@pytest.fixture(scope="module")
def parser():
    return TelegramChannel(TOKEN, webhook_secret=SECRET)  # parse and verify make no HTTP call


# parse -----------------------------------------------------------------------------------


def test_parse_start_command(parser):
    [m] = parser.parse(fixture("text_start"))
    assert (m.channel, m.user_id, m.external_id, m.text, m.locale) == ("telegram", "111111111", "700000001", "/start", "fr")
    assert m.kind == "text" and m.address == "telegram:111111111"


def test_parse_text(parser):
    [m] = parser.parse(fixture("text"))
    assert m.text == "Bonjour, j'ai besoin d'aide pour mon loyer"
    assert m.external_id == "700000002"


def test_parse_callback_query(parser):
    [m] = parser.parse(fixture("callback_query"))
    assert (m.kind, m.choice, m.callback_id, m.user_id) == ("choice", "humain", "4382bfdwdsb323b2d9", "111111111")
    assert m.text is None


def test_parse_location(parser):
    [m] = parser.parse(fixture("location"))
    assert m.kind == "location"
    assert m.location == Location(48.856613, 2.352222)


def test_parse_voice(parser):
    [m] = parser.parse(fixture("voice"))
    assert m.kind == "attachment"
    assert m.attachment == Attachment(
        "voice", "audio/ogg", "AwACAgQAAxkBAAMFZ0C1voiceFileIdExample-AAE", size=13580, duration_seconds=4
    )


def test_parse_photo_takes_largest_size_and_caption(parser):
    [m] = parser.parse(fixture("photo"))
    assert m.attachment.kind == "image"
    assert m.attachment.platform_id == "AgACAgQAAxkBAAMGphotoLarge"
    assert m.attachment.size == 98230
    assert m.text == "Mon avis d'échéance"


def test_parse_document_and_audio(parser):
    [doc] = parser.parse(fixture("document"))
    assert (doc.attachment.kind, doc.attachment.content_type, doc.attachment.filename) == (
        "document",
        "application/pdf",
        "attestation-caf.pdf",
    )
    [audio] = parser.parse(fixture("audio"))
    assert (audio.attachment.kind, audio.attachment.duration_seconds) == ("audio", 62)


@pytest.mark.parametrize("name", ["edited_message", "my_chat_member", "group_text"])
def test_parse_ignores_what_we_do_not_handle(parser, name):
    assert parser.parse(fixture(name)) == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (fixture("malformed"), "malformed JSON"),
        (b"", "malformed JSON"),
        (b"[1, 2]", "not a Telegram update"),
        (b'{"message": {}}', "not a Telegram update (update_id: missing)"),
        (fixture("missing_chat"), "not a Telegram update (message.chat: missing)"),
    ],
)
def test_parse_refuses_what_is_not_an_update(parser, body, reason):
    with pytest.raises(BadPayload) as error:
        parser.parse(body)
    assert str(error.value).startswith(reason)
    assert "coupé" not in str(error.value) and "sans chat" not in str(error.value)  # never the body


def test_parse_refuses_oversized_text(parser):
    assert parser.parse(json.dumps(text_update("a" * 4096)).encode())
    with pytest.raises(BadPayload, match="text too long"):
        parser.parse(json.dumps(text_update("a" * 4097)).encode())


def test_update_builders_match_fixture_shapes(parser):
    [m] = parser.parse(json.dumps(callback_update("menu", chat_id=42)).encode())
    assert (m.choice, m.user_id) == ("menu", "42")
    [m] = parser.parse(json.dumps(text_update("/start", chat_id=42)).encode())
    assert (m.text, m.user_id) == ("/start", "42")


# verify ----------------------------------------------------------------------------------


def test_verify(parser):
    parser.verify({"X-Telegram-Bot-Api-Secret-Token": SECRET})
    parser.verify({"x-telegram-bot-api-secret-token": SECRET})  # plain dicts: any case
    with pytest.raises(Unauthorized) as missing:
        parser.verify({})
    assert missing.value.status_code == 401
    with pytest.raises(Unauthorized) as wrong:
        parser.verify({"X-Telegram-Bot-Api-Secret-Token": SECRET + "x"})
    assert wrong.value.status_code == 403


def test_verify_refuses_everything_without_a_configured_secret():
    channel = TelegramChannel(TOKEN, webhook_secret=None)
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}, {"X-Telegram-Bot-Api-Secret-Token": "anything"}):
        with pytest.raises(Unauthorized) as error:
            channel.verify(headers)
        assert error.value.status_code == 403


@on_module_loop
class TestSend:
    async def test_send_text_with_inline_keyboard(self, channel, fake):
        message = OutboundMessage(
            "Que voulez-vous faire ?",
            choices=(Choice("droits", "Connaître mes droits"), Choice("humain", "Parler à quelqu'un")),
        )
        result = await channel.send(str(CHAT_ID), message)
        [call] = fake.sent_messages(CHAT_ID)
        assert call.params["text"] == "Que voulez-vous faire ?"
        assert call.params["reply_markup"] == {
            "inline_keyboard": [
                [{"text": "Connaître mes droits", "callback_data": "droits"}],
                [{"text": "Parler à quelqu'un", "callback_data": "humain"}],
            ]
        }
        assert "parse_mode" not in call.params  # plain text: a worker's "<" stays a "<"
        assert result.platform_message_id is not None and int(result.platform_message_id) > 0

    async def test_short_choices_go_two_per_row(self, channel, fake):
        await channel.send(str(CHAT_ID), OutboundMessage("D'accord ?", choices=(Choice("oui", "Oui"), Choice("non", "Non"))))
        [call] = fake.sent_messages(CHAT_ID)
        assert [[b["callback_data"] for b in row] for row in call.params["reply_markup"]["inline_keyboard"]] == [["oui", "non"]]

    async def test_request_location_uses_a_reply_keyboard(self, channel, fake):
        await channel.send(
            str(CHAT_ID),
            OutboundMessage("Où êtes-vous ?", request_location=True, choices=(Choice("skip", "Plus tard"),)),
        )
        markup = fake.sent_messages(CHAT_ID)[0].params["reply_markup"]
        assert markup["keyboard"][0] == [{"text": "📍 Envoyer ma position", "request_location": True}]
        assert markup["keyboard"][1] == [{"text": "Plus tard"}]
        assert markup["one_time_keyboard"] is True

    async def test_long_text_is_split(self, channel, fake):
        text = ("Une phrase assez longue pour remplir le message. " * 120).strip()  # ~5,900 characters
        result = await channel.send(str(CHAT_ID), OutboundMessage(text, choices=(Choice("ok", "OK"),)))
        calls = fake.sent_messages(CHAT_ID)
        assert len(calls) == 2
        assert all(len(c.params["text"]) <= 4096 for c in calls)
        assert " ".join(c.params["text"] for c in calls) == text
        assert "reply_markup" in calls[-1].params and "reply_markup" not in calls[0].params
        assert result.platform_message_id == str(calls[-1].result["message_id"])

    async def test_choice_value_over_64_bytes_is_refused(self, channel, fake):
        with pytest.raises(DeliveryError) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("?", choices=(Choice("é" * 33, "Trop long"),)))
        assert error.value.retryable is False
        assert fake.calls() == []

    async def test_429_is_retryable_after_the_given_delay(self, channel, fake):
        fake.fail_next("sendMessage", 429, retry_after=7)
        with pytest.raises(DeliveryError) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))
        assert (error.value.retryable, error.value.retry_after) == (True, 7.0)
        await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))  # the next call goes through
        assert [c.status for c in fake.calls("sendMessage")] == [429, 200]

    @pytest.mark.parametrize("status", [500, 502])
    async def test_server_errors_are_retryable(self, channel, fake, status):
        fake.fail_next("sendMessage", status)
        with pytest.raises(DeliveryError) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))
        assert error.value.retryable is True and error.value.retry_after is None

    async def test_blocked_bot_is_not_retryable(self, channel, fake):
        fake.fail_next("sendMessage", 403)
        with pytest.raises(RecipientBlocked) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))
        assert error.value.retryable is False
        assert "blocked" in error.value.reason

    async def test_bad_request_is_not_retryable(self, channel, fake):
        fake.fail_next("sendMessage", 400)
        with pytest.raises(DeliveryError) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))
        assert error.value.retryable is False and "chat not found" in error.value.reason

    async def test_network_error_is_retryable(self):
        channel = TelegramChannel(TOKEN, webhook_secret=SECRET, api_base="http://127.0.0.1:9", request_timeout=2)
        try:
            with pytest.raises(DeliveryError) as error:
                await channel.send(str(CHAT_ID), OutboundMessage("Bonjour"))
            assert error.value.retryable is True
            assert TOKEN not in error.value.reason
        finally:
            await channel.close()

    async def test_send_voice_uploads_the_file(self, channel, fake, tmp_path):
        voice = tmp_path / "reponse.ogg"
        voice.write_bytes(b"OggS\x00fake-opus-voice-note" * 10)
        message = OutboundMessage(
            "Camille : voici ma réponse",
            attachment=Attachment("voice", "audio/ogg", duration_seconds=3),
            attachment_path=str(voice),
        )
        result = await channel.send(str(CHAT_ID), message)
        [call] = fake.sent(CHAT_ID)
        assert call.method == "sendVoice"
        assert call.files["voice"].data == voice.read_bytes()
        assert call.files["voice"].filename == "reponse.ogg"
        assert (call.params["caption"], call.params["duration"]) == ("Camille : voici ma réponse", 3)
        assert result.platform_message_id is not None

    async def test_missing_attachment_file_is_not_retryable(self, channel, fake, tmp_path):
        with pytest.raises(DeliveryError) as error:
            await channel.send(str(CHAT_ID), OutboundMessage("x", attachment_path=str(tmp_path / "gone.ogg")))
        assert error.value.retryable is False


@on_module_loop
class TestCallbacksAndFiles:
    async def test_answer_callback(self, channel, fake):
        await channel.answer_callback("4382bfdwdsb323b2d9")
        assert fake.calls("answerCallbackQuery")[0].params == {"callback_query_id": "4382bfdwdsb323b2d9"}
        fake.fail_next("answerCallbackQuery", 400, description="Bad Request: query is too old")
        await channel.answer_callback("expired")  # failures are ignored

    async def test_fetch_file(self, channel, fake):
        data = b"OggS" + bytes(range(256)) * 40
        fake.register_file("voice-1", data, "voice/file_7.oga")
        assert await channel.fetch_file("voice-1", max_bytes=1_000_000) == (data, "audio/ogg")
        assert [c.method for c in fake.calls()] == ["getFile", "downloadFile"]

    async def test_fetch_file_limits(self, channel, fake):
        fake.register_file("big", b"x" * 2000, "documents/file_1.pdf")
        with pytest.raises(FileTooLarge):
            await channel.fetch_file("big", max_bytes=1000)
        with pytest.raises(DeliveryError) as error:
            await channel.fetch_file("unknown", max_bytes=1000)
        assert error.value.retryable is False


@on_module_loop
class TestPoll:
    async def test_poll_hands_updates_in_order_then_stops(self, channel, fake):
        for name in ("text_start", "callback_query", "location"):
            fake.queue_update(json.loads(fixture(name)))
        fake.fail_next("getUpdates", 500)  # a server error on the way: polling backs off and goes on
        stop = asyncio.Event()
        received = []

        async def handle(body: bytes) -> None:
            received.extend(channel.parse(body))
            if len(received) == 3:
                stop.set()

        await asyncio.wait_for(channel.poll(handle, stop, timeout=1, initial_backoff=0.05), 5)
        assert [m.external_id for m in received] == ["700000001", "700000003", "700000004"]
        assert [m.kind for m in received] == ["text", "choice", "location"]
        assert fake.calls()[0].method == "deleteWebhook"
        assert [c.status for c in fake.calls("getUpdates")][:2] == [500, 200]

    async def test_poll_skips_bad_updates_and_confirms_handled_ones(self, channel, fake):
        first = fake.queue_update(text_update("un"))
        second = fake.queue_update(text_update("deux"))
        stop = asyncio.Event()
        seen = []

        async def handle(body: bytes) -> None:
            update_id = json.loads(body)["update_id"]
            seen.append(update_id)
            if update_id == first["update_id"]:
                raise BadPayload("refused by the route")
            stop.set()

        await asyncio.wait_for(channel.poll(handle, stop, timeout=1), 5)
        assert seen == [first["update_id"], second["update_id"]]
        assert fake.calls("getUpdates")[-1].params["offset"] == second["update_id"] + 1
        assert fake.pending_updates() == []

    async def test_poll_retries_a_failing_handler_then_moves_on(self, channel, fake):
        update = fake.queue_update(text_update("boom"))
        stop = asyncio.Event()
        attempts = []

        async def handle(body: bytes) -> None:
            attempts.append(json.loads(body)["update_id"])
            if len(attempts) == 3:
                stop.set()
            raise RuntimeError("database unavailable")

        await asyncio.wait_for(channel.poll(handle, stop, timeout=1, initial_backoff=0.01, max_handle_attempts=3), 5)
        assert attempts == [update["update_id"]] * 3
        assert fake.pending_updates() == []  # skipped, hence confirmed

    async def test_poll_stops_promptly_during_a_long_poll(self, channel, fake):
        stop = asyncio.Event()

        async def handle(body: bytes) -> None:
            raise AssertionError("no update was queued")

        task = asyncio.create_task(channel.poll(handle, stop, timeout=25))
        await fake.wait_for_async(lambda: fake.calls("getUpdates"))
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 2)
        assert time.monotonic() - started < 0.2

    async def test_poll_deletes_the_webhook_first(self, channel, fake):
        await channel.bot.set_webhook("https://example.org/bots/telegram/webhook", secret_token=SECRET)
        assert fake.webhook_url
        fake.queue_update(text_update("après le webhook"))
        stop = asyncio.Event()
        received = []

        async def handle(body: bytes) -> None:
            received.extend(channel.parse(body))
            stop.set()

        await asyncio.wait_for(channel.poll(handle, stop, timeout=1), 5)
        assert [m.text for m in received] == ["après le webhook"]
        assert fake.webhook_url == ""
