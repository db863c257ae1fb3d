"""Telegram channel: aiogram's Bot client and types, no Dispatcher and no FSM.

Translates Bot API updates into InboundMessage and OutboundMessage into Bot API calls, nothing more.
Links are inline URL buttons (http(s) only: the Bot API takes "HTTP or tg:// URL", so a tel: link
becomes the number's digits in the text, which Telegram makes tappable), above the choices' buttons;
a Venue is a sendVenue after the text (the outbox sends it as its own part: `venue_apart`). A press
on a button: `settle_press` edits that question's keyboard away (showing "✔️ <label>" when the
choice was taken), `callback_answer_reply(..., stale=True)` says "⏳ Cette question est passée.".
Importing aiogram is slow (seconds): import this module only when Telegram is configured.
Logs carry update ids, update types, method names and error classes; never texts, names or chat ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import AnswerCallbackQuery, GetUpdates
from aiogram.methods.base import Response
from aiogram.types import (
    CallbackQuery,
    File,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
    User,
)
from pydantic import ValidationError

from bots.base import (
    Attachment,
    BadPayload,
    Choice,
    DeliveryError,
    InboundMessage,
    Location,
    OutboundMessage,
    SendResult,
    TooLarge,
    Unauthorized,
    is_web,
    link_lines,
    load_json,
)
from words.catalogue import language_of, room

WORDS = room(__file__)

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# aiogram validates every answer with `Response[method.__returning__]`; pydantic keeps these generic
# classes in a weak cache, so the garbage collector drops them and the next call rebuilds one (tens of
# milliseconds of CPU, measured: most of the inbound path's CPU under load). Strong references here.
RESPONSE_TYPES = {kind: Response[kind] for kind in (Message, bool, File, User, list[Update])}
MAX_BODY_BYTES = 1_000_000  # real updates are a few KB; anything this big is not from Telegram
MAX_MESSAGE_LENGTH = 4096  # Bot API limit for sendMessage text
MAX_CAPTION_LENGTH = 1024  # Bot API limit for media captions
MAX_CALLBACK_DATA_BYTES = 64  # Bot API limit for inline button callback_data
SHORT_TITLE = 16  # buttons whose titles all fit this go two per row, otherwise one per row
ALLOWED_UPDATES = ["message", "callback_query"]
MAX_CALLBACK_TEXT = 200  # Bot API limit for answerCallbackQuery text
MAX_PRESSES_KEPT = 2048  # presses parsed but not yet settled (a webhook settles its own at once)
_RETRYABLE_NETWORK = (TelegramNetworkError, ClientDecodeError, aiohttp.ClientError, asyncio.TimeoutError)


class RecipientBlocked(DeliveryError):
    """The person blocked the bot (403): not retryable; they will not receive anything any more."""

    def __init__(self, reason: str):
        super().__init__(reason, retryable=False)


class FileTooLarge(TooLarge):
    """fetch_file: the file is larger than the caller accepts."""


class _RawGetUpdates(GetUpdates):
    """getUpdates returning plain dicts, so polling hands the handler the same JSON a webhook gets."""

    __returning__ = list[dict[str, Any]]


class TelegramChannel:
    name = "telegram"
    venue_apart = True  # the outbox sends a message's venue as its own part (sendVenue), after the text

    def __init__(
        self,
        token: str,
        *,
        webhook_secret: str | None,
        api_base: str = "https://api.telegram.org",
        max_text_length: int = MAX_MESSAGE_LENGTH,
        request_timeout: float = 30.0,
        location_label: str | None = None,
    ):
        self._secret = webhook_secret or None
        self._server = TelegramAPIServer.from_base(api_base)
        self._bot = Bot(token, session=AiohttpSession(api=self._server, timeout=request_timeout))
        self.max_text_length = max_text_length
        self.location_label = location_label  # None: the catalogue's, in the message's language
        self._presses: dict[str, _Press] = {}  # callback id -> what settle_press needs (no database)

    @classmethod
    def from_settings(cls, settings: Any) -> TelegramChannel:
        return cls(
            settings.telegram_bot_token,
            webhook_secret=settings.telegram_webhook_secret,
            api_base=settings.telegram_api_base,
            max_text_length=settings.max_text_length,
        )

    @property
    def bot(self) -> Bot:
        """The aiogram Bot, for calls this adapter does not wrap (setWebhook at deploy time)."""
        return self._bot

    async def close(self) -> None:
        await self._bot.session.close()

    # Inbound ------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str]) -> None:
        """Check the secret token Telegram sends with each webhook call; raise Unauthorized if wrong."""
        if self._secret is None:
            raise Unauthorized("no Telegram webhook secret configured", 403)
        given = _header(headers, SECRET_HEADER)
        if given is None:
            raise Unauthorized("missing secret token header", 401)
        if not secrets.compare_digest(given.encode(), self._secret.encode()):
            raise Unauthorized("wrong secret token", 403)

    def parse(self, body: bytes) -> list[InboundMessage]:
        """One Update -> zero or one InboundMessage. Raises BadPayload for what is not an Update."""
        if len(body) > MAX_BODY_BYTES:
            raise BadPayload("body too large")
        try:
            update = Update.model_validate_json(body)
        except ValidationError as e:
            if _describe(e) != "malformed JSON":
                raise BadPayload(_describe(e)) from None
            update = _lenient_update(body)
        except RecursionError:
            raise BadPayload("JSON nested too deep") from None
        _check_id("update_id", update.update_id, lower=0)
        external_id = str(update.update_id)
        if update.message is not None:
            found = self._from_message(external_id, update.message)
        elif update.callback_query is not None:
            found = self._from_callback(external_id, update.callback_query)
        else:
            found = []
        if not found:
            log.debug("telegram update %s skipped (%s)", update.update_id, _update_type(update))
        return found

    def _from_message(self, external_id: str, msg: Message) -> list[InboundMessage]:
        if msg.chat.type != "private":  # one person per conversation: groups are not supported
            return []
        _check_id("chat id", msg.chat.id)
        text = msg.text if msg.text is not None else msg.caption
        if text is not None and len(text) > self.max_text_length:
            raise BadPayload("text too long")
        location = Location(msg.location.latitude, msg.location.longitude) if msg.location else None
        attachment = _attachment(msg)
        if text is None and location is None and attachment is None:
            return []  # contact, poll, dice, service message...
        return [
            InboundMessage(
                channel=self.name,
                user_id=str(msg.chat.id),
                external_id=external_id,
                text=text,
                location=location,
                attachment=attachment,
                locale=msg.from_user.language_code if msg.from_user else None,
            )
        ]

    def _from_callback(self, external_id: str, query: CallbackQuery) -> list[InboundMessage]:
        if query.data is None:
            return []
        if query.message is not None:
            if query.message.chat.type != "private":
                return []
            user_id = query.message.chat.id
        else:
            user_id = query.from_user.id
        _check_id("chat id", user_id)
        reply_to = None
        if query.message is not None and isinstance(getattr(query.message, "message_id", None), int):
            reply_to = str(query.message.message_id)
            self._remember(query, user_id)
        return [
            InboundMessage(
                channel=self.name,
                user_id=str(user_id),
                external_id=external_id,
                choice=query.data,
                callback_id=query.id,
                locale=query.from_user.language_code,
                reply_to=reply_to,
            )
        ]

    def _remember(self, query: CallbackQuery, chat_id: int) -> None:
        """What a press carries to edit its question afterwards: the message, its text, the label."""
        message = query.message
        label = None
        rows = getattr(getattr(message, "reply_markup", None), "inline_keyboard", None)
        rows = rows if isinstance(rows, list) else []  # an odd update may carry anything there
        for row in rows:
            for button in row if isinstance(row, list) else ():
                if getattr(button, "callback_data", None) == query.data and isinstance(getattr(button, "text", None), str):
                    label = button.text
        text = getattr(message, "text", None)
        if len(self._presses) >= MAX_PRESSES_KEPT:
            self._presses.pop(next(iter(self._presses)))
        self._presses[query.id] = _Press(chat_id, message.message_id, text if isinstance(text, str) else None,
                                         label, bool(rows))

    # Outbound -----------------------------------------------------------------------------

    async def send(self, user_id: str, message: OutboundMessage, *, account: str | None = None) -> SendResult:
        """Send one message; returns the platform id of the last Bot API message it produced.

        Texts over 4,096 characters are split; a file is sent with the text as caption when it fits
        (1,024), else followed by the text. Raises DeliveryError (RecipientBlocked when blocked).
        """
        try:
            chat_id = int(user_id)
        except ValueError:
            raise DeliveryError("not a Telegram chat id", retryable=False) from None
        markup = self._markup(message)
        buttons = () if message.request_location else tuple(link for link in message.links if is_web(link.url))
        text = link_lines(message, tuple(link for link in message.links if link not in buttons))
        sent = None
        try:
            if message.attachment_path:
                caption = text if len(text) <= MAX_CAPTION_LENGTH else ""
                sent = await self._send_file(chat_id, message, caption, markup if caption == text else None)
                if caption != text:
                    sent = await self._send_text(chat_id, text, markup)
            elif text:
                sent = await self._send_text(chat_id, text, markup)
            elif buttons or message.choices:
                raise DeliveryError("buttons without words", retryable=False)
            elif message.venue is None:
                raise DeliveryError("empty message", retryable=False)
            if message.venue is not None:
                venue = message.venue
                placed = await self._bot.send_venue(chat_id, venue.latitude, venue.longitude,
                                                    venue.title[:256] or "📍", venue.address[:256] or "📍")
                sent = sent or placed
        except (AiogramError, *_RETRYABLE_NETWORK) as e:
            raise _delivery_error(e) from None
        return SendResult(platform_message_id=str(sent.message_id))

    def _markup(self, message: OutboundMessage) -> InlineKeyboardMarkup | ReplyKeyboardMarkup | None:
        for choice in message.choices:
            if len(choice.value.encode()) > MAX_CALLBACK_DATA_BYTES:
                raise DeliveryError("choice value over 64 bytes", retryable=False)
        if message.request_location:
            # One markup per message: the location button and the choices share a reply keyboard.
            # Pressing a choice there sends its title as plain text, not its value. (Links then go in the text.)
            label = self.location_label or WORDS.text("location_button", message.locale)
            rows = [[KeyboardButton(text=label, request_location=True)]]
            rows += [[KeyboardButton(text=c.title) for c in row] for row in _rows(message.choices)]
            return ReplyKeyboardMarkup(keyboard=rows, resize_keyboard=True, one_time_keyboard=True)
        # Links first (one per row: their titles are words), then the answers' buttons.
        rows = [[InlineKeyboardButton(text=link.title[:64] or "🔗", url=link.url)]
                for link in message.links if is_web(link.url)]
        rows += [[InlineKeyboardButton(text=c.title, callback_data=c.value) for c in row] for row in _rows(message.choices)]
        return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None

    async def _send_text(self, chat_id: int, text: str, markup: Any) -> Message:
        parts = _split(text, MAX_MESSAGE_LENGTH)
        for part in parts[:-1]:
            await self._bot.send_message(chat_id, part)
        return await self._bot.send_message(chat_id, parts[-1], reply_markup=markup)

    async def _send_file(self, chat_id: int, message: OutboundMessage, caption: str, markup: Any) -> Message:
        path = message.attachment_path or ""
        if not os.path.isfile(path):
            raise DeliveryError("attachment file missing", retryable=False)
        att = message.attachment
        kind = att.kind if att else "voice"
        file = FSInputFile(path, filename=att.filename if att and att.filename else None)
        common: dict[str, Any] = {"caption": caption or None, "reply_markup": markup}
        if kind == "voice":
            return await self._bot.send_voice(chat_id, file, duration=att.duration_seconds if att else None, **common)
        if kind == "audio":
            return await self._bot.send_audio(chat_id, file, duration=att.duration_seconds if att else None, **common)
        if kind == "image":
            return await self._bot.send_photo(chat_id, file, **common)
        if kind == "video":
            return await self._bot.send_video(chat_id, file, **common)
        return await self._bot.send_document(chat_id, file, **common)

    @staticmethod
    def stale_text(locale: str | None) -> str:
        return WORDS.text("press.stale", language_of(locale))[:MAX_CALLBACK_TEXT]

    @staticmethod
    def callback_answer_reply(callback_id: str, *, stale: bool = False, locale: str | None = None) -> dict:
        """answerCallbackQuery as a webhook's response body: Telegram runs a method given in the
        reply to its webhook call, which saves a Bot API request per button press (its result is not
        known, which does not matter here: it only stops the button's spinner). `stale`: the press
        was on an old, already answered question: the person reads "⏳ Cette question est passée."."""
        text = TelegramChannel.stale_text(locale) if stale else None
        method = AnswerCallbackQuery(callback_query_id=callback_id, text=text)
        return {"method": method.__api_method__, **method.model_dump(exclude_none=True, mode="json")}

    async def answer_callback(self, callback_id: str, *, stale: bool = False, locale: str | None = None) -> None:
        """Stop the button's spinner (with the "question passée" words when `stale`). Failures do
        not matter (the query may have expired)."""
        try:
            await self._bot.answer_callback_query(callback_id, text=self.stale_text(locale) if stale else None,
                                                  request_timeout=10)
        except (AiogramError, *_RETRYABLE_NETWORK) as e:
            log.debug("telegram answerCallbackQuery failed: %s", type(e).__name__)

    async def settle_press(self, callback_id: str, *, accepted: bool | None = None) -> bool:
        """After a press was handled: its question's buttons stop working. `accepted` True (the
        choice was taken): the question's text gets "✔️ <label>" and loses its keyboard, so the tap
        is shown back; False (an old question) or None (not known): the keyboard is edited away.
        Needs nothing but what the callback query carried (kept by `parse`). Never raises; True
        when Telegram took the edit."""
        press = self._presses.pop(callback_id, None)
        if press is None or not press.had_buttons:
            return False
        try:
            if accepted and press.label and press.text:
                chosen = WORDS.text("press.chosen", "fr", label=press.label)
                text = f"{press.text}\n\n{chosen}"
                if len(text) <= MAX_MESSAGE_LENGTH:
                    await self._bot.edit_message_text(text=text, chat_id=press.chat_id, message_id=press.message_id,
                                                      reply_markup=None, request_timeout=10)
                    return True
            await self._bot.edit_message_reply_markup(chat_id=press.chat_id, message_id=press.message_id,
                                                      reply_markup=InlineKeyboardMarkup(inline_keyboard=[]),
                                                      request_timeout=10)
            return True
        except (AiogramError, *_RETRYABLE_NETWORK) as e:  # too old to edit (48 h), already edited...
            log.debug("telegram press not settled: %s", type(e).__name__)
            return False

    async def fetch_file(self, file_id: str, max_bytes: int) -> tuple[bytes, str]:
        """Download a file the person sent: (bytes, content type). Raises DeliveryError / FileTooLarge."""
        try:
            info = await self._bot.get_file(file_id)
        except (AiogramError, *_RETRYABLE_NETWORK) as e:
            raise _delivery_error(e) from None
        if info.file_size is not None and info.file_size > max_bytes:
            raise FileTooLarge()
        if not info.file_path:
            raise DeliveryError("file not available for download", retryable=False)
        url = self._server.file_url(self._bot.token, info.file_path)
        data = bytearray()
        chunks = self._bot.session.stream_content(url, timeout=60, raise_for_status=True)
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > max_bytes:
                    raise FileTooLarge()
        except aiohttp.ClientResponseError as e:  # its message holds the URL, hence the token: drop it
            raise DeliveryError(f"file download: HTTP {e.status}", retryable=e.status >= 500 or e.status == 429) from None
        except _RETRYABLE_NETWORK as e:
            raise DeliveryError(f"file download: {type(e).__name__}", retryable=True) from None
        finally:
            await chunks.aclose()
        content_type = mimetypes.guess_type(info.file_path)[0] or "application/octet-stream"
        return bytes(data), content_type

    # Long polling (development) -----------------------------------------------------------

    async def poll(
        self,
        handle: Callable[[bytes], Awaitable[None]],
        stop: asyncio.Event,
        *,
        timeout: int = 25,
        initial_backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_handle_attempts: int = 3,
    ) -> None:
        """Receive updates by getUpdates instead of a webhook, until `stop` is set.

        Each update goes to `handle` as its JSON bytes, the body a webhook would carry. An update is
        confirmed (offset moved past it) once handled, skipped if `handle` raises BadPayload, retried
        after a backoff if it raises anything else, and skipped after `max_handle_attempts`.
        Network errors, 5xx, 409 and 429 are retried with backoff; a rejected token (401) is raised.
        """
        backoff = initial_backoff
        while not stop.is_set():  # the webhook must go, or getUpdates answers 409
            try:
                await self._until_stopped(self._bot.delete_webhook(drop_pending_updates=False), stop)
                break
            except TelegramUnauthorizedError:
                raise
            except (AiogramError, *_RETRYABLE_NETWORK) as e:
                backoff = await self._backoff(e, backoff, max_backoff, stop)
        offset: int | None = None
        attempts = 0
        backoff = initial_backoff
        while not stop.is_set():
            method = _RawGetUpdates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
            try:
                updates = await self._until_stopped(self._bot(method, request_timeout=timeout + 10), stop)
            except TelegramUnauthorizedError:
                raise
            except (AiogramError, *_RETRYABLE_NETWORK) as e:
                backoff = await self._backoff(e, backoff, max_backoff, stop)
                continue
            if updates is None:  # stopped while waiting
                break
            backoff = initial_backoff
            for raw in updates:
                update_id = raw.get("update_id")
                if not isinstance(update_id, int):
                    continue
                try:
                    await handle(json.dumps(raw, ensure_ascii=False).encode())
                except BadPayload as e:
                    log.info("telegram update %s skipped: %s", update_id, e)
                except Exception as e:
                    attempts += 1
                    if attempts < max_handle_attempts:
                        log.warning("telegram update %s failed (%s), will retry", update_id, type(e).__name__)
                        backoff = await self._backoff(None, backoff, max_backoff, stop)
                        break  # ask again from this update
                    log.error("telegram update %s failed %s times (%s), skipped", update_id, attempts, type(e).__name__)
                attempts = 0
                offset = update_id + 1
                if stop.is_set():
                    break
        if offset is not None:  # confirm what was handled, or it comes again at the next start
            try:
                await self._bot(_RawGetUpdates(offset=offset, limit=1, timeout=0), request_timeout=5)
            except (AiogramError, *_RETRYABLE_NETWORK):
                pass
        log.info("telegram polling stopped")

    @staticmethod
    async def _until_stopped(call: Awaitable[Any], stop: asyncio.Event) -> Any:
        """Await `call` unless `stop` is set first (then cancel it and return None)."""
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        return task.result() if task in done else None

    @staticmethod
    async def _backoff(error: BaseException | None, delay: float, max_delay: float, stop: asyncio.Event) -> float:
        """Sleep (interruptibly) before retrying; returns the next delay."""
        if isinstance(error, TelegramRetryAfter):
            delay = float(error.retry_after)
        if error is not None:
            log.warning("telegram polling: %s, retrying in %.1fs", type(error).__name__, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except asyncio.TimeoutError:
            pass
        return min(delay * 2, max_delay)


@dataclass(frozen=True, slots=True)
class _Press:
    chat_id: int
    message_id: int
    text: str | None  # the question's text (None for a caption or a message without text)
    label: str | None  # the pressed button's words
    had_buttons: bool


def _lenient_update(body: bytes) -> Update:
    """Read again with Python's json what pydantic's strict parser refused: a lone surrogate
    ("\\ud800") is valid JSON for Python, and such an update is stored (cleaned) rather than
    refused, or Telegram would redeliver it forever. Still BadPayload when it is not JSON."""
    try:
        data = load_json(body)
    except BadPayload as e:
        raise BadPayload("malformed JSON" if str(e) == "not JSON" else str(e)) from None
    try:
        return Update.model_validate(data)
    except ValidationError as e:
        raise BadPayload(_describe(e)) from None


def _check_id(name: str, value: int, lower: int = -(2**63)) -> None:
    """Bot API ids fit in 64 bits (chat ids of groups are negative); a 200-digit one is not Telegram's."""
    if not lower <= value < 2**63:
        raise BadPayload(f"{name} out of range")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _describe(error: ValidationError) -> str:
    """A reason naming where the payload is wrong, never its values."""
    first = error.errors(include_url=False, include_input=False)[0]
    if first["type"] == "json_invalid":
        return "malformed JSON"
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"not a Telegram update ({where}: {first['type']})"


def _update_type(update: Update) -> str:
    try:
        return update.event_type
    except Exception:
        return "unknown"


def _attachment(msg: Message) -> Attachment | None:
    if msg.voice:
        v = msg.voice
        return Attachment("voice", v.mime_type or "audio/ogg", v.file_id, size=v.file_size, duration_seconds=v.duration)
    if msg.audio:
        a = msg.audio
        return Attachment("audio", a.mime_type, a.file_id, size=a.file_size, duration_seconds=a.duration, filename=a.file_name)
    if msg.photo:
        p = msg.photo[-1]  # sizes come smallest first
        return Attachment("image", "image/jpeg", p.file_id, size=p.file_size)
    if msg.video or msg.animation:
        v = msg.video or msg.animation
        return Attachment("video", v.mime_type, v.file_id, size=v.file_size, duration_seconds=v.duration, filename=v.file_name)
    if msg.video_note:
        n = msg.video_note
        return Attachment("video", "video/mp4", n.file_id, size=n.file_size, duration_seconds=n.duration)
    if msg.document:
        d = msg.document
        return Attachment("document", d.mime_type, d.file_id, size=d.file_size, filename=d.file_name)
    if msg.sticker:
        s = msg.sticker
        kind = "video/webm" if s.is_video else "application/x-tgsticker" if s.is_animated else "image/webp"
        return Attachment("sticker", kind, s.file_id, size=s.file_size)
    return None


def _rows(choices: tuple[Choice, ...]) -> list[tuple[Choice, ...]]:
    """Two buttons per row when every title is short, else one per row (long titles get cut)."""
    per_row = 2 if all(len(c.title) <= SHORT_TITLE for c in choices) else 1
    return [choices[i : i + per_row] for i in range(0, len(choices), per_row)]


def _split(text: str, limit: int) -> list[str]:
    """Cut a long text into parts of at most `limit` characters, at a newline or space if possible."""
    parts = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit + 1)
        if cut < limit // 2:
            cut = limit
        if part := text[:cut].rstrip():
            parts.append(part)
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts or [""]


def _delivery_error(error: BaseException) -> DeliveryError:
    name = type(error).__name__
    if isinstance(error, TelegramRetryAfter):
        return DeliveryError("telegram: too many requests", retryable=True, retry_after=float(error.retry_after),
                             rate_limited=True)
    if isinstance(error, TelegramEntityTooLarge):  # a TelegramNetworkError subclass, but final
        return DeliveryError("telegram: file too large", retryable=False)
    if isinstance(error, TelegramForbiddenError):
        return RecipientBlocked(f"telegram: {error.message}")
    if isinstance(error, TelegramServerError):
        return DeliveryError(f"telegram: server error ({name})", retryable=True)
    if isinstance(error, _RETRYABLE_NETWORK):
        return DeliveryError(f"telegram: network error ({name})", retryable=True)
    if isinstance(error, TelegramAPIError) and error.message.startswith("Too Many Requests"):
        # a 429 without parameters.retry_after (aiogram raises TelegramRetryAfter only with one)
        return DeliveryError("telegram: too many requests", retryable=True, rate_limited=True)
    if isinstance(error, TelegramAPIError):
        return DeliveryError(f"telegram: {error.message}", retryable=False)
    return DeliveryError(f"telegram: {name}", retryable=False)
