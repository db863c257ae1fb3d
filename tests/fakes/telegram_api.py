"""A fake Telegram Bot API server on loopback, for every Telegram test of the project.

Real HTTP: a Starlette app served by uvicorn in a background thread on 127.0.0.1 (free port).

    with FakeTelegram() as tg:                      # or: async with FakeTelegram() as tg:
        channel = TelegramChannel(TOKEN, webhook_secret="s", api_base=tg.base_url)
        ...
        tg.wait_for(lambda: tg.sent_texts(CHAT_ID))
        assert tg.sent_messages(CHAT_ID)[-1].params["reply_markup"] == {...}

Controls: queue_update() (served by getUpdates), register_file() (getFile + download),
fail_next(method, status, times, retry_after), fail_randomly(method, {500: 0.3, 429: 0.1}) (a flaky
platform: each call fails at those rates, seeded). Inspection: calls(), sent(), sent_messages(),
sent_texts(), pending_updates(), wait_for() / wait_for_async(), reset().
Parameters are recorded decoded: JSON fields (reply_markup...) as objects, ids as ints, flags as bools.
Refused as the real Bot API refuses them (400 "Bad Request: ..."): an inline URL button whose URL is
not http(s):// or tg:// (tel: is not allowed), a button with both or neither url and callback_data,
callback_data over 64 bytes, answerCallbackQuery text over 200 characters, sendVenue without a
title/address or off the globe, edits of a message the bot did not send or with nothing changed.
Sent messages are kept (`message(chat_id, message_id)`), so edits change what a test reads.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import json
import mimetypes
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.complete_bodies import complete_bodies

TOKEN = "123456:TEST-fake-telegram-token"
CHAT_ID = 111111111  # the person of the fixtures (tests/fixtures/telegram/*.json)

T = TypeVar("T")

_JSON_FIELDS = {"reply_markup", "allowed_updates", "entities", "caption_entities", "link_preview_options", "reply_parameters", "media"}
_FLOAT_FIELDS = {"latitude", "longitude"}
_INT_FIELDS = {"chat_id", "offset", "limit", "timeout", "message_id", "duration", "cache_time", "max_connections", "from_chat_id"}
_BOOL_FIELDS = {"drop_pending_updates", "show_alert", "disable_notification", "protect_content", "supports_streaming"}
# send method -> (file parameter, field of the returned Message)
_FILE_METHODS = {
    "sendVoice": ("voice", "voice"),
    "sendAudio": ("audio", "audio"),
    "sendDocument": ("document", "document"),
    "sendPhoto": ("photo", "photo"),
    "sendVideo": ("video", "video"),
}
_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
}
_GATEWAY_HTML = "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
_update_ids = itertools.count(800_000_001)


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One request the fake received, in arrival order."""

    method: str  # canonical Bot API name (sendMessage), or "downloadFile" for GET /file/...
    params: dict[str, Any]
    files: dict[str, UploadedFile] = field(default_factory=dict)  # parameter -> uploaded file
    status: int = 200  # what the fake answered
    result: Any = None  # the "result" it returned when ok (the Message for send* methods)
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)

    @property
    def chat_id(self) -> Any:
        return self.params.get("chat_id")


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    description: str | None


class FakeTelegram:
    def __init__(self, token: str = TOKEN, *, max_long_poll: float = 1.0, limit_per_second: float | None = None,
                 limit_per_chat_seconds: float | None = None):
        """`max_long_poll` caps how long getUpdates waits, whatever timeout the client asks.
        `limit_per_second` / `limit_per_chat_seconds`: Telegram's limits, enforced like the real Bot
        API (a send beyond them is answered 429 with retry_after 1 and counted in `too_many`):
        at most that many sends in any sliding second for the bot, one per chat per that many seconds."""
        self.token = token
        self.max_long_poll = max_long_poll
        self.limit_per_second = limit_per_second
        self.limit_per_chat_seconds = limit_per_chat_seconds
        self.too_many = 0
        self._window: collections.deque = collections.deque()
        self._chat_last: dict[str, float] = {}
        self.bot_user = {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Allervers",
            "username": "allervers_test_bot",
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._files: dict[str, dict[str, Any]] = {}  # file_id -> File object (+ data)
        self._failures: dict[str, list[_Failure]] = {}
        self._holds: dict[str, threading.Event] = {}
        self._random_failures: dict[str, tuple[dict[int, float], int | None, random.Random]] = {}
        self._message_ids = itertools.count(1)
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}  # (chat id, message id) -> Message
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self._handlers = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            **{name: functools.partial(self._send_file, name) for name in _FILE_METHODS},
            "answerCallbackQuery": self._answer_callback,
            "sendVenue": self._send_venue,
            "editMessageReplyMarkup": self._edit_markup,
            "editMessageText": self._edit_text,
            "setMyCommands": self._true,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getFile": self._get_file,
        }
        self._canonical = {name.lower(): name for name in self._handlers}
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )

    # Life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(complete_bodies(self.app), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="fake-telegram", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake Telegram server did not start")
            time.sleep(0.005)
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeTelegram:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # Test controls ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget calls, queued updates, files, failures and the webhook (between tests)."""
        with self._lock:
            self._calls.clear()
            self._updates.clear()
            self._files.clear()
            self._failures.clear()
            self._random_failures.clear()
            self._messages.clear()
            self.webhook_url, self.webhook_secret = "", None

    def queue_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an Update (a dict as the Bot API sends it) for getUpdates; gives it an update_id if none."""
        update = dict(update)
        update.setdefault("update_id", next(_update_ids))
        with self._lock:
            self._updates.append(update)
        return update

    def pending_updates(self) -> list[dict[str, Any]]:
        """Queued updates not yet confirmed by a getUpdates offset past them."""
        with self._lock:
            return list(self._updates)

    def register_file(self, file_id: str, data: bytes, file_path: str | None = None) -> dict[str, Any]:
        """Make a file available to getFile and GET /file/bot<token>/<file_path>."""
        file = {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}"[:32],
            "file_size": len(data),
            "file_path": file_path or f"documents/{file_id}",
        }
        with self._lock:
            self._files[file_id] = {**file, "data": data}
        return file

    def fail_next(
        self,
        method: str,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """The next `times` calls of `method` fail with `status` (429 carries parameters.retry_after,
        default 1; 403 says the bot was blocked; 502/504 answer nginx's HTML page, as Telegram's front does)."""
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._failures.setdefault(self._canonical.get(method.lower(), method), []).extend(
                _Failure(status, retry_after, description) for _ in range(times)
            )

    def fail_randomly(self, method: str, rates: dict[int, float], *, retry_after: int | None = 1,
                      seed: int = 0) -> None:
        """From now on each call of `method` fails with status s at probability rates[s] (429s carry
        parameters.retry_after = `retry_after`); fail_next() failures come first. {} stops it."""
        with self._lock:
            name = self._canonical.get(method.lower(), method)
            if rates:
                self._random_failures[name] = (dict(rates), retry_after, random.Random(seed))
            else:
                self._random_failures.pop(name, None)

    def hold(self, method: str) -> threading.Event:
        """Calls of `method` are recorded but not answered until the returned event is set."""
        event = threading.Event()
        with self._lock:
            self._holds[self._canonical.get(method.lower(), method)] = event
        return event

    # Inspection ---------------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def calls_since(self, index: int) -> tuple[list[Call], int]:
        """The calls recorded from position `index` on, and the position to ask from next: a reader
        polling the fake (the benchmark) copies only what is new, never the whole list under the lock
        (a long copy would hold the server's thread and bunch its arrival times)."""
        with self._lock:
            new = self._calls[index:]
            return new, index + len(new)

    def sent(self, chat_id: int | str | None = None) -> list[Call]:
        """Successful sendMessage / sendVoice / sendPhoto... calls, optionally to one chat."""
        return [
            c
            for c in self.calls()
            if c.method.startswith("send") and c.status == 200 and (chat_id is None or str(c.chat_id) == str(chat_id))
        ]

    def sent_messages(self, chat_id: int | str | None = None) -> list[Call]:
        """Successful sendMessage calls, optionally to one chat."""
        return [c for c in self.sent(chat_id) if c.method == "sendMessage"]

    def sent_texts(self, chat_id: int | str | None = None) -> list[str]:
        return [c.params["text"] for c in self.sent_messages(chat_id)]

    def sent_venues(self, chat_id: int | str | None = None) -> list[Call]:
        return [c for c in self.sent(chat_id) if c.method == "sendVenue"]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """A message the bot sent, as it is now (after edits)."""
        with self._lock:
            return self._messages.get((str(chat_id), int(message_id)))

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll `predicate` until it returns something truthy, and return that; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(self._timeout_message(timeout))
            time.sleep(0.01)
        return result

    async def wait_for_async(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """wait_for without blocking the event loop (when the app under test runs on it)."""
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError(self._timeout_message(timeout))
            await asyncio.sleep(0.01)
        return result

    def _timeout_message(self, timeout: float) -> str:
        methods = [f"{c.method}:{c.status}" for c in self.calls()]
        return f"fake Telegram: condition not met within {timeout}s; calls so far: {methods}"

    # HTTP ---------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        name = self._canonical.get(method.lower(), method)
        params, files = await _read_params(request)
        call = Call(name, params, files)
        with self._lock:
            self._calls.append(call)
            failures = self._failures.get(name)
            failure = failures.pop(0) if failures else None
            if failure is None and name in self._random_failures:
                rates, retry_after, draw = self._random_failures[name]
                roll, edge = draw.random(), 0.0
                for status, rate in rates.items():
                    edge += rate
                    if roll < edge:
                        failure = _Failure(status, retry_after if status == 429 else None, None)
                        break
            if failure is None and name.startswith("send") and (self.limit_per_second or self.limit_per_chat_seconds):
                failure = self._over_limit(str(params.get("chat_id")))
        held = self._holds.get(name)
        while held is not None and not held.is_set():
            await asyncio.sleep(0.01)
        if request.path_params["token"] != self.token:
            return self._error(call, 401)
        if failure is not None:
            return self._error(call, failure.status, failure.retry_after, failure.description)
        handler = self._handlers.get(name)
        if handler is None:
            return self._error(call, 404)
        result = await handler(params, files)
        if isinstance(result, Response):  # an error answer from the handler
            call.status = result.status_code
            return result
        call.result = result
        return JSONResponse({"ok": True, "result": result})

    def _over_limit(self, chat: str) -> _Failure | None:
        """The platform's limits (called under the lock): a 429 beyond them, else the send counts."""
        now = time.monotonic()
        window = self._window
        while window and window[0] <= now - 1.0:
            window.popleft()
        over = bool(self.limit_per_second and len(window) >= self.limit_per_second)
        last = self._chat_last.get(chat)
        over = over or bool(self.limit_per_chat_seconds and last is not None and now - last < self.limit_per_chat_seconds)
        if over:
            self.too_many += 1
            return _Failure(429, 1, None)
        window.append(now)
        self._chat_last[chat] = now
        return None

    async def _download(self, request: Request) -> Response:
        path = request.path_params["path"]
        call = Call("downloadFile", {"file_path": path})
        with self._lock:
            self._calls.append(call)
            file = next((f for f in self._files.values() if f["file_path"] == path), None)
        if request.path_params["token"] != self.token:
            return self._error(call, 401)
        if file is None:
            return self._error(call, 404)
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(file["data"], media_type=content_type)

    def _error(self, call: Call, status: int, retry_after: int | None = None, description: str | None = None) -> Response:
        call.status = status
        if status in (502, 504):
            return Response(_GATEWAY_HTML.format(status=status), status_code=status, media_type="text/html")
        body: dict[str, Any] = {
            "ok": False,
            "error_code": status,
            "description": description or _DESCRIPTIONS.get(status, "Error").format(retry_after=retry_after),
        }
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return JSONResponse(body, status_code=status)

    def _bad_request(self, description: str) -> Response:
        return JSONResponse({"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}, status_code=400)

    # Methods ------------------------------------------------------------------------------

    async def _true(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return True

    async def _get_me(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return self.bot_user

    def _message(self, chat_id: Any, **content: Any) -> dict[str, Any]:
        if isinstance(chat_id, int) and chat_id > 0:
            chat = {"id": chat_id, "first_name": "Sam", "type": "private"}
        else:
            chat = {"id": chat_id, "title": "Groupe", "type": "supergroup"}
        message = {"message_id": next(self._message_ids), "from": self.bot_user, "chat": chat, "date": int(time.time())}
        message |= {k: v for k, v in content.items() if v is not None}
        with self._lock:
            self._messages[(str(chat_id), message["message_id"])] = message
        return message

    @staticmethod
    def _inline_markup(params: dict[str, Any]) -> Any:
        markup = params.get("reply_markup")
        return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None

    def _bad_markup(self, params: dict[str, Any]) -> Response | None:
        """The Bot API's checks of an inline keyboard (its documented URL schemes, one action per button)."""
        markup = params.get("reply_markup")
        if not isinstance(markup, dict) or "inline_keyboard" not in markup:
            return None
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            return self._bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text") or "").strip():
                    return self._bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
                url, data = button.get("url"), button.get("callback_data")
                if (url is None) == (data is None):
                    return self._bad_request("can't parse inline keyboard button: exactly one of the optional fields must be used")
                if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
                    return self._bad_request(f"inline keyboard button URL '{url}' is invalid: Unsupported URL protocol")
                if data is not None and len(str(data).encode()) > 64:
                    return self._bad_request("BUTTON_DATA_INVALID")
        return None

    async def _answer_callback(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if not params.get("callback_query_id"):
            return self._bad_request("QUERY_ID_INVALID")
        if len(params.get("text") or "") > 200:
            return self._bad_request("MESSAGE_TOO_LONG")
        return True

    async def _send_venue(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if not params.get("chat_id"):
            return self._bad_request("chat_id is empty")
        try:
            latitude, longitude = float(params.get("latitude")), float(params.get("longitude"))
        except (TypeError, ValueError):
            return self._bad_request("latitude and longitude must be numbers")
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return self._bad_request("wrong latitude or longitude")
        if not str(params.get("title") or "").strip() or not str(params.get("address") or "").strip():
            return self._bad_request("venue title and address must be non-empty")
        venue = {"location": {"latitude": latitude, "longitude": longitude}, "title": params["title"],
                 "address": params["address"]}
        return self._message(params["chat_id"], venue=venue, location=venue["location"],
                             reply_markup=self._inline_markup(params))

    def _editable(self, params: dict[str, Any]) -> tuple[dict[str, Any] | None, Response | None]:
        if not params.get("chat_id") or not params.get("message_id"):
            return None, self._bad_request("message identifier is not specified")
        with self._lock:
            message = self._messages.get((str(params["chat_id"]), int(params["message_id"])))
        if message is None:
            return None, self._bad_request("message to edit not found")
        return message, self._bad_markup(params)

    async def _edit_markup(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        message, error = self._editable(params)
        if error is not None:
            return error
        markup = self._inline_markup(params)
        markup = markup if markup and markup.get("inline_keyboard") else None
        if markup == message.get("reply_markup"):
            return self._bad_request("message is not modified: specified new message content and reply markup are "
                                     "exactly the same as a current content and reply markup of the message")
        with self._lock:
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
        return message

    async def _edit_text(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        message, error = self._editable(params)
        if error is not None:
            return error
        text = params.get("text") or ""
        if not text.strip():
            return self._bad_request("message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return self._bad_request("MESSAGE_TOO_LONG")
        markup = self._inline_markup(params)
        markup = markup if markup and markup.get("inline_keyboard") else None
        if text == message.get("text") and markup == message.get("reply_markup"):
            return self._bad_request("message is not modified: specified new message content and reply markup are "
                                     "exactly the same as a current content and reply markup of the message")
        with self._lock:
            message["text"] = text
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
        return message

    async def _send_message(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if (bad := self._bad_markup(params)) is not None:
            return bad
        text = params.get("text") or ""
        if not params.get("chat_id"):
            return self._bad_request("chat_id is empty")
        if not text.strip():
            return self._bad_request("message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return self._bad_request("message is too long")
        return self._message(params["chat_id"], text=text, reply_markup=self._inline_markup(params))

    async def _send_file(self, method: str, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        param, result_field = _FILE_METHODS[method]
        if not params.get("chat_id"):
            return self._bad_request("chat_id is empty")
        if len(params.get("caption") or "") > 1024:
            return self._bad_request("message caption is too long")
        upload = files.get(param)
        if upload is not None:  # keep it downloadable, as Telegram does
            file_id = f"fake-{param}-{len(self._files) + 1}"
            ext = mimetypes.guess_extension(upload.content_type or "") or ".bin"
            file = self.register_file(file_id, upload.data, f"{param}/file_{len(self._files)}{ext}")
        elif isinstance(params.get(param), str):
            file = {"file_id": params[param], "file_unique_id": "u-reused", "file_size": 0}
        else:
            return self._bad_request(f"there is no {param} in the request")
        file = {k: v for k, v in file.items() if k != "file_path"}
        media: Any
        if result_field == "photo":
            media = [file | {"width": 1, "height": 1}]
        else:
            media = file | {"mime_type": upload.content_type if upload else None}
            if "duration" in params:
                media["duration"] = params["duration"]
        return self._message(params["chat_id"], caption=params.get("caption"), reply_markup=self._inline_markup(params), **{result_field: media})

    async def _get_updates(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        if self.webhook_url:
            return JSONResponse(
                {"ok": False, "error_code": 409, "description": "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"},
                status_code=409,
            )
        offset = params.get("offset")
        limit = params.get("limit") or 100
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), self.max_long_poll)
        while True:
            with self._lock:
                if offset is not None:  # confirms (forgets) everything before it
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = self._updates[:limit]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.01)

    async def _set_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self.webhook_url = params.get("url") or ""
        self.webhook_secret = params.get("secret_token")
        return True

    async def _delete_webhook(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        self.webhook_url, self.webhook_secret = "", None
        if params.get("drop_pending_updates"):
            with self._lock:
                self._updates.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        return {"url": self.webhook_url, "has_custom_certificate": False, "pending_update_count": len(self.pending_updates())}

    async def _get_file(self, params: dict[str, Any], files: dict[str, UploadedFile]) -> Any:
        with self._lock:
            file = self._files.get(str(params.get("file_id")))
        if file is None:
            return self._bad_request("invalid file_id")
        return {k: v for k, v in file.items() if k != "data"}


async def _read_params(request: Request) -> tuple[dict[str, Any], dict[str, UploadedFile]]:
    """Bot API parameters from the query string, a JSON body, a form or a multipart body (aiogram's way)."""
    params: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, UploadedFile] = {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        params.update(json.loads(await request.body() or b"{}"))
    elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    uploads[key] = UploadedFile(value.filename, value.content_type, await value.read())
                else:
                    params[key] = value
    files: dict[str, UploadedFile] = {}
    for key, value in list(params.items()):
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
            files[key] = uploads.pop(value[9:])
            del params[key]
    files.update(uploads)  # uploaded directly under the parameter name
    return {key: _decode(key, value) for key, value in params.items()}, files


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        return json.loads(value)
    if key in _INT_FIELDS and value.lstrip("-").isdigit():
        return int(value)
    if key in _FLOAT_FIELDS:
        try:
            return float(value)
        except ValueError:
            return value
    if key in _BOOL_FIELDS and value in ("true", "false"):
        return value == "true"
    return value


# Updates as the Bot API sends them, for tests that post to the webhook or queue for getUpdates ------


def _person(chat_id: int, first_name: str, language_code: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    user = {"id": chat_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user, {"id": chat_id, "first_name": first_name, "type": "private"}


def text_update(
    text: str,
    *,
    chat_id: int = CHAT_ID,
    update_id: int | None = None,
    message_id: int | None = None,
    first_name: str = "Sam",
    language_code: str | None = "fr",
) -> dict[str, Any]:
    """A private text message; /commands carry their bot_command entity."""
    user, chat = _person(chat_id, first_name, language_code)
    update_id = update_id if update_id is not None else next(_update_ids)
    message: dict[str, Any] = {
        "message_id": message_id or update_id % 1_000_000,
        "from": user,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"update_id": update_id, "message": message}


def callback_update(
    data: str,
    *,
    chat_id: int = CHAT_ID,
    update_id: int | None = None,
    message_id: int = 1,
    first_name: str = "Sam",
    language_code: str | None = "fr",
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A press on an inline button whose callback_data is `data`, under bot message `message_id`
    (`message`: that message as the fake holds it, keyboard included: `FakeTelegram.message`)."""
    user, chat = _person(chat_id, first_name, language_code)
    update_id = update_id if update_id is not None else next(_update_ids)
    bot = {"id": int(TOKEN.split(":")[0]), "is_bot": True, "first_name": "Allervers", "username": "allervers_test_bot"}
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq-{update_id}",
            "from": user,
            "message": message or {"message_id": message_id, "from": bot, "chat": chat, "date": int(time.time()),
                                   "text": "…"},
            "chat_instance": f"-{chat_id}0042",
            "data": data,
        },
    }
