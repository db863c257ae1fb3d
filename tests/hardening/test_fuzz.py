"""Property-based fuzz of every public entry point except the voice uploads (issue 9).

Hypothesis throws generated requests at the in-process app, on each backend: captured Telegram and
WhatsApp payloads with mutated fields (text with NUL / lone surrogates / 4,097+ characters, ids huge,
negative or strings, wrong types, NaN and 400-digit numbers, nesting 5,000 deep), raw garbage bytes,
web chat bodies (an ignored "uid" among their fields), identity requests (legacy_uid of any value),
identity cookies (mostly one of the identities the server issued, so the parsers behind it run;
sometimes a drawn value: NUL, a surrogate's bytes, garbage, a plausible token nobody was given, or
none at all), query strings and form fields percent-encoded from arbitrary bytes, and path ids
of any size, at:

    POST /bots/telegram/webhook (right secret)      GET+POST /bots/whatsapp/webhook (POST signed)
    POST /chat/api/identity   POST /chat/api/messages   GET /chat/api/history
    GET /chat/api/stream (status only)   GET /chat/api/media/{id}   POST /inbox/login
    logged in: POST /inbox/conversations/{id}/reply|note|transfer|close|take|return-to-bot,
    POST /inbox/presence, GET /inbox/conversations/{id}[/timeline], /inbox/media/{id},
    /inbox/stream?conversation=, /inbox, /inbox/partials/lists (with the search's fields),
    /inbox/conversations/{id}/older?before=, .../timeline?since=

Property: no answer is a 5xx, and the server's log (every record at DEBUG on the root logger)
holds no ERROR record and no traceback. FUZZ_EXAMPLES per backend (1,000, each of the 11 entry
points drawn at least LEAST_PER_ENTRY_POINT times, checked; ALLERVERS_TEST_FUZZ_EXAMPLES changes it for
a longer hunt: 2,000 until the suite had to fit in its time, then the PostgreSQL run alone took 94 s).
Derandomized: every run sends the same requests. Each run prints its count, time, CPU time, statuses
and requests per entry point (pytest -s).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from urllib.parse import quote, quote_from_bytes, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import select

from kernel.settings import RATE_LIMITS
from conversations.models import Conversation
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.fakes.telegram_api import FakeTelegram
from tests.hardening.payloads import (
    ANY_JSON,
    GARBAGE,
    HUGE_INT,
    NUMBER,
    SHORT_TEXT,
    TELEGRAM_FIXTURES,
    TELEGRAM_SECRET,
    TEXT,
    VERIFY_TOKEN,
    WHATSAPP_FIXTURES,
    WHATSAPP_SECRET,
    ServerLog,
    all_channels,
    documents,
    inbox_session,
    mutated,
    raw,
    telegram_shaped,
    whatsapp_shaped,
)
from tests.webchat import COOKIE, new_identity

FUZZ_EXAMPLES = int(os.environ.get("ALLERVERS_TEST_FUZZ_EXAMPLES", 1000))
TELEGRAM_DOCS = documents(TELEGRAM_FIXTURES)
WHATSAPP_DOCS = documents(WHATSAPP_FIXTURES)
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MULTIPART = {"Content-Type": "multipart/form-data; boundary=fuzz"}


@dataclass
class Call:
    method: str
    path: str  # with its query string, already percent-encoded
    content: bytes | None = None
    headers: dict = field(default_factory=dict)
    sign: bool = False  # WhatsApp: add X-Hub-Signature-256 of the content
    status_only: bool = False  # an event stream: read the status, then go away
    csrf: bool = False  # a form of the logged-in worker: add its CSRF token (unless one is drawn)
    identity: int | bytes | None = None  # web chat cookie: an issued identity (its index), a drawn value, none
    entry: str = ""  # which of ENTRY_POINTS drew it

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return (f"Call({self.method} {self.path[:200]!r}, content={(self.content or b'')[:300]!r}, sign={self.sign}, "
                f"identity={self.identity if not isinstance(self.identity, bytes) else self.identity[:100]!r})")


# Strategies ------------------------------------------------------------------------------------

def query(pairs: dict) -> str:
    return urlencode(pairs, encoding="utf-8", errors="surrogatepass")


ANY_STRING = st.one_of(TEXT, st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
SHORT_STRING = st.one_of(SHORT_TEXT, st.binary(max_size=30).map(lambda b: b.decode("latin-1")))
RAW_QUERY_VALUE = st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe=""))
PAGE_ID = st.one_of(st.text(alphabet="0123456789abcdef", min_size=8, max_size=70), SHORT_TEXT, st.just("u" * 16))
PATH_ID = st.one_of(st.integers(-5, 50).map(str), HUGE_INT.map(str), st.just("9223372036854775808"),
                    st.just("2147483648"), st.just("1e3"), st.just("0x10"), st.just("+1"), st.just(" 1"),
                    SHORT_STRING.map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))

telegram_calls = st.builds(
    lambda body: Call("POST", "/bots/telegram/webhook", body,
                      {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, **JSON}),
    st.one_of(telegram_shaped(), telegram_shaped(), mutated(TELEGRAM_DOCS), mutated(TELEGRAM_DOCS), GARBAGE))

whatsapp_posts = st.builds(
    lambda body, signed: Call("POST", "/bots/whatsapp/webhook", body, dict(JSON), sign=signed),
    st.one_of(whatsapp_shaped(), whatsapp_shaped(), mutated(WHATSAPP_DOCS), mutated(WHATSAPP_DOCS), GARBAGE),
    st.sampled_from([True] * 9 + [False]))

whatsapp_handshakes = st.builds(
    lambda mode, token, challenge: Call("GET", "/bots/whatsapp/webhook?" + query(
        {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge})),
    st.one_of(st.just("subscribe"), SHORT_STRING), st.one_of(st.just(VERIFY_TOKEN), SHORT_STRING), SHORT_STRING)

IDENTITIES = 6  # issued at the start: the web chat calls speak as one of them (not the inbox's person)
CLIENT_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=8,
                    max_size=48)
COOKIE_VALUE = st.one_of(
    st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=30, max_size=66)
    .map(str.encode),  # plausible, never issued
    SHORT_TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b'"', b'"\\000' + b"u" * 42 + b'"', b'"\\355\\240\\200' + b"u" * 40 + b'"',
                     b"u" * 20 + b"\x00" + b"u" * 22, b"\xed\xa0\x80" * 12, b"A" * 4000, b";;=;"]))


@st.composite
def identity_cookie(draw, valid: int = 85, none: int = 5):
    """Mostly an issued identity (its index in the driver's pool), sometimes a drawn cookie value
    or no cookie."""
    roll = draw(st.integers(0, 99))
    if roll < valid:
        return draw(st.integers(0, IDENTITIES - 1))
    return None if roll < valid + none else draw(COOKIE_VALUE)


webchat_bodies = st.one_of(
    st.fixed_dictionaries({"client_id": st.one_of(CLIENT_ID, CLIENT_ID, PAGE_ID, ANY_JSON)},
                          optional={"text": st.one_of(TEXT, ANY_JSON), "choice": st.one_of(TEXT, ANY_JSON),
                                    "location": st.one_of(st.lists(NUMBER, max_size=3), ANY_JSON),
                                    "locale": ANY_JSON, "uid": st.one_of(PAGE_ID, ANY_JSON)}).map(raw),
    ANY_JSON.map(raw), GARBAGE)
webchat_posts = st.builds(lambda body, who: Call("POST", "/chat/api/messages", body, dict(JSON), identity=who),
                          webchat_bodies, identity_cookie())

DEEP_WITHIN_1_KB = st.sampled_from([b"[" * 1000, b"[" * 1000 + b"]" * 24, b'{"legacy_uid":' + b"[" * 1000])
identity_bodies = st.one_of(
    st.fixed_dictionaries({"legacy_uid": st.one_of(PAGE_ID, ANY_STRING, ANY_JSON)},
                          optional={"uid": PAGE_ID, "client_id": PAGE_ID}).map(raw),
    st.sampled_from([b"{}", b"", b'{"legacy_uid": null}']), ANY_JSON.map(raw), GARBAGE, DEEP_WITHIN_1_KB)
identity_calls = st.builds(lambda body, who: Call("POST", "/chat/api/identity", body, dict(JSON), identity=who),
                           identity_bodies, identity_cookie(valid=50, none=30))

uid_queries = st.one_of(st.builds(lambda uid: query({"uid": uid}), PAGE_ID),  # ignored: the cookie decides
                        st.builds(lambda v: "uid=" + v, RAW_QUERY_VALUE), st.just(""))
history_calls = st.builds(lambda q, who: Call("GET", "/chat/api/history?" + q, identity=who),
                          uid_queries, identity_cookie())
stream_calls = st.builds(lambda q, who: Call("GET", "/chat/api/stream?" + q, status_only=True, identity=who),
                         uid_queries, identity_cookie())
media_calls = st.builds(lambda id_, q, who: Call("GET", f"/chat/api/media/{id_}?{q}", identity=who),
                        PATH_ID, uid_queries, identity_cookie())


def form(pairs: dict) -> bytes:
    return query({k: v for k, v in pairs.items() if v is not None}).encode()


FORM_VALUE = st.one_of(st.none(), ANY_STRING, NUMBER.map(str))
login_calls = st.builds(
    lambda email, password, token, garbage: Call(
        "POST", "/inbox/login", garbage if garbage is not None else form(
            {"email": email, "password": password, **({"csrf_token": token} if token is not None else {})}),
        dict(FORM if garbage is None else MULTIPART), csrf=token is None),
    st.one_of(st.just("camille@demo.allervers.fr"), ANY_STRING, st.none()), FORM_VALUE,
    st.one_of(st.none(), st.none(), ANY_STRING), st.one_of(st.none(), st.none(), st.none(), GARBAGE))

ACTIONS = ["reply"] * 3 + ["note"] * 2 + ["transfer", "close", "take", "return-to-bot"]
CURRENT = "CURRENT-CONVERSATION"  # replaced by the id of the worker's open conversation when sent


def mostly(draw, percent: int) -> bool:
    """True `percent` % of the time or so (hypothesis favours 0, hence the direction)."""
    return draw(st.integers(0, 99)) < percent


@st.composite
def inbox_posts(draw) -> Call:
    """Mostly well-formed forms with the worker's CSRF token on their open conversation, so that the
    handlers (not only the validation) meet the odd values."""
    action = draw(st.sampled_from(ACTIONS + ["presence"]))
    target = CURRENT if mostly(draw, 80) else draw(PATH_ID)
    path = "/inbox/presence" if action == "presence" else f"/inbox/conversations/{target}/{action}"
    fields = {"text": draw(TEXT) if mostly(draw, 85) else draw(FORM_VALUE),
              "to": draw(st.sampled_from(["1", "2"])) if mostly(draw, 50) else draw(st.one_of(PATH_ID, FORM_VALUE)),
              "outcome": draw(st.sampled_from(["answered", "other"])) if mostly(draw, 70) else draw(FORM_VALUE),
              "detail": draw(FORM_VALUE), "online": draw(st.one_of(st.sampled_from(["0", "1"]), FORM_VALUE))}
    token = None if mostly(draw, 85) else draw(ANY_STRING)  # None: the right token is added when sent
    if token is not None:
        fields["csrf_token"] = token
    body = form(fields) if mostly(draw, 85) else draw(GARBAGE)
    headers = dict(FORM) if mostly(draw, 85) else draw(st.sampled_from(
        [MULTIPART, {"Content-Type": "multipart/form-data"}, JSON]))
    if not mostly(draw, 70):
        headers["HX-Request"] = "true"
    return Call("POST", path, body, headers, csrf=token is None)


@st.composite
def inbox_pages(draw) -> Call:
    target = draw(st.one_of(st.just(CURRENT), PATH_ID))
    page = draw(st.sampled_from(["conversation", "timeline", "media", "stream", "index", "lists", "older"]))
    if page == "stream":
        return Call("GET", f"/inbox/stream?conversation={target}", status_only=True)
    # the lists' search (a GET form) and the timeline's cursors (handoff/inbox.py)
    search = draw(st.one_of(st.just(""), st.builds(lambda q, c, d, v, p: query({"q": q, "channel": c, "date": d,
                                                                                   "view": v, "page": p}),
        ANY_STRING, st.one_of(st.sampled_from(["", "telegram", "whatsapp", "webchat"]), SHORT_STRING),
        st.one_of(st.sampled_from(["", "2026-11-20", "2026-02-30"]), SHORT_STRING),
        st.one_of(st.sampled_from(["all", "waiting", "mine", "team", "closed"]), SHORT_STRING),
        st.one_of(st.integers(-3, 20000).map(str), SHORT_STRING)), st.builds(lambda v: "q=" + v, RAW_QUERY_VALUE)))
    cursor = draw(st.one_of(PATH_ID, st.just("1")))
    return Call("GET", {"conversation": f"/inbox/conversations/{target}",
                        "timeline": f"/inbox/conversations/{target}/timeline?since={cursor}",
                        "older": f"/inbox/conversations/{target}/older?before={cursor}",
                        "media": f"/inbox/media/{target}",
                        "index": "/inbox?" + search, "lists": "/inbox/partials/lists?" + search}[page])


ENTRY_POINTS = [("telegram", telegram_calls, 7), ("whatsapp", whatsapp_posts, 7), ("webchat", webchat_posts, 6),
                ("whatsapp-handshake", whatsapp_handshakes, 1), ("identity", identity_calls, 2),
                ("history", history_calls, 2), ("stream", stream_calls, 1), ("chat-media", media_calls, 2),
                ("login", login_calls, 1), ("inbox-forms", inbox_posts(), 5),
                ("inbox-pages", inbox_pages(), 3)]  # the parsers that store most, argon2 logins least
# Each entry point at least this often per backend (FUZZ_EXAMPLES * weight / 37 on average).
LEAST_PER_ENTRY_POINT = 10
_CUMULATIVE = list(itertools.accumulate(weight for _, _, weight in ENTRY_POINTS))
EVERY_ENTRY_POINT = st.integers(0, _CUMULATIVE[-1] - 1).flatmap(
    lambda n: ENTRY_POINTS[bisect.bisect_right(_CUMULATIVE, n)][1].map(
        lambda call, name=ENTRY_POINTS[bisect.bisect_right(_CUMULATIVE, n)][0]: replace(call, entry=name)))


# Sending ---------------------------------------------------------------------------------------

async def status_only(app, call: Call, cookie: bytes | None) -> int:
    """The status of an event stream, then a disconnect (httpx's ASGI transport would wait for the
    end of a stream that never ends)."""
    path, _, query_string = call.path.partition("?")
    headers = [(b"host", b"testserver")] + ([(b"cookie", cookie)] if cookie else [])
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": unquote(path), "raw_path": path.encode(), "root_path": "",
             "query_string": query_string.encode(), "headers": headers, "client": ("127.0.0.1", 50000),
             "server": ("testserver", 80)}
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    gone = asyncio.Event()
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start" and not started.done():
            started.set_result(message["status"])

    task = asyncio.create_task(app(scope, receive, send))
    try:
        await asyncio.wait({task, started}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert started.done(), "the stream did not start"
        return started.result()
    finally:
        gone.set()
        try:
            await asyncio.wait_for(task, 15)  # the stream ends once it hears of the disconnect
        except Exception:  # noqa: BLE001 - the status already tells what the server answered
            task.cancel()


async def perform(client, call: Call, csrf: str, conversation_id: int, tokens: list[str]) -> int:
    call = replace(call, path=call.path.replace(CURRENT, str(conversation_id)))
    content, headers = call.content, dict(call.headers)
    if call.path.startswith("/chat/"):  # the web chat sees its identity cookie only (Path=/chat)
        value = tokens[call.identity].encode() if isinstance(call.identity, int) else call.identity
        headers["Cookie"] = COOKIE.encode() + b"=" + value if value is not None else b""
    if call.csrf and content is not None:
        content = content + (b"&" if content else b"") + b"csrf_token=" + csrf.encode()
    if call.sign:
        headers["X-Hub-Signature-256"] = sign(content or b"", WHATSAPP_SECRET)
    if call.status_only:
        return await status_only(client.app, call, headers.get("Cookie"))
    response = await client.request(call.method, call.path, content=content, headers=headers)
    client.cookies.delete(COOKIE)  # an identity issued now is not sent again by the jar: calls draw theirs
    return response.status_code


# The test --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def telegram_api():
    with FakeTelegram(max_long_poll=0.5) as fake:
        yield fake


@pytest.fixture(scope="module")
def graph_api():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


class Driver:
    """The in-process app on an event loop of its own thread, so that hypothesis (synchronous) can
    drive it: a worker logged in, one conversation handed to them, the server's log captured."""

    def __init__(self, settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-app", daemon=True)
        self.thread.start()
        self.log = ServerLog(others_from=logging.WARNING).__enter__()  # pytest's report keeps warnings
        self.statuses: dict[int, int] = {}
        self.routes: dict[str, int] = {}  # requests per route (the path up to its query string)
        self.entries: dict[str, int] = {}  # requests per entry point (ENTRY_POINTS)
        self._session = inbox_session(settings)
        self.client, self.conversation_id, self.csrf, self.person = self.run(self._session.__aenter__())
        self.tokens = [self.run(new_identity(self.client))[0] for _ in range(IDENTITIES)]

    def run(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def send(self, call: Call) -> int:
        status = self.run(perform(self.client, call, self.csrf, self.conversation_id, self.tokens), timeout=30)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        route = call.path.partition("?")[0]
        route = "/chat/api/media/{id}" if route.startswith("/chat/api/media/") else route
        self.routes[route] = self.routes.get(route, 0) + 1
        self.entries[call.entry] = self.entries.get(call.entry, 0) + 1
        if call.path.endswith(("/close", "/return-to-bot")) and CURRENT in call.path and status in (204, 303):
            self.run(self._hand_over_again())
        return status

    async def _hand_over_again(self) -> None:
        """The worker closed the conversation (or gave it back to the bot): the person asks for a
        human again, so that later replies, notes and transfers still reach an open conversation."""
        await self.person.post("humain")  # answered once committed: the handoff is in that transaction
        async with self.client.app.state.rt.sessionmaker() as session:
            self.conversation_id = (await session.execute(
                select(Conversation.id).where(Conversation.status.in_(("assigned", "waiting")))
                .order_by(Conversation.id.desc()).limit(1))).scalar() or self.conversation_id

    def close(self) -> None:
        try:
            self.run(self.client.app.state.rt.drain(timeout=30))
            self.run(self._session.__aexit__(None, None, None))
            self.run(_finish_tasks())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.log.__exit__(None, None, None)


async def _finish_tasks() -> None:
    """What asyncio.run does before closing its loop: cancel what is left and let it clean up."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


@pytest.fixture
def driver(settings_for, telegram_api, graph_api, backend):
    started = time.perf_counter()
    # The identity and message limits raised: the fuzz is to reach the parsers, not the 429s
    # (tests/hardening/test_ratelimit.py and test_identity.py prove the limits).
    limits = {**RATE_LIMITS, "webchat_identity_new": "1000000/minute", "webchat_message": "1000000/minute"}
    app = Driver(all_channels(settings_for, telegram_api, graph_api, rate_limits=limits))
    ready, cpu = time.perf_counter(), time.process_time()
    try:
        yield app
    finally:
        done, cpu = time.perf_counter(), time.process_time() - cpu
        app.close()
    total = sum(app.statuses.values())
    print(f"\nfuzz [{backend}]: {total} requests in {done - ready:.1f} s, CPU {cpu:.1f} s "
          f"(app start {ready - started:.1f} s, "
          f"stop {time.perf_counter() - done:.1f} s), statuses {dict(sorted(app.statuses.items()))}, "
          f"web chat {({k: v for k, v in sorted(app.routes.items()) if k.startswith('/chat/')})}")
    assert total >= FUZZ_EXAMPLES
    print(f"fuzz [{backend}]: per entry point {app.entries}")
    least = min(LEAST_PER_ENTRY_POINT, FUZZ_EXAMPLES // 40)
    assert all(app.entries.get(name, 0) >= least for name, _, _ in ENTRY_POINTS), app.entries
    assert not app.log.problems, app.log.problems[:5]  # late ones too (deliveries, fetches after the run)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@hypothesis_settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                     print_blob=False, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_generated_request_gets_a_5xx_or_logs_an_error(driver, data):
    call = data.draw(EVERY_ENTRY_POINT, label="call")
    before = len(driver.log.problems)
    status = driver.send(call)
    assert status < 500, call
    assert not driver.log.problems[before:], driver.log.problems[before:][:3]
