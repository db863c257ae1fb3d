"""WhatsApp Cloud API channel against a fake Graph API over real loopback HTTP."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bots.base import BadPayload, Choice, DeliveryError, OutboundMessage, OutsideWindow
from bots.whatsapp import (
    Forbidden,
    MediaTooLarge,
    RateLimiter,
    Unauthorized,
    WhatsAppChannel,
    numbered_choice,
    window_open,
)
from tests.fakes.graph_api import FakeGraphApi, sign

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp"
SECRET = "test-app-secret"
PERSON = "33639980001"
NUMBER = FakeGraphApi.PHONE_NUMBER_ID


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


@pytest.fixture(scope="module")
def server():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


@pytest.fixture
async def graph(server):
    server.reset()
    yield server


@pytest.fixture
async def channel(server):
    channel = WhatsAppChannel(
        app_secret=SECRET,
        verify_token="verify-me",
        access_token="test-access-token",
        graph_base=server.base_url,
        phone_number_id=NUMBER,
        messages_per_second=1000,
    )
    yield channel
    await channel.close()


def choices(n: int, title: str = "Choix") -> tuple[Choice, ...]:
    return tuple(Choice(value=f"c{i}", title=f"{title} {i}") for i in range(1, n + 1))


# ---- webhook checks --------------------------------------------------------------------------


def test_handshake(channel):
    params = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    assert channel.verify_handshake(params) == "1158201444"
    for wrong in ({"hub.verify_token": "nope"}, {"hub.mode": "unsubscribe"}, {"hub.verify_token": ""}):
        with pytest.raises(Forbidden):
            channel.verify_handshake(params | wrong)
    unconfigured = WhatsAppChannel(app_secret=None, verify_token=None, access_token=None)
    with pytest.raises(Forbidden):
        unconfigured.verify_handshake(params | {"hub.verify_token": ""})


def test_signature(channel):
    body = fixture("text")
    channel.verify_signature(body, sign(body, SECRET))
    with pytest.raises(Unauthorized):
        channel.verify_signature(body, None)
    with pytest.raises(Unauthorized):
        channel.verify_signature(body, sign(body, "another-secret"))
    with pytest.raises(Unauthorized):
        channel.verify_signature(body + b" ", sign(body, SECRET))
    with pytest.raises(Unauthorized):
        channel.verify_signature(body, sign(body, SECRET).removeprefix("sha256="))


# ---- parsing ---------------------------------------------------------------------------------


def test_parse_text(channel):
    messages, statuses = channel.parse(fixture("text"))
    assert statuses == []
    (m,) = messages
    assert (m.channel, m.user_id, m.account, m.kind) == ("whatsapp", PERSON, NUMBER, "text")
    assert m.external_id.startswith("wamid.")
    assert m.text == "Bonjour, j'ai besoin d'aide pour mon loyer"
    assert m.address == f"whatsapp:{PERSON}"


@pytest.mark.parametrize(
    "name, choice", [("interactive_button_reply", "talk"), ("interactive_list_reply", "housing"),
                     ("button_template_reply", "reopen")]
)
def test_parse_choices(channel, name, choice):
    (m,), _ = channel.parse(fixture(name))
    assert m.kind == "choice" and m.choice == choice


def test_parse_location(channel):
    (m,), _ = channel.parse(fixture("location"))
    assert m.kind == "location"
    assert (m.location.latitude, m.location.longitude) == (48.8566, 2.3522)


@pytest.mark.parametrize(
    "name, kind, content_type, platform_id, text",
    [
        ("audio_voice", "voice", "audio/ogg; codecs=opus", "1000000000000006", None),
        ("image", "image", "image/jpeg", "1000000000000007", "Mon avis d'échéance"),
        ("document", "document", "application/pdf", "1000000000000008", "Courrier de la CAF"),
        ("sticker", "sticker", "image/webp", "1000000000000009", None),
    ],
)
def test_parse_media(channel, name, kind, content_type, platform_id, text):
    (m,), _ = channel.parse(fixture(name))
    assert m.kind == "attachment"
    assert (m.attachment.kind, m.attachment.content_type, m.attachment.platform_id) == (kind, content_type, platform_id)
    assert m.text == text
    if name == "document":
        assert m.attachment.filename == "courrier-caf.pdf"


def test_unsupported_is_kept_for_a_plain_answer_and_reactions_are_skipped(channel):
    (m,), _ = channel.parse(fixture("unsupported"))
    assert m.kind == "attachment" and m.attachment.kind == "unsupported"
    assert channel.parse(fixture("reaction")) == ([], [])


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "failed"])
def test_parse_statuses(channel, status):
    messages, (s,) = channel.parse(fixture(f"status_{status}"))
    assert messages == []
    assert (s.channel, s.status) == ("whatsapp", status)
    assert s.platform_message_id.startswith("wamid.")
    assert s.error == ("131047 Re-engagement message" if status == "failed" else None)


def test_parse_several_numbers(channel):
    messages, _ = channel.parse(fixture("two_numbers"))
    assert [(m.account, m.user_id) for m in messages] == [
        (NUMBER, PERSON), (FakeGraphApi.OTHER_PHONE_NUMBER_ID, "33639980002")
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"entry": {}}',
        b'{"entry": [{"changes": [{"value": {"messaging_product": "whatsapp"}}]}]}',
        b'{"entry": [{"changes": [{"value": {"messaging_product": "whatsapp",'
        b' "metadata": {"phone_number_id": "1"}, "messages": [{"type": "text"}]}}]}]}',
    ],
)
def test_bad_payload(channel, body):
    with pytest.raises(BadPayload):
        channel.parse(body)


def test_a_long_story_is_taken_whole_beyond_whatsapps_limit_a_bad_payload(channel):
    data = json.loads(fixture("text"))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "a" * 5480
    (message,), _ = channel.parse(json.dumps(data).encode())
    assert message.text == "a" * 5480  # a person's long story, whole
    data["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "a" * 65_537
    with pytest.raises(BadPayload):
        channel.parse(json.dumps(data).encode())


def test_other_products_and_fields_are_ignored(channel):
    data = json.loads(fixture("text"))
    data["entry"][0]["changes"][0]["value"]["messaging_product"] = "instagram"
    assert channel.parse(json.dumps(data)) == ([], [])


# ---- sending ---------------------------------------------------------------------------------


async def test_send_text(channel, graph):
    result = await channel.send(PERSON, OutboundMessage(text="Bonjour !"))
    (body,) = graph.requests_for(PERSON)
    assert result.platform_message_id.startswith("wamid.")
    assert body == {
        "messaging_product": "whatsapp", "recipient_type": "individual", "to": PERSON,
        "type": "text", "text": {"preview_url": False, "body": "Bonjour !"},
    }
    assert graph.messages[0].authorization == "Bearer test-access-token"


async def test_send_from_another_number(channel, graph):
    await channel.send(PERSON, OutboundMessage(text="Bonjour"), account=FakeGraphApi.OTHER_PHONE_NUMBER_ID)
    assert graph.sent_from(NUMBER) == []
    assert len(graph.sent_from(FakeGraphApi.OTHER_PHONE_NUMBER_ID)) == 1


async def test_send_buttons_cut_titles_to_20(channel, graph):
    menu = (Choice("rights", "Connaître mes droits"), Choice("places", "Trouver un lieu d'aide près de chez moi"),
            Choice("talk", "Parler à quelqu'un"))
    await channel.send(PERSON, OutboundMessage(text="Que voulez-vous faire ?", choices=menu))
    (body,) = graph.requests_for(PERSON)
    interactive = body["interactive"]
    assert body["type"] == "interactive" and interactive["type"] == "button"
    assert interactive["body"] == {"text": "Que voulez-vous faire ?"}
    buttons = [b["reply"] for b in interactive["action"]["buttons"]]
    assert [b["id"] for b in buttons] == ["rights", "places", "talk"]
    assert all(len(b["title"]) <= 20 for b in buttons)
    assert buttons[0]["title"] == "Connaître mes droits"
    assert buttons[1]["title"] == "Trouver un lieu d'a…"


async def test_send_list_for_4_to_10_choices(channel, graph):
    many = choices(9) + (Choice("long", "Hébergement d'urgence et logement temporaire"),)
    await channel.send(PERSON, OutboundMessage(text="Votre besoin ?", choices=many))
    (body,) = graph.requests_for(PERSON)
    interactive = body["interactive"]
    assert interactive["type"] == "list"
    assert interactive["action"]["button"] == "Choisir"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [c.value for c in many]
    assert all(len(r["title"]) <= 24 for r in rows)
    assert rows[-1] == {"id": "long", "title": "Hébergement d'urgence et", "description": "logement temporaire"}


async def test_send_numbered_text_beyond_10_and_map_answer_back(channel, graph):
    many = choices(12, "Commune")
    await channel.send(PERSON, OutboundMessage(text="Quelle commune ?", choices=many))
    (body,) = graph.requests_for(PERSON)
    assert body["type"] == "text"
    text = body["text"]["body"]
    assert text.startswith("Quelle commune ?\n\n1. Commune 1\n2. Commune 2\n")
    assert "12. Commune 12" in text
    assert numbered_choice("2", many) == "c2"
    assert numbered_choice(" 12. ", many) == "c12"
    assert numbered_choice("13", many) is None
    assert numbered_choice("0", many) is None
    assert numbered_choice("deux", many) is None


async def test_send_location_request(channel, graph):
    await channel.send(PERSON, OutboundMessage(text="Où êtes-vous ?", request_location=True))
    (body,) = graph.requests_for(PERSON)
    assert body["interactive"]["type"] == "location_request_message"
    assert body["interactive"]["action"] == {"name": "send_location"}


async def test_send_template(channel, graph):
    message = OutboundMessage(text="ignored", template="reprise_contact", template_params=("Camille", "CCAS de Lille"))
    await channel.send(PERSON, message)
    (body,) = graph.requests_for(PERSON)
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "reprise_contact",
        "language": {"code": "fr"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Camille"},
                                                        {"type": "text", "text": "CCAS de Lille"}]}],
    }


async def test_voice_note_is_uploaded_then_sent_as_audio(channel, graph, tmp_path):
    note = tmp_path / "reponse.ogg"
    note.write_bytes(b"OggS\x00fake-opus-voice-note")
    result = await channel.send(PERSON, OutboundMessage(text="", attachment_path=str(note)))
    (upload,) = graph.uploads
    assert (upload.phone_number_id, upload.content_type, upload.content) == (NUMBER, "audio/ogg", note.read_bytes())
    assert upload.form["messaging_product"] == "whatsapp"
    (body,) = graph.requests_for(PERSON)
    assert body["type"] == "audio" and body["audio"] == {"id": upload.media_id}
    assert result.platform_message_id.startswith("wamid.")


async def test_fetch_media(channel, graph):
    media_id = graph.add_media(b"OggS voice", "audio/ogg; codecs=opus")
    content, content_type = await channel.fetch_media(media_id, max_bytes=1024)
    assert (content, content_type) == (b"OggS voice", "audio/ogg; codecs=opus")
    with pytest.raises(MediaTooLarge):
        await channel.fetch_media(media_id, max_bytes=4)


async def test_429_is_retryable_with_retry_after(channel, graph):
    graph.fail_next(429, retry_after=7)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(PERSON, OutboundMessage(text="Bonjour"))
    assert caught.value.retryable and caught.value.retry_after == 7.0
    assert not isinstance(caught.value, OutsideWindow)
    await channel.send(PERSON, OutboundMessage(text="Bonjour"))  # the next attempt goes through
    assert len(graph.requests_for(PERSON)) == 1 and graph.attempts == 2


@pytest.mark.parametrize("kind", [130429, 131056, 500])
async def test_rate_limits_and_server_errors_are_retryable(channel, graph, kind):
    graph.fail_next(kind)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(PERSON, OutboundMessage(text="Bonjour"))
    assert caught.value.retryable
    if kind == 500:  # a server error uses up an attempt (exponential backoff)
        assert caught.value.retry_after is None and not caught.value.rate_limited
    else:  # a rate limit does not, and waits Meta's pace when the answer has no Retry-After
        assert caught.value.rate_limited and caught.value.retry_after == {130429: 1.0, 131056: 6.0}[kind]


async def test_outside_window(channel, graph):
    graph.fail_next(131047)
    with pytest.raises(OutsideWindow) as caught:
        await channel.send(PERSON, OutboundMessage(text="Bonjour"))
    assert not caught.value.retryable and "131047" in caught.value.reason


async def test_other_client_errors_are_final(channel, graph):
    graph.fail_next(131026)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(PERSON, OutboundMessage(text="Bonjour"))
    assert not caught.value.retryable


async def test_network_error_is_retryable():
    channel = WhatsAppChannel(app_secret=SECRET, verify_token="v", access_token="t",
                              graph_base="http://127.0.0.1:9/v21.0", phone_number_id=NUMBER)
    try:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(PERSON, OutboundMessage(text="Bonjour"))
        assert caught.value.retryable
    finally:
        await channel.close()


async def test_rate_limiter_spreads_a_burst(channel, graph):
    channel.limiter = RateLimiter(rate=50, burst=2)
    started = time.monotonic()
    for i in range(8):
        await channel.send(PERSON, OutboundMessage(text=f"Message {i}"))
    times = [r.at for r in graph.messages]
    # 2 at once, then one every 20 ms: at least 6 x 20 ms in all
    assert times[-1] - times[0] >= 0.11
    assert time.monotonic() - started >= 0.11


def test_rate_limiter_is_per_number():
    now = [0.0]
    limiter = RateLimiter(rate=10, burst=1, clock=lambda: now[0])
    assert limiter.reserve("a") == 0 and limiter.reserve("b") == 0
    assert limiter.reserve("a") == pytest.approx(0.1)
    assert limiter.reserve("a") == pytest.approx(0.2)
    now[0] = 1.0
    assert limiter.reserve("a") == 0


def test_window_open():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    assert window_open(now - timedelta(hours=23, minutes=59), now)
    assert not window_open(now - timedelta(hours=24), now)
    assert not window_open(None, now)


async def test_choices_under_a_long_text_degrade_to_numbered_text(channel, graph):
    await channel.send(PERSON, OutboundMessage(text="x" * 1100, choices=choices(2)))
    (body,) = graph.requests_for(PERSON)
    assert body["type"] == "text" and body["text"]["body"].endswith("2. Choix 2\n\nRépondez par le numéro de votre choix.")


async def test_voice_note_with_words_sends_the_words_first(channel, graph, tmp_path):
    note = tmp_path / "reponse.ogg"
    note.write_bytes(b"OggS")
    await channel.send(PERSON, OutboundMessage(text="Camille : voici ma réponse", attachment_path=str(note)))
    assert [b["type"] for b in graph.requests_for(PERSON)] == ["text", "audio"]


async def test_the_on_the_wire_hook_runs_before_the_body_and_only_if_the_request_leaves(channel, graph):
    """The outbox notes a campaign send "in doubt" from this hook (conversations/deliver.py): it must
    run before the platform has the request, and never for a request that did not leave."""
    from bots.base import on_the_wire

    seen = []

    async def hook():
        seen.append(len(graph.messages))  # what the platform had when the hook ran

    token = on_the_wire.set(hook)
    try:
        await channel.send(PERSON, OutboundMessage(text="Bonjour"))
        assert seen == [0] and len(graph.messages) == 1
        away = WhatsAppChannel(app_secret=SECRET, verify_token="v", access_token="t",
                               graph_base="http://127.0.0.1:9/v21.0", phone_number_id=NUMBER)
        try:
            with pytest.raises(DeliveryError):
                await away.send(PERSON, OutboundMessage(text="Bonjour"))
        finally:
            await away.close()
        assert seen == [0]  # the connection was refused: no note
    finally:
        on_the_wire.reset(token)
