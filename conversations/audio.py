"""Audio containers without ffmpeg: Ogg pages, Opus durations, WebM (MediaRecorder) to Ogg remuxing.

Browsers record voice notes as WebM/Opus (Chromium) or Ogg/Opus (Firefox). WhatsApp and Telegram
want Ogg/Opus for voice notes, so WebM is remuxed to Ogg here: the Opus packets are copied as they
are, nothing is decoded or re-encoded. Pure functions over bytes; no I/O.

The bytes come from anyone on the internet: every parser here is bounded (at most `max_blocks`
blocks or pages, and as many elements as a few times that) and fails with ValueError only
(TooFragmented past the bounds); `check_voice` is the one function the web server runs, in a child
process (conversations.media.AudioChecker), so that a note's parsing never holds its event loop.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

OGG_MAGIC = b"OggS"
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
OPUS_RATE = 48_000

# Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial value 0, no final xor.
_CRC_TABLE = []
for _i in range(256):
    _r = _i << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else (_r << 1)
    _CRC_TABLE.append(_r & 0xFFFFFFFF)


_REVERSED_BITS = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC, computed by zlib's (reflected) CRC-32 over bit-reversed bytes: C speed, same value
    as the table-driven reference `ogg_crc_reference`."""
    raw = zlib.crc32(data.translate(_REVERSED_BITS), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def ogg_crc_reference(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) & 0xFF) ^ byte]
    return crc


class TooFragmented(ValueError):
    """More blocks (or pages, or elements) than a voice note of the allowed length can hold."""


class TooLong(ValueError):
    """The packets read so far already last longer than allowed (parsing stops there)."""


@dataclass(frozen=True)
class VoiceLimits:
    """What check_voice needs of Settings (sent to the child process: small and picklable)."""

    max_media_bytes: int
    max_media_seconds: int
    max_blocks: int

    @classmethod
    def of(cls, settings) -> "VoiceLimits":
        return cls(settings.max_media_bytes, settings.max_media_seconds,
                   settings.audio_max_blocks_per_second * settings.max_media_seconds)


def opus_packet_samples(packet: bytes) -> int:
    """Samples (at 48 kHz) in one Opus packet, from its TOC byte (RFC 6716, section 3.1)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        frame = (480, 960, 1920, 2880)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        frame = (480, 960)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        frame = (120, 240, 480, 960)[config % 4]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 0
    return frame * count


def opus_head(channels: int = 1, pre_skip: int = 312, input_rate: int = OPUS_RATE) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def opus_tags(vendor: bytes = b"allervers") -> bytes:
    return b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)


def _page(packets: list[bytes], granule: int, serial: int, sequence: int, flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIIIB", OGG_MAGIC, 0, flags, granule, serial, sequence, 0, len(lacing)) + bytes(lacing)
    page = bytearray(header + b"".join(packets))
    page[22:26] = struct.pack("<I", ogg_crc(bytes(page)))
    return bytes(page)


def ogg_opus(packets: list[bytes], head: bytes | None = None, serial: int = 0x416C6C76) -> bytes:
    """An Ogg/Opus file from an OpusHead and Opus packets (copied, not re-encoded)."""
    head = head or opus_head()
    if len(head) < 19 or not head.startswith(b"OpusHead"):
        raise ValueError("bad OpusHead")
    pre_skip = struct.unpack_from("<H", head, 10)[0]
    out = [_page([head], 0, serial, 0, 0x02), _page([opus_tags()], 0, serial, 1, 0)]
    sequence, granule = 2, pre_skip
    batch: list[bytes] = []
    segments = 0
    packets = [p for p in packets if p]
    for index, packet in enumerate(packets):
        needed = len(packet) // 255 + 1
        if batch and (segments + needed > 255 or len(batch) >= 50):
            out.append(_page(batch, granule, serial, sequence, 0))
            sequence, batch, segments = sequence + 1, [], 0
        batch.append(packet)
        segments += needed
        granule += opus_packet_samples(packet)
    out.append(_page(batch, granule, serial, sequence, 0x04))
    return b"".join(out)


def silent_ogg_opus(seconds: float = 1.0) -> bytes:
    """A valid Ogg/Opus file of silence (20 ms CELT frames): for tests and demos."""
    frames = max(1, int(seconds * 50))
    return ogg_opus([b"\xf8\xff\xfe"] * frames, opus_head(channels=1, pre_skip=312))


def ogg_duration(data: bytes, max_pages: int | None = None) -> float | None:
    """Duration of an Ogg/Opus or Ogg/Vorbis file in seconds (from the last granule position)."""
    if not data.startswith(OGG_MAGIC):
        return None
    pos, rate, pre_skip, last_granule, pages = 0, None, 0, None, 0
    while pos + 27 <= len(data):
        pages += 1
        if max_pages is not None and pages > max_pages:
            raise TooFragmented("too many Ogg pages")
        if data[pos : pos + 4] != OGG_MAGIC:
            found = data.find(OGG_MAGIC, pos + 1)
            if found < 0:
                break
            pos = found
            continue
        granule = struct.unpack_from("<q", data, pos + 6)[0]
        count = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + count]
        body = pos + 27 + count
        if rate is None:
            first = data[body : body + 30]
            if first.startswith(b"OpusHead") and len(first) >= 12:
                rate, pre_skip = OPUS_RATE, struct.unpack_from("<H", first, 10)[0]
            elif first.startswith(b"\x01vorbis") and len(first) >= 16:
                rate = struct.unpack_from("<I", first, 12)[0] or None
        if granule >= 0 and granule != -1:
            last_granule = granule
        pos = body + sum(lacing)
    if rate is None or last_granule is None:
        return None
    return max(0.0, (last_granule - pre_skip) / rate)


# ---- WebM (Matroska) -------------------------------------------------------------------------

_MASTERS = {
    0x18538067,  # Segment
    0x1F43B675,  # Cluster
    0x1654AE6B,  # Tracks
    0xAE,  # TrackEntry
    0xA0,  # BlockGroup
    0xE1,  # Audio
}
_SIMPLE_BLOCK, _BLOCK, _CODEC_ID, _CODEC_PRIVATE, _CHANNELS, _TRACK_NUMBER = 0xA3, 0xA1, 0x86, 0x63A2, 0x9F, 0xD7


def _vint(data: bytes, pos: int, marker: bool) -> tuple[int, int, bool]:
    """(value, length, unknown size) of an EBML variable-length integer at `pos`."""
    first = data[pos]
    length, mask = 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML integer")
    value = first if marker else first & (mask - 1)
    for i in range(1, length):
        value = (value << 8) | data[pos + i]
    unknown = not marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def webm_opus_packets(data: bytes, max_blocks: int | None = None,
                      max_seconds: float | None = None) -> tuple[bytes | None, int, list[bytes]]:
    """(OpusHead from CodecPrivate or None, channels, Opus packets) of a WebM/Opus recording.
    ValueError if malformed; TooFragmented past `max_blocks` blocks (or 4 x that many elements);
    TooLong as soon as the packets last longer than `max_seconds`."""
    max_samples = None if max_seconds is None else max_seconds * OPUS_RATE
    samples = 0
    if not data.startswith(EBML_MAGIC):
        raise ValueError("not a WebM file")
    pos, head, channels, codec = 0, None, 1, None
    packets: list[bytes] = []
    elements, max_elements = 0, None if max_blocks is None else 4 * max_blocks + 1000
    while pos < len(data):
        elements += 1
        if max_elements is not None and elements > max_elements:
            raise TooFragmented("too many WebM elements")
        try:
            element, id_length, _ = _vint(data, pos, marker=True)
            size, size_length, unknown = _vint(data, pos + id_length, marker=False)
        except (ValueError, IndexError):
            break  # a truncated tail (recording cut short): keep what came before
        start = pos + id_length + size_length
        if element in _MASTERS:
            pos = start  # descend: children follow (sizes may be unknown while recording)
            continue
        if unknown or start + size > len(data):
            break
        content = data[start : start + size]
        if element in (_SIMPLE_BLOCK, _BLOCK):
            if not content:
                raise ValueError("empty WebM block")
            _, track_length, _ = _vint(content, 0, marker=False)
            if len(content) < track_length + 3:
                raise ValueError("truncated WebM block")
            if max_blocks is not None and len(packets) >= max_blocks:
                raise TooFragmented("too many WebM blocks")
            flags = content[track_length + 2]
            if (flags >> 1) & 3:
                raise ValueError("laced WebM blocks are not supported")
            packet = content[track_length + 3 :]
            if max_samples is not None:
                samples += opus_packet_samples(packet)
                if samples > max_samples:
                    raise TooLong("longer than allowed")
            packets.append(packet)
        elif element == _CODEC_PRIVATE:
            head = content
        elif element == _CODEC_ID:
            codec = content.rstrip(b"\0").decode("ascii", "replace")
        elif element == _CHANNELS:
            channels = int.from_bytes(content, "big") or 1
        pos = start + size
    if codec is not None and codec != "A_OPUS":
        raise ValueError(f"WebM codec {codec} is not Opus")
    return (head if head and head.startswith(b"OpusHead") else None), channels, packets


def webm_to_ogg(data: bytes, max_blocks: int | None = None, max_seconds: float | None = None) -> bytes:
    head, channels, packets = webm_opus_packets(data, max_blocks, max_seconds)
    if not [p for p in packets if p]:
        raise ValueError("no audio in the recording")
    if head is not None and len(head) < 19:
        raise ValueError("bad OpusHead")
    return ogg_opus(packets, head or opus_head(channels=min(max(channels, 1), 255), pre_skip=0))


def normalise_audio(data: bytes, content_type: str, max_blocks: int | None = None,
                    max_seconds: float | None = None) -> tuple[bytes, str, float | None]:
    """Voice notes stored and sent as Ogg/Opus when possible: (bytes, content type, duration)."""
    base = (content_type or "").split(";")[0].strip().lower()
    if data.startswith(EBML_MAGIC):
        data = webm_to_ogg(data, max_blocks, max_seconds)
        return data, "audio/ogg", ogg_duration(data, max_blocks)
    if data.startswith(OGG_MAGIC):
        return data, "audio/ogg", ogg_duration(data, max_blocks)
    return data, base or "application/octet-stream", None


def is_mp4(data: bytes) -> bool:
    """An ISO media file (Safari records voice notes as audio/mp4): its first box is `ftyp`."""
    return len(data) >= 12 and data[4:8] == b"ftyp"


def check_voice(limits: VoiceLimits, data: bytes, content_type: str, kind: str,
                strict: bool = False) -> tuple[bytes, str, float | None, str | None]:
    """(bytes, content type, duration, refusal): refusal is None or 'too_large', 'too_long',
    'too_fragmented', 'unreadable'. `strict` (uploads from our own pages): only readable WebM/Ogg
    and MP4 recordings are kept; otherwise (files fetched from a platform) an unknown or malformed
    container is stored as it came."""
    if len(data) > limits.max_media_bytes:
        return data, content_type, None, "too_large"
    duration = None
    if kind in ("voice", "audio") or content_type.startswith("audio/"):
        try:
            # a little past the limit (container overhead, rounding): the exact check follows
            data, content_type, duration = normalise_audio(data, content_type, limits.max_blocks,
                                                           limits.max_media_seconds + 1)
        except TooFragmented:
            return data, content_type, None, "too_fragmented"
        except TooLong:
            return data, content_type, None, "too_long"
        except (ValueError, IndexError, struct.error, OverflowError):
            if strict:
                return data, content_type, None, "unreadable"
            # not a container we know: stored as it came
        if strict and duration is None:
            if not is_mp4(data):
                return data, content_type, None, "unreadable"
            content_type = "audio/mp4"
    if duration is not None and duration > limits.max_media_seconds:
        return data, content_type, duration, "too_long"
    return data, content_type.split(";")[0].strip(), duration, None
