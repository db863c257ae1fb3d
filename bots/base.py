"""The channel-neutral message model: the only types that cross the bots/ boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


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


@dataclass(frozen=True)
class Choice:
    value: str
    title: str


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
