"""Sources: codes, deep links per channel and QR codes (segno).

A code is 8 characters of an alphabet without look-alikes (no 0/O, 1/I/L): 31^8 ≈ 8.5·10^11
values, drawn with `secrets`, URL-safe and short enough to type from a flyer. Codes are only
looked up when a message carries one: an unknown code is ignored (the person gets the normal welcome).
"""

from __future__ import annotations

import io
import re
import secrets
from functools import lru_cache
from urllib.parse import quote

from words.catalogue import room

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE = re.compile(rf"^[{ALPHABET}]{{{CODE_LENGTH}}}$")
# A code inside free text (a WhatsApp message prefilled from the link): a word of the right shape.
CODE_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9])([{ALPHABET}]{{{CODE_LENGTH}}})(?![A-Za-z0-9])")


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def valid_code(value: object) -> bool:
    return isinstance(value, str) and CODE.match(value) is not None


def codes_in(text: str | None) -> list[str]:
    """Candidate codes in a message (at most 3 looked up: a long text cannot cost more)."""
    if not text or len(text) > 1000:
        return []
    found = [m.group(1) for m in CODE_IN_TEXT.finditer(text)]
    # A code has at least one digit and one letter: plain words in capitals ("BONJOUR!") are not codes.
    return [c for c in dict.fromkeys(found) if any(ch.isdigit() for ch in c) and any(ch.isalpha() for ch in c)][:3]


WORDS = room(__file__)  # outreach/words/{fr,en,ar,uk}.yaml


@lru_cache(maxsize=8)
def texts(locale: str | None = "fr") -> dict:
    """The room's words in one language (French where a key is missing), as a tree by group:
    texts("ar")["news_consent"]["ask"], texts()["kinds"], texts()["campaign_buttons"]["cmp:menu"]."""
    tree: dict = {}
    for key in WORDS.keys():
        group, _, name = key.partition(".")
        if name:
            tree.setdefault(group, {})[name] = WORDS.raw(key, locale)
        else:
            tree[group] = WORDS.raw(key, locale)
    return tree


def links(settings, source, channels) -> dict[str, str]:
    """The deep link of every enabled channel: {"telegram": ..., "whatsapp": ..., "webchat": ...}."""
    result: dict[str, str] = {}
    if "telegram" in channels and settings.telegram_bot_username:
        result["telegram"] = f"https://t.me/{quote(settings.telegram_bot_username.lstrip('@'))}?start={source.code}"
    number = re.sub(r"\D", "", settings.whatsapp_display_number or "")
    if "whatsapp" in channels and number:
        phrase = texts()["whatsapp_phrase"].format(name=source.name, code=source.code)
        result["whatsapp"] = f"https://wa.me/{number}?text={quote(phrase)}"
    if "webchat" in channels:
        result["webchat"] = f"{settings.public_url.rstrip('/')}/chat?src={source.code}"
    return result


def qr(url: str):
    import segno

    return segno.make(url, error="m", micro=False)


def qr_svg(url: str, title: str = "") -> bytes:
    buffer = io.BytesIO()
    qr(url).save(buffer, kind="svg", scale=8, border=4, xmldecl=False, title=title or None, svgns=True)
    return buffer.getvalue()


def qr_png(url: str) -> bytes:
    buffer = io.BytesIO()
    qr(url).save(buffer, kind="png", scale=10, border=4)
    return buffer.getvalue()
