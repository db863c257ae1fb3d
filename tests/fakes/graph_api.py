"""A fake WhatsApp Cloud (Graph) API on loopback HTTP, for tests that never reach Meta.

    with FakeGraphApi(access_token="tok") as graph:          # or: async with FakeGraphApi() as graph:
        channel = WhatsAppChannel(..., graph_base=graph.base_url, phone_number_id=graph.PHONE_NUMBER_ID)
        ...
        await graph.wait_for(lambda g: len(g.requests_for("33639980001")) == 1)

Routes (under /v21.0, like the real base URL):
    POST /{phone_number_id}/messages   records the JSON body; answers a wamid.<n> (or an injected failure)
    POST /{phone_number_id}/media      multipart upload (messaging_product, type, file); answers an id
    GET  /{media_id}                   media metadata with a download url pointing back to this fake
    GET  /media-download/{media_id}    (outside /v21.0, like Meta's lookaside host) the bytes
Bodies are checked against Meta's documented limits (3 buttons of 20 characters, 10 list rows of 24,
1024-character interactive bodies, 4096-character texts, a cta_url button's display_text of at most
20 characters and an http(s) url, a location's latitude/longitude on the globe): a violation
answers 400 with code 131009.

Status webhooks (`send_statuses(url, app_secret)`): like Meta, for every message it accepted the fake
POSTs the documented payload (`entry[].changes[].value.statuses[]`: id, status, timestamp,
recipient_id, the message's `biz_opaque_callback_data` echoed, conversation, pricing), signed with
X-Hub-Signature-256 (the app secret), to the app's webhook; statuses that come together share one
POST (`batch_seconds`), and a POST answered non-2xx or refused (the app down: a kill -9, a restart)
is retried with exponential backoff (`first_retry` doubling up to `max_retry`), so statuses of
sends accepted just before a kill arrive after the restart. `webhook_url` may be moved (a restart
on another port); `hold_statuses(to, seconds)` delays one person's statuses. Only complete requests
count as received (tests/fakes/complete_bodies.py): a request cut by a kill gets no status.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.complete_bodies import complete_bodies

VERSION = "v21.0"


def sign(body: bytes, app_secret: str) -> str:
    """The X-Hub-Signature-256 header value Meta would send for this raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(code: int, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": "AFakeTraceId",
            }
        },
        status_code=status,
    )


FAILURES: dict[str | int, tuple[int, int | None, str]] = {
    # kind -> (HTTP status, Graph error code, message)
    429: (429, 130429, "(#130429) Rate limit hit"),
    500: (500, 131000, "(#131000) Something went wrong"),
    131047: (400, 131047, "(#131047) Re-engagement message"),
    130429: (400, 130429, "(#130429) Rate limit hit"),
    131056: (400, 131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    131026: (400, 131026, "(#131026) Message undeliverable"),
}


@dataclass
class Recorded:
    phone_number_id: str
    body: dict[str, Any]
    at: float  # time.monotonic() when received
    authorization: str | None
    wamid: str | None = None  # the id it answered


@dataclass
class Upload:
    phone_number_id: str
    media_id: str
    content_type: str
    filename: str
    content: bytes
    form: dict[str, str] = field(default_factory=dict)


class FakeGraphApi:
    PHONE_NUMBER_ID = "100000000000001"
    OTHER_PHONE_NUMBER_ID = "100000000000002"

    def __init__(self, access_token: str | None = "test-access-token"):
        self.access_token = access_token
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()
        self.app = self._build_app()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._poster: threading.Thread | None = None
        self._poster_stop = threading.Event()
        self.webhook_url: str | None = None
        self.port = 0

    # ---- state and helpers -------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.messages: list[Recorded] = []  # accepted /messages calls
            self.uploads: list[Upload] = []
            self.media: dict[str, tuple[bytes, str]] = {}  # media id -> (content, mime type)
            self.attempts = 0  # every /messages call, failed ones included
            self._failures: deque[tuple[str, str | int, float | None]] = deque()
            self._random: dict[str, tuple[dict, dict, random.Random]] = {}
            self.statuses_delivered: list[dict[str, Any]] = []  # statuses the app answered 2xx for
            self.webhook_posts = 0  # status webhook POSTs tried (retries included)
            self.webhook_refused = 0  # of which answered non-2xx or not connected
            self._status_queue: list[tuple[float, str, dict[str, Any]]] = []  # (not before, number, status)
            self._deliveries: list[_Delivery] = []
            self._held: dict[str, float] = {}  # recipient -> seconds its statuses wait

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{VERSION}"

    def fail_next(
        self, kind: str | int, times: int = 1, *, retry_after: float | None = None, endpoint: str = "messages"
    ) -> None:
        """The next `times` calls to `endpoint` ("messages", "media", "fetch") fail with `kind`:
        429, 500, 131047, 130429, 131056 or 131026 (see FAILURES)."""
        assert kind in FAILURES, kind
        with self._lock:
            self._failures.extend([(endpoint, kind, retry_after)] * times)

    def fail_randomly(
        self, rates: dict[str | int, float], *, retry_after: dict[str | int, float] | None = None,
        seed: int = 0, endpoint: str = "messages",
    ) -> None:
        """From now on each call to `endpoint` fails with kind k (see FAILURES) at probability
        rates[k], with a Retry-After header of retry_after[k] seconds when given; fail_next() comes
        first. {} stops it."""
        assert all(kind in FAILURES for kind in rates), rates
        with self._lock:
            if rates:
                self._random[endpoint] = (dict(rates), dict(retry_after or {}), random.Random(seed))
            else:
                self._random.pop(endpoint, None)

    # ---- status webhooks ------------------------------------------------------------------------

    def send_statuses(self, url: str, app_secret: str, *, statuses: tuple[str, ...] = ("sent",),
                      batch_seconds: float = 0.2, first_retry: float = 1.0, max_retry: float = 30.0) -> None:
        """From now on each accepted message gets `statuses` posted to `url` (the app's
        /bots/whatsapp/webhook), signed with `app_secret`; see the module's docstring."""
        with self._lock:
            self.webhook_url, self.app_secret = url, app_secret
            self.status_kinds, self.batch_seconds = tuple(statuses), batch_seconds
            self.first_retry, self.max_retry = first_retry, max_retry
        if self._poster is None:
            self._poster_stop.clear()
            self._poster = threading.Thread(target=self._post_statuses, name="fake-graph-statuses", daemon=True)
            self._poster.start()

    def point_webhooks(self, url: str) -> None:
        """The app moved (restarted on another port): status webhooks, retries included, go there."""
        with self._lock:
            self.webhook_url = url

    def hold_statuses(self, to: str, seconds: float) -> None:
        """Statuses of messages to `to` accepted from now on wait `seconds` before their first POST."""
        with self._lock:
            self._held[to] = seconds

    def release_statuses(self, to: str) -> None:
        """Statuses of messages to `to` waiting (hold_statuses) are posted now; later ones are not held."""
        with self._lock:
            self._held.pop(to, None)
            now = time.monotonic()
            self._status_queue = [(min(at, now) if status.get("recipient_id") == to else at, number, status)
                                  for at, number, status in self._status_queue]

    def statuses_for(self, to: str) -> list[dict[str, Any]]:
        with self._lock:
            return [st for st in self.statuses_delivered if st.get("recipient_id") == to]

    def _queue_statuses(self, phone_number_id: str, body: dict[str, Any], wamid: str) -> None:
        """(under the lock) The statuses of an accepted message, queued for the poster."""
        if getattr(self, "webhook_url", None) is None:
            return
        now = time.monotonic()
        to = str(body.get("to"))
        for kind in self.status_kinds:
            status = {"id": wamid, "status": kind, "timestamp": str(int(time.time())), "recipient_id": to}
            if kind != "read":
                status["conversation"] = {"id": f"conv-{wamid}", "origin": {"type": "marketing"}}
                status["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "marketing"}
            if isinstance(body.get("biz_opaque_callback_data"), str):
                status["biz_opaque_callback_data"] = body["biz_opaque_callback_data"]
            self._status_queue.append((now + self._held.get(to, 0.0), phone_number_id, status))

    def _post_statuses(self) -> None:
        """The poster thread: batches queued statuses into signed webhooks, posts them, retries."""
        import httpx

        with httpx.Client(timeout=5.0) as client:
            while not self._poster_stop.wait(0.02):
                now = time.monotonic()
                with self._lock:
                    due = [q for q in self._status_queue if q[0] <= now]
                    if due and now - min(q[0] for q in due) >= self.batch_seconds:
                        self._status_queue = [q for q in self._status_queue if q[0] > now]
                        for number in dict.fromkeys(q[1] for q in due):
                            statuses = [q[2] for q in due if q[1] == number]
                            self._deliveries.append(_Delivery(number, statuses, _status_body(number, statuses), now))
                    ready = [d for d in self._deliveries if d.next_at <= now]
                    url, secret = self.webhook_url, self.app_secret
                for delivery in ready:
                    try:
                        response = client.post(url, content=delivery.body, headers={
                            "Content-Type": "application/json", "X-Hub-Signature-256": sign(delivery.body, secret)})
                        ok = 200 <= response.status_code < 300
                    except httpx.HTTPError:
                        ok = False
                    with self._lock:
                        self.webhook_posts += 1
                        if ok:
                            self._deliveries.remove(delivery)
                            self.statuses_delivered.extend(delivery.statuses)
                        else:
                            self.webhook_refused += 1
                            delivery.attempts += 1
                            delivery.next_at = time.monotonic() + min(
                                self.first_retry * 2 ** (delivery.attempts - 1), self.max_retry)

    def add_media(self, content: bytes, mime_type: str = "audio/ogg; codecs=opus") -> str:
        """Store media a person 'sent', to be fetched by id; returns the media id."""
        media_id = f"{next(self._ids)}000000000001"
        with self._lock:
            self.media[media_id] = (content, mime_type)
        return media_id

    def requests_for(self, phone: str) -> list[dict[str, Any]]:
        """JSON bodies of accepted /messages calls addressed to `phone`, oldest first."""
        with self._lock:
            return [r.body for r in self.messages if r.body.get("to") == phone]

    def messages_since(self, index: int) -> tuple[list[Recorded], int]:
        """Accepted /messages calls from position `index` on, and the next position (a poller copies
        only what is new, not the whole list under the lock)."""
        with self._lock:
            new = self.messages[index:]
            return new, index + len(new)

    def sent_from(self, phone_number_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.messages if r.phone_number_id == phone_number_id]

    async def wait_for(self, predicate: Callable[[FakeGraphApi], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError("fake Graph API: condition not met in time")
            await asyncio.sleep(0.01)

    def wait_for_sync(self, predicate: Callable[[FakeGraphApi], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise TimeoutError("fake Graph API: condition not met in time")
            time.sleep(0.01)

    # ---- the HTTP app ------------------------------------------------------------------------

    def _take_failure(self, endpoint: str) -> JSONResponse | None:
        with self._lock:
            if self._failures and self._failures[0][0] == endpoint:
                _, kind, retry_after = self._failures.popleft()
            elif endpoint in self._random:
                rates, delays, draw = self._random[endpoint]
                roll, edge, kind = draw.random(), 0.0, None
                for candidate, rate in rates.items():
                    edge += rate
                    if roll < edge:
                        kind = candidate
                        break
                if kind is None:
                    return None
                retry_after = delays.get(kind)
            else:
                return None
        status, code, message = FAILURES[kind]
        response = graph_error(code, message, status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def enforce_limit(self, per_second: float | None) -> None:
        """Meta's throughput per phone number id: beyond `per_second` sends in any sliding second a
        send is refused with 130429 ("Rate limit hit", counted in `too_many`); None stops it."""
        with self._lock:
            self.limit_per_second = per_second
            self.too_many = 0
            self._limit_windows: dict[str, deque] = {}

    def _over_limit(self, phone_number_id: str) -> JSONResponse | None:
        per_second = getattr(self, "limit_per_second", None)
        if not per_second:
            return None
        with self._lock:
            now = time.monotonic()
            window = self._limit_windows.setdefault(phone_number_id, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= per_second:
                self.too_many += 1
                status, code, message = FAILURES[130429]
                return graph_error(code, message, status)
            window.append(now)
        return None

    def _authorized(self, request: Request) -> bool:
        return self.access_token is None or request.headers.get("authorization") == f"Bearer {self.access_token}"

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        unauthorized = lambda: graph_error(190, "Invalid OAuth access token", 401)  # noqa: E731

        @app.post(f"/{VERSION}/{{phone_number_id}}/messages")
        async def messages(phone_number_id: str, request: Request):
            with self._lock:
                self.attempts += 1
            if not self._authorized(request):
                return unauthorized()
            if failure := self._take_failure("messages"):
                return failure
            if failure := self._over_limit(phone_number_id):  # enforce_limit() (outreach benchmark)
                return failure
            try:
                body = await request.json()
            except ValueError:
                return graph_error(100, "Invalid JSON")
            if problem := check_message(body):
                return graph_error(131009, f"(#131009) Parameter value is not valid: {problem}")
            with self._lock:
                wamid = f"wamid.{next(self._ids)}"
                self.messages.append(
                    Recorded(phone_number_id, body, time.monotonic(), request.headers.get("authorization"), wamid)
                )
                self._queue_statuses(phone_number_id, body, wamid)
            return {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }

        @app.post(f"/{VERSION}/{{phone_number_id}}/media")
        async def upload(phone_number_id: str, request: Request):
            if not self._authorized(request):
                return unauthorized()
            if failure := self._take_failure("media"):
                return failure
            form = await request.form()
            file = form.get("file")
            if form.get("messaging_product") != "whatsapp" or file is None or isinstance(file, str):
                return graph_error(100, "(#100) The parameter messaging_product and file are required")
            content = await file.read()
            content_type = str(form.get("type") or file.content_type)
            media_id = f"{next(self._ids)}000000000001"
            with self._lock:
                self.media[media_id] = (content, content_type)
                self.uploads.append(
                    Upload(
                        phone_number_id, media_id, content_type, file.filename or "", content,
                        {k: v for k, v in form.items() if isinstance(v, str)},
                    )
                )
            return {"id": media_id}

        @app.get("/media-download/{media_id}")
        async def download(media_id: str, request: Request):
            if not self._authorized(request):
                return Response(status_code=401)
            if failure := self._take_failure("download"):
                return failure
            if media_id not in self.media:
                return Response(status_code=404)
            content, mime_type = self.media[media_id]
            return Response(content, media_type=mime_type.split(";")[0])

        @app.get(f"/{VERSION}/{{media_id}}")
        async def media_info(media_id: str, request: Request):
            if not self._authorized(request):
                return unauthorized()
            if failure := self._take_failure("fetch"):
                return failure
            if media_id not in self.media:
                return graph_error(100, "(#100) Unsupported get request", 400)
            content, mime_type = self.media[media_id]
            return {
                "messaging_product": "whatsapp",
                "url": f"http://127.0.0.1:{self.port}/media-download/{media_id}",
                "mime_type": mime_type,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file_size": len(content),
                "id": media_id,
            }

        return app

    # ---- running: background thread (sync or async context manager) ---------------------------

    def start(self) -> FakeGraphApi:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(complete_bodies(self.app), log_level="warning", access_log=False, lifespan="off", loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake Graph API did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._poster is not None:
            self._poster_stop.set()
            self._poster.join(timeout=10)
            self._poster = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeGraphApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeGraphApi:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


@dataclass
class _Delivery:
    """One status webhook POST, retried until answered 2xx."""

    phone_number_id: str
    statuses: list[dict[str, Any]]
    body: bytes
    next_at: float
    attempts: int = 0


WABA_ID = "200000000000001"


def _status_body(phone_number_id: str, statuses: list[dict[str, Any]]) -> bytes:
    """The documented status webhook payload (Cloud API, field "messages")."""
    import json

    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33100000000", "phone_number_id": phone_number_id},
            "statuses": statuses}}]}]}).encode()


def check_message(body: Any) -> str | None:
    """What Meta would refuse in a /messages body (a subset of its documented limits)."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp" or not body.get("to"):
        return "messaging_product and to are required"
    tracking = body.get("biz_opaque_callback_data")
    if tracking is not None and not (isinstance(tracking, str) and len(tracking) <= 512):
        return "biz_opaque_callback_data must be a string of at most 512 characters"
    kind = body.get("type", "text")
    part = body.get(kind)
    if not isinstance(part, dict):
        return f"{kind} object missing"
    if kind == "text":
        text = part.get("body")
        return None if isinstance(text, str) and 0 < len(text) <= 4096 else "text.body empty or over 4096"
    if kind == "template":
        return None if part.get("name") and part.get("language", {}).get("code") else "template name/language"
    if kind in ("audio", "image", "document", "video", "sticker"):
        return None if part.get("id") or part.get("link") else "media id or link required"
    if kind == "location":
        latitude, longitude = part.get("latitude"), part.get("longitude")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (latitude, longitude))
        if not numbers or not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return "location latitude and longitude required, on the globe"
        if any(key in part and not isinstance(part[key], str) for key in ("name", "address")):
            return "location name and address must be strings"
        return None
    if kind != "interactive":
        return f"unexpected type {kind}"
    body_text = part.get("body", {}).get("text", "")
    if not 0 < len(body_text) <= 1024:
        return "interactive body over 1024"
    action = part.get("action", {})
    if part.get("type") == "button":
        buttons = action.get("buttons", [])
        titles = [b["reply"]["title"] for b in buttons]
        if not 1 <= len(buttons) <= 3 or any(not 0 < len(t) <= 20 for t in titles) or len(set(titles)) < len(titles):
            return "1-3 buttons with unique titles of at most 20 characters"
    elif part.get("type") == "list":
        rows = [r for s in action.get("sections", []) for r in s.get("rows", [])]
        if not 1 <= len(rows) <= 10 or not 0 < len(action.get("button", "")) <= 20:
            return "1-10 rows and a button label of at most 20 characters"
        if any(not 0 < len(r["title"]) <= 24 or len(r.get("description", "")) > 72 for r in rows):
            return "row titles at most 24, descriptions at most 72 characters"
    elif part.get("type") == "cta_url":
        parameters = action.get("parameters") or {}
        display, url = parameters.get("display_text"), parameters.get("url")
        if action.get("name") != "cta_url" or not isinstance(display, str) or not 0 < len(display) <= 20:
            return "cta_url needs a display_text of at most 20 characters"
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return "cta_url needs an http(s) url"
    elif part.get("type") == "location_request_message":
        if action.get("name") != "send_location":
            return "location request action must be send_location"
    else:
        return f"unexpected interactive type {part.get('type')}"
    return None
