"""WebM/Opus voice notes built byte by byte (shaped like Chromium's MediaRecorder output), and the
malformed ones the hardening tests throw at the upload routes. Also used by bench/bench_floods.py."""

from __future__ import annotations

import struct

from conversations.audio import opus_head

EBML = b"\x1a\x45\xdf\xa3"
UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"
FRAME_20MS = b"\xf8\xff\xfe"  # CELT, 20 ms, code 0
FRAME_2_5MS = bytes([16 << 3]) + b"\xff\xfe"  # CELT, 2.5 ms, code 0


def element(ident: bytes, content: bytes) -> bytes:
    """An EBML element with a 4-byte size (up to 256 MiB)."""
    size = len(content)
    return ident + bytes([0x10 | (size >> 24), (size >> 16) & 0xFF, (size >> 8) & 0xFF, size & 0xFF]) + content


def header(head: bytes | None = None) -> bytes:
    head = opus_head(channels=1, pre_skip=312) if head is None else head
    ebml = element(EBML, element(b"\x42\x82", b"webm"))
    track = element(b"\xae", element(b"\xd7", b"\x01") + element(b"\x86", b"A_OPUS")
                    + element(b"\x63\xa2", head) + element(b"\xe1", element(b"\x9f", b"\x01")))
    return ebml + b"\x18\x53\x80\x67" + UNKNOWN_SIZE + element(b"\x16\x54\xae\x6b", track)


def block(payload: bytes, timecode: int = 0) -> bytes:
    return element(b"\xa3", b"\x81" + struct.pack(">h", timecode) + b"\x80" + payload)


def webm(packets: list[bytes], head: bytes | None = None) -> bytes:
    cluster = b"\x1f\x43\xb6\x75" + UNKNOWN_SIZE + element(b"\xe7", b"\x00")
    blocks = b"".join(block(p, (i * 20) % 30000) for i, p in enumerate(packets))
    return header(head) + cluster + blocks


def fragmented_webm(total_bytes: int, frame: bytes = FRAME_2_5MS, padding: int = 0) -> bytes:
    """About `total_bytes` of WebM made of tiny blocks (the flood of issue 9: 2.5 ms blocks)."""
    one = block(frame + b"\0" * padding)
    start = header() + b"\x1f\x43\xb6\x75" + UNKNOWN_SIZE + element(b"\xe7", b"\x00")
    return start + one * max(1, (total_bytes - len(start)) // len(one))


def malformed_notes() -> dict[str, bytes]:
    """The malformed voice notes of issue 9, by name."""
    good = webm([FRAME_20MS] * 50)
    cluster = b"\x1f\x43\xb6\x75" + UNKNOWN_SIZE
    return {
        "empty_simple_block": header() + cluster + b"\xa3\x80",
        "two_byte_block": header() + cluster + element(b"\xa3", b"\x81\x00"),
        "short_opus_head": webm([FRAME_20MS] * 50, head=b"OpusHead"),
        "truncated_ebml": good[:7],
        "truncated_header": good[:60],
        "laced_block": header() + cluster + element(b"\xa3", b"\x81\x00\x00\x82\x01" + FRAME_20MS * 2),
        "huge_element_size": EBML + b"\x01\xff\xff\xff\xff\xff\xff\xfe" + b"\0" * 16,
        "no_audio": header() + cluster,
        "random_bytes": bytes(range(256)) * 8,
        "ogg_magic_only": b"OggS" + b"\0" * 40,
    }
