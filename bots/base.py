"""The channel-neutral message model: the only types that cross the bots/ boundary."""

from __future__ import annotations

import functools

import json
import math
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

# What the columns hold (conversations/models.py): ids longer than these are not from a platform.
MAX_ID_LENGTH = 128  # Address.external_id, Message.external_id
MAX_ACCOUNT_LENGTH = 64  # Address.account
MAX_CHOICE_LENGTH = 256  # a button's value (Telegram: 64 bytes; WhatsApp: 256 characters)
MAX_FIELD_LENGTH = 256  # other short strings: content types, file names, locales, callback ids
MAX_TRACKING_LENGTH = 512  # WhatsApp's biz_opaque_callback_data (the Cloud API's limit)

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    """The one text cleaner of every parser and form: a NUL (which PostgreSQL refuses in text and
    JSON) is removed, a lone surrogate (which no database can encode) becomes U+FFFD. The message
    is kept, so a platform never has to redeliver it."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


def _reject_constant(name: str) -> Any:
    raise BadPayload(f"{name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 is "inf"
        raise BadPayload("number out of range")
    return value


def load_json(body: bytes | str) -> Any:
    """json.loads for bodies from the internet: malformed JSON, bytes that are not UTF-8, NaN,
    Infinity, 1e999, integers of thousands of digits and deep nesting ("[" x 5,000: the C decoder
    stops at the interpreter's recursion limit, about a thousand levels, with a RecursionError)
    are a BadPayload, answered 400."""
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadPayload("JSON nested too deep") from None
    except BadPayload:
        raise
    except (ValueError, UnicodeDecodeError, TypeError):  # JSONDecodeError, digits limit, bad encoding
        raise BadPayload("not JSON") from None


def _check_length(name: str, value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise BadPayload(f"{name} longer than {limit} characters")


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        """A point on Earth or a BadPayload (NaN, infinite, out of range, a 400-digit number)."""
        try:
            lat, lon = float(self.latitude), float(self.longitude)
        except (TypeError, ValueError, OverflowError):
            raise BadPayload("location must be two numbers") from None
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
            raise BadPayload("location out of range")
        object.__setattr__(self, "latitude", lat)
        object.__setattr__(self, "longitude", lon)


@dataclass(frozen=True)
class Attachment:
    """A file on the platform (inbound) or stored by us (outbound)."""

    kind: str  # audio, voice, image, document, video, sticker
    content_type: str | None = None
    platform_id: str | None = None  # platform media/file id, to fetch it
    url: str | None = None
    size: int | None = None
    duration_seconds: int | None = None
    filename: str | None = None
    media_id: int | None = None  # our Media row, once stored

    def __post_init__(self) -> None:
        _clean_fields(self, ("kind", "content_type", "platform_id", "url", "filename"))
        for name in ("kind", "content_type", "platform_id", "filename"):
            _check_length(name, getattr(self, name), MAX_FIELD_LENGTH)
        for name in ("size", "duration_seconds"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or not 0 <= value < 2**63):
                object.__setattr__(self, name, None)  # informative only: a wrong one is dropped


@dataclass(frozen=True)
class InboundMessage:
    """What a person sent, whatever the channel."""

    channel: str  # telegram, whatsapp, webchat
    user_id: str  # the person's id on that channel (chat id, phone, web chat uuid)
    external_id: str  # unique per channel: platform retries carry the same one (dedupe key)
    text: str | None = None
    choice: str | None = None  # value of a button the person pressed
    location: Location | None = None
    attachment: Attachment | None = None
    account: str | None = None  # platform account that received it (WhatsApp phone number id)
    callback_id: str | None = None  # Telegram callback query to answer
    locale: str | None = None
    source: str | None = None  # an outreach source's code the message came with (web chat ?src=)
    # The platform id of our message whose button was pressed (Telegram: the callback query's
    # message; WhatsApp: the reply's context id): tells a press on an old question from a current one.
    reply_to: str | None = None

    def __post_init__(self) -> None:
        """Every parser builds one of these: its strings are cleaned here (clean_text) and its ids
        must fit their columns, whatever the channel (BadPayload otherwise)."""
        _clean_fields(self, ("channel", "user_id", "external_id", "text", "choice", "account", "callback_id",
                             "locale", "source", "reply_to"))
        for name in ("user_id", "external_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
                raise BadPayload(f"{name} missing or longer than {MAX_ID_LENGTH} characters")
        for name in ("text", "choice", "account", "callback_id", "locale", "source", "reply_to"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise BadPayload(f"{name} must be a string")
        _check_length("source", self.source, 64)
        _check_length("account", self.account, MAX_ACCOUNT_LENGTH)
        _check_length("choice", self.choice, MAX_CHOICE_LENGTH)
        _check_length("callback_id", self.callback_id, MAX_FIELD_LENGTH)
        _check_length("reply_to", self.reply_to, MAX_ID_LENGTH)
        if self.locale is not None and len(self.locale) > MAX_FIELD_LENGTH:
            object.__setattr__(self, "locale", None)  # a hint only

    @property
    def address(self) -> str:
        return f"{self.channel}:{self.user_id}"

    @property
    def kind(self) -> str:
        if self.choice is not None:
            return "choice"
        if self.location is not None:
            return "location"
        if self.attachment is not None:
            return "attachment"
        return "text"


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status reported by a platform for a message we sent."""

    channel: str
    platform_message_id: str
    status: str  # sent, delivered, read, failed
    error: str | None = None
    account: str | None = None  # the platform account that sent it (WhatsApp phone number id)
    recipient: str | None = None  # the person's id on the channel (WhatsApp: recipient_id)
    # What we gave the send to carry back (OutboundMessage.tracking; WhatsApp's
    # biz_opaque_callback_data): names our row even when its platform id was never recorded.
    tracking: str | None = None

    def __post_init__(self) -> None:
        _clean_fields(self, ("platform_message_id", "status", "error", "account", "recipient", "tracking"))
        _check_length("status id", self.platform_message_id, MAX_ID_LENGTH)
        _check_length("account", self.account, MAX_ACCOUNT_LENGTH)
        _check_length("recipient", self.recipient, MAX_ID_LENGTH)
        _check_length("tracking", self.tracking, MAX_TRACKING_LENGTH)


@dataclass(frozen=True)
class Choice:
    value: str
    title: str


@dataclass(frozen=True)
class Link:
    """A link shown as words, never as a raw URL: an inline URL button (Telegram), a CTA URL button
    (WhatsApp), a real link (web chat). `url` is https://… or tel:+33… (a phone number to tap)."""

    title: str  # "👉 Faire la demande", "📞 Appeler le 115", "🗺️ Voir sur la carte"
    url: str


@dataclass(frozen=True)
class Venue:
    """A place a tap opens in the person's maps app: Telegram sendVenue, WhatsApp location message,
    a map link with words in the web chat."""

    latitude: float
    longitude: float
    title: str
    address: str


@dataclass(frozen=True)
class OutboundMessage:
    """What we say to a person. Channels degrade what they cannot show to plain text."""

    text: str
    choices: tuple[Choice, ...] = ()
    request_location: bool = False
    attachment: Attachment | None = None
    attachment_path: str | None = None  # local file to upload (voice note recorded by a worker)
    # WhatsApp outside the 24-hour window: send this approved template instead.
    template: str | None = None
    template_params: tuple[str, ...] = field(default=())
    links: tuple[Link, ...] = ()
    venue: Venue | None = None
    locale: str = "fr"  # the language of `text` (the web chat sets lang and dir from it)
    # Opaque, non-personal, naming our row (the outbox sets "ob:<organisation>:<message id>"): a
    # channel that can have it echoed in its delivery statuses sends it (WhatsApp's
    # biz_opaque_callback_data); the others ignore it.
    tracking: str | None = None


@functools.cache
def _words():
    """bots/words/ (read here on first use: words imports bots.base)."""
    from words.catalogue import room

    return room(__file__)  # (a path resolved: not at every send)


def link_lines(message: "OutboundMessage", links: tuple[Link, ...] | None = None) -> str:
    """Links a channel cannot show as buttons, as words in the text: a phone number as its digits
    (which Telegram and WhatsApp make tappable), not repeated when the text already shows it; a web
    link as "title : url" on its own line. Returns the text to send."""
    from bots.phones import digits, display

    words = _words()
    text = message.text or ""
    lines = []
    for link in message.links if links is None else links:
        if link.url.startswith("tel:"):
            number = digits(link.url)
            core = number[2:] if number.startswith("33") and len(number) == 11 else number  # 04 78… or +33 4 78…
            if not number or core in digits(text):
                continue
            lines.append(words.text("links.call_line", message.locale, title=link.title, number=display(link.url)))
        else:
            lines.append(words.text("links.line", message.locale, title=link.title, url=link.url))
    return "\n\n".join(part for part in (text, "\n".join(lines)) if part)


def is_web(url: str) -> bool:
    return url.startswith(("https://", "http://"))


@dataclass(frozen=True)
class SendResult:
    platform_message_id: str | None = None


class DeliveryError(Exception):
    """A send failed. `retryable` errors are tried again with backoff (after `retry_after` if given).
    `rate_limited` ones (429 and the platforms' rate-limit codes) do not use up a delivery attempt:
    only the total time bounds them (ALLERVERS_DELIVERY_MAX_SECONDS)."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None,
                 rate_limited: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class OutsideWindow(DeliveryError):
    """WhatsApp: free-form message outside the 24-hour window and no template to fall back on."""

    def __init__(self, reason: str = "outside the 24-hour window"):
        super().__init__(reason, retryable=False)


# Set by the outbox around a send it must note "in doubt" (conversations/deliver.py): an adapter
# that says `notes_on_the_wire = True` awaits it right before the last bytes of the send's request
# are written (the headers sent, the body next), so that a crash before that point leaves the send
# un-noted (sent again, never skipped) and one after it noted (a request that may have reached the
# platform is never sent twice). Adapters without it: the outbox notes before calling send().
on_the_wire: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar("on_the_wire", default=None)


class Channel(Protocol):
    name: str

    async def send(self, user_id: str, message: OutboundMessage, *, account: str | None = None) -> SendResult:
        """Deliver one message; raise DeliveryError on failure."""
        ...

    async def close(self) -> None: ...


class Unauthorized(PermissionError):
    """A webhook request that is not from the platform: answered with `status_code`, changes nothing."""

    def __init__(self, reason: str = "unauthorized", status_code: int = 401):
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class Forbidden(Unauthorized):
    """A refused webhook verification or a wrong secret (403)."""

    def __init__(self, reason: str = "forbidden"):
        super().__init__(reason, 403)


class TooLarge(DeliveryError):
    """A file larger than the caller accepts (not retried)."""

    def __init__(self, reason: str = "file too large", size: int | None = None, max_bytes: int | None = None):
        super().__init__(reason, retryable=False)
        self.size = size
        self.max_bytes = max_bytes


class BadPayload(ValueError):
    """A webhook body that cannot be understood: answered with a clear 4xx, changes nothing."""


def _clean_fields(instance: Any, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(instance, name)
        if isinstance(value, str):
            cleaned = clean_text(value)
            if cleaned is not value:
                object.__setattr__(instance, name, cleaned)
