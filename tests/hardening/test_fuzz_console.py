"""Property-based fuzz of the admin console, the invitation page and every other signed-in route.

The routes are not listed by hand: the test walks the app's routing table, so a console room added
later is fuzzed the day it lands. It takes every route under /admin, /invite and /inbox, except
the ones tests/hardening/test_fuzz.py drives with payloads of their own (login, the inbox's
conversation actions), the event streams (a status only: covered there), the voice uploads
(tests/hardening/test_voice_fuzz.py) and the three that end the session or hash passwords (logout,
password change). The demo admin (Sam) is signed in; requests are mostly well-formed forms with
the right CSRF token so the handlers (not only the validation) meet odd values:

- path ids: mostly small numbers (rows that exist: teams, people, flows, places), sometimes any
  string or a 20-digit number;
- form fields: names read from the console's own templates (every `name="…"`), values mostly
  plausible (ids, "09:00", "fr", "on", a commune code) or drawn (NUL, lone surrogates, 4,097+
  characters, garbage bytes), sometimes a garbage body or the wrong content type;
- query strings: the route's declared parameters and the templates' field names, drawn short values.

Property: no answer is a 5xx and the server's log holds no ERROR record and no traceback. When a
request ends the admin's session (deactivating oneself is refused, but a drawn request may still
log out), the driver signs in again. CONSOLE_EXAMPLES per backend (500; ALLERVERS_TEST_FUZZ_EXAMPLES
scales it with the main fuzz).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from kernel.settings import RATE_LIMITS
from tests.admin.helpers import ADMIN_EMAIL, PASSWORD
from tests.conftest import app_client, csrf_of, login
from tests.hardening.payloads import GARBAGE, HUGE_INT, SHORT_TEXT, TEXT, ServerLog

CONSOLE_EXAMPLES = max(100, int(os.environ.get("ALLERVERS_TEST_FUZZ_EXAMPLES", 2000)) // 4)
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
COVERED_ELSEWHERE = re.compile(
    r"^/inbox/(login|logout|password)$|/stream$|/voice$|^/inbox/conversations/\{[^}]+\}"
    r"/(reply|note|transfer|close|take|return-to-bot)$")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def walk(routes, prefix: str = ""):
    """Every APIRoute of the app, included routers unfolded (FastAPI keeps them as included nodes)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from walk(route.original_router.routes, prefix + (getattr(route.include_context, "prefix", "") or ""))
        elif isinstance(route, APIRoute):
            yield prefix + route.path, route


def declared_queries(dependant) -> list[str]:
    names = [param.alias for param in dependant.query_params]
    for sub in dependant.dependencies:
        names += declared_queries(sub)
    return names


@dataclass(frozen=True)
class Target:
    method: str
    path: str  # with {placeholders}
    queries: tuple[str, ...]


def targets(app) -> list[Target]:
    found = []
    for path, route in walk(app.routes):
        if not path.startswith(("/admin", "/invite", "/inbox")) or COVERED_ELSEWHERE.search(path):
            continue
        for method in sorted(route.methods or ()):
            if method in ("GET", "POST"):
                found.append(Target(method, path, tuple(declared_queries(route.dependant))))
    return found


def template_field_names() -> list[str]:
    names: set[str] = set()
    for template in TEMPLATES.rglob("*.html"):
        names.update(re.findall(r'name="([A-Za-z_][\w\-\[\]]*)"', template.read_text(encoding="utf-8")))
    names.discard("csrf_token")
    return sorted(names)


FIELD_NAMES = template_field_names()
PLAUSIBLE = st.sampled_from(["1", "2", "3", "0", "-1", "", "on", "fr", "ar", "09:00", "18:30", "25:61", "mon",
                             "sun", "commune", "departement", "75056", "33", "2A", "Camille", "a@b.fr",
                             "https://example.org", "2026-12-24", "answered", "rights", "places", "draft",
                             "published", "1" * 30])
VALUE = st.one_of(PLAUSIBLE, PLAUSIBLE, SHORT_TEXT, TEXT, HUGE_INT.map(str))
QUERY_VALUE = st.one_of(PLAUSIBLE, PLAUSIBLE, SHORT_TEXT, HUGE_INT.map(str))  # URLs stay < 64 kB
PATH_VALUE = st.one_of(st.integers(-1, 8).map(str), st.integers(-1, 8).map(str), st.integers(-1, 8).map(str),
                       HUGE_INT.map(str), st.just("99999999999999999999"),
                       SHORT_TEXT.map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))


@dataclass
class Call:
    method: str
    path: str
    content: bytes | None = None
    headers: dict = field(default_factory=dict)
    csrf: bool = False

    def __repr__(self) -> str:
        return f"Call({self.method} {self.path[:200]!r}, content={(self.content or b'')[:300]!r}, csrf={self.csrf})"


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(quote(k, safe="") + "=" + quote(v.encode("utf-8", "surrogatepass"), safe="") for k, v in pairs)


@st.composite
def console_calls(draw, all_targets: list[Target]) -> Call:
    target = draw(st.sampled_from(all_targets))
    path = re.sub(r"\{[^}]+\}", lambda _: draw(PATH_VALUE), target.path)
    names = list(target.queries) + FIELD_NAMES
    chosen = draw(st.lists(st.sampled_from(names), max_size=6))
    if target.method == "GET":
        pairs = [(name, draw(QUERY_VALUE)) for name in chosen]
        return Call("GET", path + ("?" + encode(pairs) if pairs else ""))
    pairs = [(name, draw(VALUE)) for name in chosen]
    if draw(st.integers(0, 99)) < 8:
        return Call("POST", path, draw(GARBAGE), dict(FORM) if draw(st.booleans()) else
                    {"Content-Type": draw(st.sampled_from(["multipart/form-data; boundary=x", "application/json"]))},
                    csrf=False)
    wrong_token = draw(st.integers(0, 99)) < 10
    if wrong_token:
        pairs.append(("csrf_token", draw(SHORT_TEXT)))
    headers = dict(FORM)
    if draw(st.booleans()):
        headers["HX-Request"] = "true"
    return Call("POST", path, encode(pairs).encode(), headers, csrf=not wrong_token)


class Driver:
    """The app on an event loop of its own thread (hypothesis is synchronous), the admin signed in."""

    def __init__(self, settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzzed-console", daemon=True)
        self.thread.start()
        self.log = ServerLog(others_from=40).__enter__()
        self.statuses: dict[int, int] = {}
        self.relogins = 0
        self._client = app_client(settings)
        self.client = self.run(self._client.__aenter__())
        self.csrf = self.run(self.sign_in())
        self.targets = targets(self.client.app)

    def run(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def sign_in(self) -> str:
        assert (await login(self.client, ADMIN_EMAIL, PASSWORD)).status_code == 303
        return csrf_of((await self.client.get("/admin/teams")).text)

    async def perform(self, call: Call) -> int:
        content = call.content
        if call.csrf:
            content = (content + b"&" if content else b"") + b"csrf_token=" + self.csrf.encode()
        response = await self.client.request(call.method, call.path, content=content, headers=call.headers)
        if response.status_code in (303, 401) and "/inbox/login" in response.headers.get("location", "/inbox/login"):
            if (await self.client.get("/admin")).status_code != 200:  # the session ended: sign in again
                self.relogins += 1
                self.csrf = await self.sign_in()
        return response.status_code

    def send(self, call: Call) -> int:
        status = self.run(self.perform(call), timeout=30)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status

    def close(self) -> None:
        try:
            self.run(self.client.app.state.rt.drain(timeout=30))
            self.run(self._client.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            self.log.__exit__(None, None, None)


@pytest.fixture
def console(settings_for, backend):
    limits = {**RATE_LIMITS, "login_address": "1000000/minute", "login_account": "1000000/minute"}
    driver = Driver(settings_for(rate_limits=limits))
    started, cpu = time.perf_counter(), time.process_time()
    try:
        yield driver
    finally:
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        driver.close()
    total = sum(driver.statuses.values())
    print(f"\nconsole fuzz [{backend}]: {total} requests over {len(driver.targets)} routes in {elapsed:.1f} s "
          f"(CPU {cpu:.1f} s), statuses {dict(sorted(driver.statuses.items()))}, sign-ins again {driver.relogins}")
    assert total >= CONSOLE_EXAMPLES
    assert 200 in driver.statuses and any(400 <= status < 500 for status in driver.statuses)
    assert not driver.log.problems, driver.log.problems[:5]


def test_the_walk_finds_the_console_and_the_invitation():
    from allervers.app import create_app
    from kernel.settings import Settings

    found = {(t.method, t.path) for t in targets(create_app(Settings(_env_file=None)))}
    assert {("GET", "/admin/teams"), ("POST", "/admin/teams/{team_id}"), ("POST", "/invite/{token}"),
            ("POST", "/admin/directory/save"), ("GET", "/inbox/waiting")} <= found
    assert not any(COVERED_ELSEWHERE.search(path) for _, path in found)
    assert {"first_name", "capacity", "escalate_after_minutes"} <= set(FIELD_NAMES)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
@hypothesis_settings(max_examples=CONSOLE_EXAMPLES, deadline=None, derandomize=True, database=None,
                     print_blob=False, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_console_request_gets_a_5xx_or_logs_an_error(console, data):
    call = data.draw(console_calls(console.targets), label="call")
    before = len(console.log.problems)
    status = console.send(call)
    assert status < 500, call
    assert not console.log.problems[before:], console.log.problems[before:][:3]
