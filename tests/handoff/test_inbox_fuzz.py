"""Property-based fuzz of the inbox's new entry points (hypothesis): the lists' search, the timeline's
cursors and the Web Push subscription. Never a 5xx; a refused subscription changes nothing."""

from __future__ import annotations

import asyncio
import json
import threading
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func, select

from conversations.models import Conversation, Event
from handoff.push import PushSubscription
from tests.conftest import app_client, csrf_of, login
from tests.conversations.test_commands import consented
from tests.handoff.test_push import vapid_keys

TEXT = st.text(max_size=120)
B64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=100)
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                       max_leaves=8)
SUBSCRIPTION = st.fixed_dictionaries(
    {"endpoint": st.one_of(st.just("https://push.example/abc"), TEXT, JSONISH)},
    optional={"keys": st.one_of(st.fixed_dictionaries({"p256dh": st.one_of(B64, JSONISH), "auth": st.one_of(B64, JSONISH)}),
                                JSONISH), "expirationTime": JSONISH})
PUSH_BODY = st.one_of(SUBSCRIPTION.map(lambda d: json.dumps(d).encode()), JSONISH.map(lambda d: json.dumps(d).encode()),
                      st.binary(max_size=300), st.just(b"[" * 3000), st.just(b'{"endpoint": 1e999}'))
SEARCH = st.fixed_dictionaries({}, optional={
    "q": TEXT, "channel": st.one_of(st.sampled_from(["telegram", "whatsapp", "webchat", ""]), TEXT),
    "date": st.one_of(st.sampled_from(["2026-11-20", "", "2026-02-30", "0001-01-01"]), TEXT),
    "view": st.one_of(st.sampled_from(["all", "waiting", "mine", "team", "closed"]), TEXT),
    "page": st.one_of(st.integers(-5, 20000).map(str), TEXT)})
CURSOR = st.one_of(st.integers(-3, 3000).map(str), st.just("2147483648"), TEXT)

CALLS = st.one_of(
    st.builds(lambda p: ("GET", "/inbox?" + urlencode(p, errors="surrogatepass"), None, {}), SEARCH),
    st.builds(lambda p: ("GET", "/inbox/partials/lists?" + urlencode(p, errors="surrogatepass"), None, {}), SEARCH),
    st.builds(lambda c: ("GET", "/inbox/conversations/{id}/older?" + urlencode({"before": c}, errors="surrogatepass"), None, {}), CURSOR),
    st.builds(lambda c: ("GET", "/inbox/conversations/{id}/timeline?" + urlencode({"since": c}, errors="surrogatepass"), None, {}), CURSOR),
    st.builds(lambda body, token, kind: ("POST", "/inbox/push/subscribe", body,
                                         {"Content-Type": kind, **({"X-CSRF-Token": token} if token is not None else {})}),
              PUSH_BODY, st.one_of(st.none(), st.just("{csrf}"), st.just("{csrf}"), st.just("{csrf}"), TEXT.filter(lambda t: t.isascii())),
              st.sampled_from(["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded"])),
)


class Driver:
    """The app in-process on an event loop of its own thread (hypothesis is synchronous)."""

    def __init__(self, settings):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.context = app_client(settings)
        self.client = self.run(self.context.__aenter__())
        self.run(self._prepare())

    async def _prepare(self):
        person = await consented(self.client)
        await person.send("humain")
        await login(self.client, "camille@demo.allervers.fr", "allervers-demo")
        async with self.client.app.state.rt.sessionmaker() as session:
            self.conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
        self.csrf = csrf_of((await self.client.get("/inbox")).text)

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    async def counts(self):
        async with self.client.app.state.rt.sessionmaker() as session:
            return tuple([(await session.execute(select(func.count()).select_from(model))).scalar()
                          for model in (PushSubscription, Conversation, Event)])

    async def call(self, method, path, body, headers):
        headers = {k: v.replace("{csrf}", self.csrf) for k, v in headers.items()}
        before = await self.counts()
        response = await self.client.request(method, path.replace("{id}", str(self.conversation_id)),
                                             content=body, headers=headers)
        after = await self.counts()
        return response.status_code, before, after

    def close(self):
        self.run(self.context.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def driver(settings_for):
    public, private = vapid_keys()
    app = Driver(settings_for(vapid_public_key=public, vapid_private_key=private))
    yield app
    app.close()


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call=CALLS)
def test_search_cursors_and_push_subscribe_never_5xx_and_refusals_change_nothing(driver, call):
    status, before, after = driver.run(driver.call(*call))
    assert status < 500, (call, status)
    if status >= 400:
        assert before == after, (call, status)
    if call[1] == "/inbox/push/subscribe" and status == 204:
        assert after[0] >= before[0]
