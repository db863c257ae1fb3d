"""Pure parts of voice notes and of WhatsApp's 24-hour window: Ogg/Opus, WebM remuxing, `prepare`."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

import pytest

from bots.base import OutboundMessage, OutsideWindow
from bots.whatsapp import WhatsAppChannel
from conversations.audio import (
    normalise_audio,
    ogg_crc,
    ogg_duration,
    opus_head,
    opus_packet_samples,
    silent_ogg_opus,
    webm_to_ogg,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def test_ogg_crc_matches_the_reference_check_value():
    assert ogg_crc(b"123456789") == 0x89A1897F  # CRC-32, poly 0x04C11DB7, init 0, not reflected


def test_opus_packet_durations():
    assert opus_packet_samples(b"\xf8\xff\xfe") == 960  # CELT 20 ms, one frame
    assert opus_packet_samples(bytes([(1 << 3) | 1, 0])) == 1920  # SILK 20 ms, two frames
    assert opus_packet_samples(bytes([(17 << 3) | 3, 4])) == 4 * 240  # CELT 5 ms, four frames
    assert opus_packet_samples(b"") == 0


def test_silent_file_is_valid_ogg_with_its_duration():
    data = silent_ogg_opus(3.0)
    assert data.startswith(b"OggS") and ogg_duration(data) == 3.0
    # Every page's CRC is right (a player may refuse a file otherwise).
    pos = 0
    while pos < len(data):
        count = data[pos + 26]
        end = pos + 27 + count + sum(data[pos + 27 : pos + 27 + count])
        page = bytearray(data[pos:end])
        crc = struct.unpack_from("<I", page, 22)[0]
        page[22:26] = b"\0\0\0\0"
        assert ogg_crc(bytes(page)) == crc
        pos = end
    assert ogg_duration(b"not ogg") is None


def _el(ident: bytes, content: bytes) -> bytes:
    size = len(content)
    header = bytes([0x80 | size]) if size < 127 else bytes([0x40 | (size >> 8), size & 0xFF])
    return ident + header + content


def webm(packets: list[bytes], head: bytes) -> bytes:
    """A WebM file shaped like Chromium's MediaRecorder output (unknown-size segment and cluster)."""
    ebml = _el(b"\x1a\x45\xdf\xa3", _el(b"\x42\x82", b"webm"))
    track = _el(b"\xae", _el(b"\xd7", b"\x01") + _el(b"\x86", b"A_OPUS") + _el(b"\x63\xa2", head)
                + _el(b"\xe1", _el(b"\x9f", b"\x01")))
    blocks = b"".join(_el(b"\xa3", b"\x81" + struct.pack(">h", i * 20) + b"\x80" + p) for i, p in enumerate(packets))
    cluster = b"\x1f\x43\xb6\x75" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + _el(b"\xe7", b"\x00") + blocks
    segment = b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff" + _el(b"\x16\x54\xae\x6b", track) + cluster
    return ebml + segment


def test_webm_recording_is_remuxed_to_ogg_without_reencoding():
    packets = [b"\xf8\xff\xfe"] * 100  # 2 s
    head = opus_head(channels=1, pre_skip=312)
    ogg = webm_to_ogg(webm(packets, head))
    assert ogg.startswith(b"OggS") and ogg_duration(ogg) == 2.0
    assert ogg.count(b"\xf8\xff\xfe") == 100
    data, content_type, duration = normalise_audio(webm(packets, head) + b"\x1f\x43", "audio/webm;codecs=opus")
    assert content_type == "audio/ogg" and duration == 2.0  # a truncated tail is tolerated
    assert normalise_audio(b"\x00mp4", "audio/mp4; x=1") == (b"\x00mp4", "audio/mp4", None)
    with pytest.raises(ValueError):
        webm_to_ogg(webm([], head))


@pytest.fixture
def channel():
    return WhatsAppChannel(app_secret="s", verify_token="v", access_token="t", phone_number_id="1")


async def test_prepare_inside_the_window_changes_nothing(channel):
    message = OutboundMessage("Bonjour\n— Camille")
    context = {"last_inbound_at": NOW - timedelta(hours=23), "now": NOW, "template": "allervers_reponse"}
    assert await channel.prepare(message, context) is message
    assert channel.window_open(NOW - timedelta(hours=23), NOW) and not channel.window_open(None, NOW)


async def test_prepare_outside_the_window(channel):
    message = OutboundMessage("Bonjour\n— Camille")
    late = {"last_inbound_at": NOW - timedelta(hours=25), "now": NOW}
    with pytest.raises(OutsideWindow) as refused:
        await channel.prepare(message, late)
    assert refused.value.reason == "fenêtre de 24 h fermée : la personne doit d'abord réécrire"
    invitation = await channel.prepare(message, late | {"template": "allervers_reponse", "template_params": ("Camille",)})
    assert invitation.template == "allervers_reponse" and invitation.template_params == ("Camille",)
    assert channel.build_payload(invitation)["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Camille"}]
    assert await channel.prepare(message, late | {"template": "x", "awaiting_answer": True}) is None
    # The platform said 131047: closed, whatever our clock says.
    forced = {"last_inbound_at": NOW - timedelta(hours=1), "now": NOW, "window_closed": True}
    with pytest.raises(OutsideWindow):
        await channel.prepare(message, forced)
