"""WhatsApp Cloud API channel: webhook checks, payload parsing, sends through the Graph API.

Translates only. No database, no flows: the caller stores what `parse` returns and queues what
`send` delivers. One web link is an interactive "cta_url" message (a button with words, display
text at most 20 characters); several links, or links beside buttons, become words in the text,
each link on its own line; phone numbers stay digits in the text (WhatsApp makes them tappable). A
Venue is a "location" message, sent as its own part by the outbox (`venue_apart`). Message bodies and phone numbers are never logged (ids, types, status codes only).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import mimetypes
import re
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from bots.base import (
    Attachment,
    BadPayload,
    Choice,
    load_json,
    DeliveryError,
    InboundMessage,
    Location,
    MAX_TRACKING_LENGTH,
    OutboundMessage,
    OutsideWindow,
    SendResult,
    StatusUpdate,
    Forbidden,
    TooLarge,
    Unauthorized,
    is_web,
    link_lines,
    on_the_wire,
)
from words.catalogue import room

WORDS = room(__file__)

log = logging.getLogger("allervers.bots.whatsapp")

WINDOW = timedelta(hours=24)
MAX_BUTTONS = 3
MAX_ROWS = 10
BUTTON_TITLE = 20
ROW_TITLE = 24
ROW_DESCRIPTION = 72
INTERACTIVE_BODY = 1024
CTA_DISPLAY_TEXT = 20  # Cloud API limit for a cta_url button's display_text
LOCATION_NAME = 1000  # generous: the API documents no limit; names and addresses are short
LIST_BUTTON = WORDS.text("whatsapp.list_button")  # French; in the message's language at send time
NUMBERED_HINT = WORDS.text("whatsapp.numbered_hint")

# What the worker reads when a message cannot go out because the window is closed.
WINDOW_CLOSED = "fenêtre de 24 h fermée : la personne doit d'abord réécrire"
OUTSIDE_WINDOW_CODES = {131047}  # re-engagement message: more than 24 h since the person wrote
RETRYABLE_CODES = {
    1, 2, 4, 80007, 131000,  # temporary / app / account rate limits, "something went wrong"
    130429, 131048, 131056,  # throughput, spam rate limit, pair rate limit
}
# Rate limits: retried without using up a delivery attempt, after Retry-After when the answer has
# one, else after these seconds (Meta: one message per ~6 s to the same person for 131056; 4 and
# 80007 are the app's and the account's hourly limits, 131048 the spam limit).
RATE_LIMIT_CODES = {4: 60.0, 80007: 60.0, 130429: 1.0, 131048: 60.0, 131056: 6.0}
RATE_LIMIT_DEFAULT = 1.0  # HTTP 429 without a code or a Retry-After
MEDIA_KINDS = {"audio", "image", "document", "video", "sticker"}
STATUSES = {"sent", "delivered", "read", "failed"}
SKIPPED_TYPES = {"reaction", "system"}  # not something the person expects an answer to


class MediaTooLarge(TooLarge):
    def __init__(self, size: int | None, max_bytes: int):
        super().__init__(f"media larger than {max_bytes} bytes", size=size, max_bytes=max_bytes)


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Free-form messages are allowed within 24 h of the person's last message."""
    if last_inbound_at is not None and last_inbound_at.tzinfo is None:
        last_inbound_at = last_inbound_at.replace(tzinfo=timezone.utc)
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def numbered_choice(text: str | None, choices: Sequence[Choice]) -> str | None:
    """Map an answer "2" (or "2.", " 2) ") to the value of the second choice shown, else None."""
    match = re.fullmatch(r"\s*(\d{1,3})\s*[.)]?\s*", text or "")
    if not match:
        return None
    index = int(match.group(1)) - 1
    return choices[index].value if 0 <= index < len(choices) else None


def numbered_text(text: str, choices: Sequence[Choice], locale: str | None = "fr") -> str:
    lines = "\n".join(f"{i}. {c.title}" for i, c in enumerate(choices, 1))
    hint = WORDS.text("whatsapp.numbered_hint", locale)
    return f"{text}\n\n{lines}\n\n{hint}" if text else f"{lines}\n\n{hint}"


def _cut(title: str, limit: int) -> str:
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def _split_title(title: str) -> tuple[str, str | None]:
    """A list row title of at most 24 characters, the rest of a long title as its description."""
    if len(title) <= ROW_TITLE:
        return title, None
    cut = title.rfind(" ", 0, ROW_TITLE + 1)
    if cut < ROW_TITLE // 2:
        cut = ROW_TITLE - 1
        head, rest = title[:cut] + "…", "…" + title[cut:]
    else:
        head, rest = title[:cut], title[cut + 1 :]
    return head, _cut(rest.strip(), ROW_DESCRIPTION)


class RateLimiter:
    """Token bucket per key (phone number id): `rate` sends per second, bursts up to `burst`.

    Callers reserve a token (the bucket may go negative) and sleep for their share, so a burst is
    spread evenly without a lock or a polling loop.
    """

    def __init__(self, rate: float, burst: int | None = None, clock=time.monotonic):
        self.rate = rate
        self.burst = burst if burst is not None else max(1, int(rate))
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def reserve(self, key: str) -> float:
        """Take one token; return how long to wait before using it."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate) - 1
        self._buckets[key] = (tokens, now)
        return -tokens / self.rate if tokens < 0 else 0.0

    async def acquire(self, key: str) -> None:
        delay = self.reserve(key)
        if delay:
            await asyncio.sleep(delay)


def _get(obj: Any, key: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    """Strict read of the webhook JSON: a missing key or a wrong type is a BadPayload."""
    if not isinstance(obj, dict):
        raise BadPayload(f"expected an object around {key!r}")
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadPayload(f"{key!r} missing or of the wrong type")
    return value


MAX_INBOUND_TEXT = 65_536


class WhatsAppChannel:
    venue_apart = True  # the outbox sends a message's venue as its own part (a location message)
    notes_on_the_wire = True  # a send's on_the_wire hook runs right before its body is written (bots/base.py)
    name = "whatsapp"

    def __init__(
        self,
        *,
        app_secret: str | None,
        verify_token: str | None,
        access_token: str | None,
        graph_base: str = "https://graph.facebook.com/v21.0",
        phone_number_id: str | None = None,
        messages_per_second: float | None = None,
        template_language: str = "fr",
        max_text_length: int = 4096,
        timeout: float = 15.0,
        client: httpx.AsyncClient | None = None,
    ):
        self.app_secret = app_secret or ""
        self.verify_token = verify_token or ""
        self.access_token = access_token or ""
        self.graph_base = graph_base.rstrip("/")
        self.phone_number_id = phone_number_id
        self.template_language = template_language
        self.max_text_length = max_text_length
        # The outbox paces every send per phone number id (outreach/pacing.py, shared through Redis,
        # the tier from the settings); a second limit here (it was 20/s) would cap a campaign below
        # the number's tier. Given, it limits this adapter's own sends (a direct use, the tests).
        self.limiter = RateLimiter(messages_per_second) if messages_per_second else None
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))
        self._headers = {"Authorization": f"Bearer {self.access_token}"}

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> WhatsAppChannel:
        options = dict(
            app_secret=settings.whatsapp_app_secret,
            verify_token=settings.whatsapp_verify_token,
            access_token=settings.whatsapp_access_token,
            graph_base=settings.whatsapp_graph_api_base,
            phone_number_id=settings.whatsapp_phone_number_id,
            max_text_length=settings.max_text_length,
            template_language=getattr(settings, "whatsapp_template_language", "fr") or "fr",
        )
        return cls(**(options | overrides))

    async def close(self) -> None:
        await self._client.aclose()

    # ---- webhook checks ----------------------------------------------------------------------

    def verify_handshake(self, params: Mapping[str, str]) -> str:
        """GET verification: answer hub.challenge when the mode and the verify token match."""
        token = params.get("hub.verify_token") or ""
        if (
            not self.verify_token
            or params.get("hub.mode") != "subscribe"
            or not hmac.compare_digest(token.encode(), self.verify_token.encode())
        ):
            raise Forbidden("verification refused")
        return params.get("hub.challenge") or ""

    def verify_signature(self, raw_body: bytes, header: str | None) -> None:
        """X-Hub-Signature-256 must be "sha256=" + HMAC-SHA256(app secret, raw body)."""
        if not self.app_secret or not header or not header.startswith("sha256="):
            raise Unauthorized("missing signature")
        expected = hmac.new(self.app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header[len("sha256=") :].strip().lower().encode(), expected.encode()):
            raise Unauthorized("wrong signature")

    # ---- inbound -----------------------------------------------------------------------------

    def parse(self, body: bytes | str) -> tuple[list[InboundMessage], list[StatusUpdate]]:
        data = load_json(body)
        messages: list[InboundMessage] = []
        statuses: list[StatusUpdate] = []
        for entry in _get(data, "entry", list):
            for change in _get(entry, "changes", list):
                value = _get(change, "value", dict)
                if value.get("messaging_product") != "whatsapp":
                    continue
                account = _get(_get(value, "metadata", dict), "phone_number_id", str)
                for raw in _get(value, "messages", list, required=False) or ():
                    message = self._message(raw, account)
                    if message is not None:
                        messages.append(message)
                for raw in _get(value, "statuses", list, required=False) or ():
                    status = self._status(raw, account)
                    if status is not None:
                        statuses.append(status)
        return messages, statuses

    def _message(self, raw: Any, account: str) -> InboundMessage | None:
        kind = _get(raw, "type", str)
        common = dict(
            channel=self.name,
            user_id=_get(raw, "from", str),
            external_id=_get(raw, "id", str),
            account=account,
        )
        log.debug("whatsapp inbound type=%s", kind)  # never the wamid: it encodes the phone number
        if kind == "text":
            return InboundMessage(**common, text=self._text(_get(_get(raw, "text", dict), "body", str)))
        if kind == "interactive":
            interactive = _get(raw, "interactive", dict)
            reply_type = _get(interactive, "type", str)
            if reply_type in ("button_reply", "list_reply"):
                reply = _get(interactive, reply_type, dict)
                title = _get(reply, "title", str, required=False)
                context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
                replied = context.get("id") if isinstance(context.get("id"), str) else None
                return InboundMessage(**common, choice=_get(reply, "id", str),
                                      text=self._text(title) if title is not None else None,
                                      reply_to=replied if replied and len(replied) <= 128 else None)
        elif kind == "button":  # quick reply on a template message
            button = _get(raw, "button", dict)
            text = _get(button, "text", str, required=False)
            payload = _get(button, "payload", str, required=False) or text
            if payload is not None:
                return InboundMessage(**common, choice=payload, text=self._text(text) if text is not None else None)
        elif kind == "location":
            where = _get(raw, "location", dict)
            return InboundMessage(
                **common,
                location=Location(  # Location refuses NaN, 400-digit numbers, out of range
                    latitude=_get(where, "latitude", (int, float)),
                    longitude=_get(where, "longitude", (int, float)),
                ),
            )
        elif kind in MEDIA_KINDS:
            media = _get(raw, kind, dict)
            voice = kind == "audio" and media.get("voice") is True
            caption = _get(media, "caption", str, required=False)
            return InboundMessage(
                **common,
                text=self._text(caption) if caption else None,
                attachment=Attachment(
                    kind="voice" if voice else kind,
                    content_type=_get(media, "mime_type", str, required=False),
                    platform_id=_media_id(_get(media, "id", str)),
                    filename=_get(media, "filename", str, required=False),
                ),
            )
        elif kind in SKIPPED_TYPES:
            return None
        # "unsupported", contacts, order, unknown interactive replies...: the bot explains plainly.
        return InboundMessage(**common, attachment=Attachment(kind="unsupported"))

    def _text(self, text: str) -> str:
        """What a person wrote: taken whole up to WhatsApp's own limit (65,536 characters; the 4,096
        of `max_text_length` bounds what we send)."""
        if len(text) > MAX_INBOUND_TEXT:
            raise BadPayload("text too long")
        return text

    def _status(self, raw: Any, account: str) -> StatusUpdate | None:
        status = _get(raw, "status", str)
        if status not in STATUSES:
            return None
        # Ours, echoed by Meta (at most 512 characters: a longer one is not from Meta, BadPayload);
        # what it names is checked against our rows by the caller (conversations/confirmations.py).
        tracking = _get(raw, "biz_opaque_callback_data", str, required=False)
        recipient = _get(raw, "recipient_id", str, required=False)
        error = None
        errors = _get(raw, "errors", list, required=False)
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            parts = (first.get("code"), first.get("title"))
            error = " ".join(str(part) for part in parts if isinstance(part, (str, int)) and part)[:300] or "failed"
        return StatusUpdate(channel=self.name, platform_message_id=_get(raw, "id", str), status=status, error=error,
                            account=account, recipient=recipient, tracking=tracking)

    # ---- the 24-hour window --------------------------------------------------------------------

    @staticmethod
    def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
        return window_open(last_inbound_at, now)

    async def prepare(self, message: OutboundMessage, context: Mapping[str, Any]) -> OutboundMessage | None:
        """Apply the 24-hour window at send time (called by the outbox just before `send`).

        Inside the window (or for a template): the message, unchanged. Outside it: the approved
        template named in context["template"] (params context["template_params"]) that invites the
        person to answer; the caller keeps the original message held and sends it once the person
        writes again. None: hold without sending (an invitation already went out and is unanswered).
        No template configured: OutsideWindow, which the worker sees as a clear failure.
        context["window_closed"] forces the closed case (the platform said 131047).
        """
        now = context.get("now") or datetime.now(timezone.utc)
        if message.template or (not context.get("window_closed")
                                and window_open(context.get("last_inbound_at"), now)):
            return message
        if context.get("awaiting_answer"):
            return None
        template = context.get("template")
        if not template:
            raise OutsideWindow(WINDOW_CLOSED)
        return OutboundMessage(text=message.text, template=template,
                               template_params=tuple(context.get("template_params") or ()))

    # ---- outbound ----------------------------------------------------------------------------

    async def send(self, user_id: str, message: OutboundMessage, *, account: str | None = None) -> SendResult:
        number = account or self.phone_number_id
        if not number:
            raise DeliveryError("no WhatsApp phone number id configured", retryable=False)
        attachment = message.attachment
        if message.attachment_path:
            attachment = await self.upload_media(message.attachment_path, account=number)
        if attachment is not None and not message.template:
            caption_ok = attachment.kind in ("image", "document", "video")
            if message.text and not caption_ok:
                await self._post_message(number, user_id, self._text_payload(message.text), message.tracking)
            return await self._post_message(
                number, user_id, self._media_payload(attachment, message.text if caption_ok else None), message.tracking
            )
        if message.venue is not None and not message.template and (message.text or message.choices or message.links):
            from dataclasses import replace

            result = await self._post_message(number, user_id, self.build_payload(replace(message, venue=None)),
                                              message.tracking)
            await self._post_message(number, user_id, self.build_payload(
                OutboundMessage(text="", venue=message.venue, locale=message.locale)), message.tracking)
            return result
        return await self._post_message(number, user_id, self.build_payload(message), message.tracking)

    def build_payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The type-specific part of a /messages body (without attachments, which need uploads)."""
        choices = message.choices
        if not message.template and message.venue is not None and not (message.text or choices or message.links):
            venue = message.venue
            return {"type": "location", "location": {"latitude": venue.latitude, "longitude": venue.longitude,
                                                     "name": venue.title[:LOCATION_NAME],
                                                     "address": venue.address[:LOCATION_NAME]}}
        web = [link for link in message.links if is_web(link.url)]
        if not message.template and len(web) == 1 and not choices and not message.request_location:
            body = link_lines(message, tuple(link for link in message.links if link is not web[0]))
            if 0 < len(body) <= INTERACTIVE_BODY:
                return {"type": "interactive", "interactive": {
                    "type": "cta_url", "body": {"text": body},
                    "action": {"name": "cta_url", "parameters": {
                        "display_text": _cut(web[0].title, CTA_DISPLAY_TEXT), "url": web[0].url}}}}
        text = link_lines(message) if not message.template else message.text
        if message.template:
            template: dict[str, Any] = {"name": message.template, "language": {"code": self.template_language}}
            if message.template_params:
                parameters = [{"type": "text", "text": p} for p in message.template_params]
                template["components"] = [{"type": "body", "parameters": parameters}]
            return {"type": "template", "template": template}
        fits = 0 < len(text) <= INTERACTIVE_BODY
        if choices and fits and all(0 < len(c.value) <= 200 for c in choices):
            titles = [_cut(c.title, BUTTON_TITLE) for c in choices]
            if len(choices) <= MAX_BUTTONS and len(set(titles)) == len(titles):
                buttons = [{"type": "reply", "reply": {"id": c.value, "title": t}} for c, t in zip(choices, titles)]
                return self._interactive("button", text, {"buttons": buttons})
            if len(choices) <= MAX_ROWS:
                rows = []
                for c in choices:
                    title, description = _split_title(c.title)
                    rows.append({"id": c.value, "title": title} | ({"description": description} if description else {}))
                return self._interactive("list", text, {"button": WORDS.text("whatsapp.list_button", message.locale),
                                                        "sections": [{"rows": rows}]})
        if choices:
            return self._text_payload(numbered_text(text, choices, message.locale))
        if message.request_location and fits:
            return self._interactive("location_request_message", text, {"name": "send_location"})
        return self._text_payload(text)

    @staticmethod
    def _interactive(kind: str, text: str, action: dict[str, Any]) -> dict[str, Any]:
        return {"type": "interactive", "interactive": {"type": kind, "body": {"text": text}, "action": action}}

    def _text_payload(self, text: str) -> dict[str, Any]:
        if not text or len(text) > self.max_text_length:
            raise DeliveryError("text empty or too long for WhatsApp", retryable=False)
        return {"type": "text", "text": {"preview_url": False, "body": text}}

    @staticmethod
    def _media_payload(attachment: Attachment, caption: str | None) -> dict[str, Any]:
        kind = {"voice": "audio"}.get(attachment.kind, attachment.kind)
        if kind not in MEDIA_KINDS:
            kind = "document"
        if attachment.platform_id:
            media: dict[str, Any] = {"id": attachment.platform_id}
        elif attachment.url:
            media = {"link": attachment.url}
        else:
            raise DeliveryError("attachment without platform id or url", retryable=False)
        if caption:
            media["caption"] = caption[:INTERACTIVE_BODY]
        if kind == "document" and attachment.filename:
            media["filename"] = attachment.filename
        return {"type": kind, kind: media}

    async def _post_message(self, number: str, user_id: str, payload: dict[str, Any],
                            tracking: str | None = None) -> SendResult:
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": user_id} | payload
        if tracking:  # echoed in this message's status webhooks (sent, delivered, read, failed)
            body["biz_opaque_callback_data"] = tracking[:MAX_TRACKING_LENGTH]
        if self.limiter is not None:
            await self.limiter.acquire(number)
        hook = on_the_wire.get()
        extensions = {"trace": _before_the_body(hook)} if hook is not None else None
        response = await self._request("POST", f"{self.graph_base}/{number}/messages", json=body,
                                       extensions=extensions)
        try:
            message_id = response.json()["messages"][0]["id"]
        except (ValueError, KeyError, IndexError, TypeError):
            # Possibly sent: not retryable, so the person never gets it twice.
            raise DeliveryError("Graph API answered without a message id", retryable=False) from None
        log.info("whatsapp sent type=%s", payload["type"])  # never the wamid: it encodes the phone number
        return SendResult(platform_message_id=message_id)

    async def upload_media(self, path: str | Path, *, account: str | None = None) -> Attachment:
        """Upload a local file (a worker's voice note) and return it as a platform attachment."""
        number = account or self.phone_number_id
        path = Path(path)
        content_type = _content_type(path)
        response = await self._request(
            "POST",
            f"{self.graph_base}/{number}/media",
            data={"messaging_product": "whatsapp", "type": content_type},
            files={"file": (path.name, path.read_bytes(), content_type)},
        )
        try:
            media_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            raise DeliveryError("media upload answered without an id", retryable=True) from None
        kind = content_type.split("/")[0]
        kind = kind if kind in ("audio", "image", "video") else "document"
        log.info("whatsapp media uploaded %s type=%s", media_id, content_type)
        return Attachment(kind=kind, content_type=content_type, platform_id=media_id, filename=path.name)

    async def fetch_media(self, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """Download a person's media (voice note, image...): its bytes and content type."""
        try:
            meta = (await self._request("GET", f"{self.graph_base}/{media_id}")).json()
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise DeliveryError("media metadata is not a JSON object", retryable=True)
        url, content_type = meta.get("url"), meta.get("mime_type") or "application/octet-stream"
        if not isinstance(url, str):
            raise DeliveryError("media without url", retryable=False)
        declared = int(meta["file_size"]) if str(meta.get("file_size", "")).isdigit() else None
        if declared is not None and declared > max_bytes:
            raise MediaTooLarge(declared, max_bytes)
        try:
            async with self._client.stream("GET", url, headers=self._headers) as response:
                _raise_for(response, await response.aread() if response.status_code >= 400 else b"")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(None, max_bytes)
                    chunks.append(chunk)
        except httpx.TransportError as exc:
            raise DeliveryError(f"network error: {type(exc).__name__}", retryable=True) from exc
        log.info("whatsapp media fetched %s bytes=%d", media_id, size)
        return b"".join(chunks), content_type

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, url, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            log.warning("whatsapp %s network error %s", method, type(exc).__name__)
            raise DeliveryError(f"network error: {type(exc).__name__}", retryable=True) from exc
        _raise_for(response, response.content)
        return response


def _before_the_body(hook):
    """An httpcore trace (httpx's "trace" request extension) awaiting `hook` when the request's
    headers are written and its body, the last bytes, is next (HTTP/1.1 and HTTP/2 alike)."""

    async def trace(event: str, info: dict) -> None:
        if event.endswith(".send_request_body.started"):
            await hook()

    return trace


_MEDIA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _media_id(value: str) -> str:
    """Graph API media ids are digits: one is put in a URL path (fetch_media), so "../" never is."""
    if not _MEDIA_ID.fullmatch(value):
        raise BadPayload("invalid media id")
    return value


def _content_type(path: Path) -> str:
    if path.suffix.lower() in (".ogg", ".opus", ".oga"):
        return "audio/ogg"  # WhatsApp wants OGG with the Opus codec for voice notes
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now().astimezone()).total_seconds())
        except (TypeError, ValueError):
            return None


def _raise_for(response: httpx.Response, content: bytes) -> None:
    """Map a Graph API failure to DeliveryError / OutsideWindow (see the module's error codes)."""
    status = response.status_code
    if status < 400:
        return
    code, title = None, ""
    try:
        error = json.loads(content)["error"]
        code, title = error.get("code"), str(error.get("message") or "")[:200]
        code = int(code) if code is not None else None
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("whatsapp graph error http=%s code=%s", status, code)
    reason = f"HTTP {status}" + (f", Graph error {code}" if code is not None else "") + (f": {title}" if title else "")
    if code in OUTSIDE_WINDOW_CODES:
        raise OutsideWindow(reason)
    rate_limited = status == 429 or code in RATE_LIMIT_CODES
    retryable = rate_limited or status >= 500 or code in RETRYABLE_CODES
    retry_after = _retry_after(response) if retryable else None
    if rate_limited and retry_after is None:
        retry_after = RATE_LIMIT_CODES.get(code, RATE_LIMIT_DEFAULT)
    raise DeliveryError(reason, retryable=retryable, retry_after=retry_after, rate_limited=rate_limited)
