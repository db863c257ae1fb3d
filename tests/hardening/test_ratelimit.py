"""Rate limits (kernel/ratelimit.py) through the real routes, memory limiter on SQLite, Redis
limiter on PostgreSQL + Redis: inbox login per address and per account (a short lockout, never a
permanent one), new web chat identities per address, messages and uploads per identity."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import func, select

from kernel.ratelimit import Limiter, RateLimited
from conversations.audio import silent_ogg_opus
from conversations.webchat_identity import WebchatIdentity
from tests.conftest import csrf_of
from tests.webchat import COOKIE

WORKER, PASSWORD = "camille@demo.allervers.fr", "allervers-demo"


@asynccontextmanager
async def running(settings):
    from allervers.app import create_app

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client_at(app, address: str) -> httpx.AsyncClient:
    """A client seen by the app as coming from `address`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)),
                             base_url="http://testserver")


async def try_login(client: httpx.AsyncClient, password: str, email: str = WORKER, token: str | None = None):
    if token is None:
        token = csrf_of((await client.get("/inbox/login")).text)
    return await client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": token})


async def test_limiter_counts_per_key_and_forgets_after_the_window(settings_for):
    settings = settings_for()
    limiter = Limiter({"probe": "2/2 seconds"}, settings.redis_url)
    try:
        await limiter.hit("probe", "person@example.org")
        await limiter.hit("probe", "person@example.org")
        with pytest.raises(RateLimited) as refused:
            await limiter.hit("probe", "person@example.org")
        assert refused.value.rule == "probe" and isinstance(refused.value.retry_after, int)
        assert 1 <= refused.value.retry_after <= 2
        await limiter.hit("probe", "someone-else@example.org")  # another key: its own count
        if settings.redis_url:  # Redis storage when configured; the keys never hold the raw value
            import redis.asyncio as aioredis

            client = aioredis.from_url(settings.redis_url)
            keys = [key.decode() for key in await client.keys("*")]
            await client.aclose()
            assert keys and all(key.startswith("allervers:ratelimit") for key in keys)
            assert not [key for key in keys if "example.org" in key]
        await asyncio.sleep(2.1)
        await limiter.hit("probe", "person@example.org")
    finally:
        await limiter.close()


async def test_two_hundred_wrong_passwords_are_mostly_refused_before_hashing(settings_for):
    async with running(settings_for()) as app, client_at(app, "203.0.113.5") as attacker:
        token = csrf_of((await attacker.get("/inbox/login")).text)
        cpu = time.process_time()
        first = await try_login(attacker, "wrong", token=token)
        one_hash = time.process_time() - cpu
        assert first.status_code == 401
        statuses = [first.status_code]
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(199):
            response = await try_login(attacker, "wrong", token=token)
            statuses.append(response.status_code)
        wall, spent = time.perf_counter() - started, time.process_time() - cpu + one_hash
        print(f"\n200 wrong passwords: {statuses.count(401)} evaluated, {statuses.count(429)} refused (429); "
              f"{wall:.2f} s, {spent:.2f} s CPU (one evaluation: {one_hash * 1000:.0f} ms CPU)")
        assert statuses.count(401) <= 10 and statuses.count(429) == 200 - statuses.count(401)
        assert spent < 60 * one_hash  # 200 evaluations would cost 200 x
        assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
        assert "Trop de tentatives. Réessayez dans 1 minute." in response.text
        # The right password from this address waits too...
        assert (await try_login(attacker, PASSWORD, token=token)).status_code == 429
        # ...but the worker, from their own address, still logs in.
        async with client_at(app, "192.0.2.10") as worker:
            assert (await try_login(worker, PASSWORD)).status_code == 303


async def test_an_account_hammered_from_many_addresses_is_locked_briefly_never_for_good(settings_for):
    settings = settings_for(rate_limits={"login_account": "3/8 seconds", "login_address": "100/minute"})
    async with running(settings) as app:
        for n in range(3):
            async with client_at(app, f"198.51.100.{n}") as attacker:
                assert (await try_login(attacker, "wrong")).status_code == 401
        async with client_at(app, "192.0.2.10") as worker:
            locked = await try_login(worker, PASSWORD)
            assert locked.status_code == 429 and "Trop de tentatives" in locked.text
            retry_after = int(locked.headers["retry-after"])
            assert 1 <= retry_after <= 8
            await asyncio.sleep(retry_after + 0.2)
            assert (await try_login(worker, PASSWORD)).status_code == 303
        # Another account was never concerned.
        async with client_at(app, "198.51.100.1") as other:
            assert (await try_login(other, "wrong", email="nobody@example.org")).status_code == 401


async def test_the_address_limit_resets_after_its_window(settings_for):
    settings = settings_for(rate_limits={"login_address": "3/8 seconds"})
    async with running(settings) as app, client_at(app, "203.0.113.9") as client:
        token = csrf_of((await client.get("/inbox/login")).text)
        for _ in range(3):
            assert (await try_login(client, "wrong", token=token)).status_code == 401
        locked = await try_login(client, PASSWORD, token=token)
        assert locked.status_code == 429
        await asyncio.sleep(int(locked.headers["retry-after"]) + 0.2)
        assert (await try_login(client, PASSWORD, token=token)).status_code == 303


async def ask_identity(client: httpx.AsyncClient) -> httpx.Response:
    """POST /chat/api/identity as a fresh browser (no cookie sent, none kept in the client's jar)."""
    response = await client.post("/chat/api/identity", json={}, headers={"Cookie": ""})
    client.cookies.clear()
    return response


async def identity(client: httpx.AsyncClient) -> str:
    response = await ask_identity(client)
    assert response.status_code == 200, response.text
    return response.cookies[COOKIE]


def as_person(token: str) -> dict:
    return {"Cookie": f"{COOKIE}={token}"}


async def say(client: httpx.AsyncClient, token: str, text: str = "bonjour") -> httpx.Response:
    return await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, "text": text},
                             headers=as_person(token))


async def stored_identities(app) -> int:
    async with app.state.rt.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(WebchatIdentity))).scalar()


@pytest.mark.parametrize("count", [200, pytest.param(2000, marks=pytest.mark.slow)])
async def test_new_identities_from_one_address_are_not_all_accepted(settings_for, count):
    async with running(settings_for()) as app, client_at(app, "203.0.113.20") as flood:
        statuses: list[int] = []
        tokens: list[str | None] = []
        started = time.perf_counter()
        for batch in range(0, count, 100):
            responses = await asyncio.gather(*(ask_identity(flood) for _ in range(min(100, count - batch))))
            statuses += [r.status_code for r in responses]
            tokens += [r.cookies.get(COOKIE) for r in responses]
        elapsed = time.perf_counter() - started
        print(f"\n{count} new identities from one address in {elapsed:.2f} s: {statuses.count(200)} accepted, "
              f"{statuses.count(429)} refused (429)")
        assert statuses.count(200) <= 10 and statuses.count(429) == count - statuses.count(200)
        refused = responses[-1]
        assert refused.status_code == 429 and refused.json()["ok"] is False
        assert "Réessayez dans" in refused.json()["error"] and int(refused.headers["retry-after"]) > 0
        assert "set-cookie" not in refused.headers
        accepted = [token for token, status in zip(tokens, statuses) if status == 200]
        assert all(accepted) and len(set(accepted)) == len(accepted)
        assert [token for token, status in zip(tokens, statuses) if status == 429 and token] == []
        assert await stored_identities(app) == len(accepted)  # nothing written for the refused ones
        assert (await say(flood, accepted[0], "encore moi")).status_code == 200  # known identities go on
        await app.state.rt.drain()
        async with client_at(app, "192.0.2.30") as neighbour:  # another address is not concerned
            assert (await say(neighbour, await identity(neighbour))).status_code == 200
        assert await stored_identities(app) == len(accepted) + 1
        await app.state.rt.drain()


async def test_messages_and_voice_notes_are_limited_per_identity(settings_for):
    settings = settings_for(rate_limits={"webchat_message": "3/8 seconds", "upload": "2/minute"})
    async with running(settings) as app, client_at(app, "203.0.113.40") as client:
        uid, other = await identity(client), await identity(client)
        for _ in range(3):
            assert (await say(client, uid)).status_code == 200
        refused = await say(client, uid)
        assert refused.status_code == 429 and refused.json() == {
            "ok": False, "error": refused.json()["error"]} and "Réessayez dans 1 minute" in refused.json()["error"]
        retry_after = int(refused.headers["retry-after"])
        assert (await say(client, other)).status_code == 200

        async def voice(who: str) -> httpx.Response:
            return await client.post("/chat/api/voice", data={"client_id": uuid.uuid4().hex},
                                     files={"audio": ("v.ogg", silent_ogg_opus(1), "audio/ogg")},
                                     headers=as_person(who))

        assert [(await voice(other)).status_code for _ in range(3)] == [200, 200, 429]
        # Refused before its body is read: a body that is no form at all gets the 429 too (parsed, a 400).
        not_a_form = await client.post("/chat/api/voice", content=b"--x\r\nnot a form",
                                       headers={**as_person(other), "Content-Type": "multipart/form-data; boundary=x"})
        assert not_a_form.status_code == 429 and "Réessayez dans" in not_a_form.json()["error"]
        assert (await voice(uid)).status_code == 200  # another identity: its own count
        await asyncio.sleep(retry_after + 0.2)
        assert (await say(client, uid)).status_code == 200
        await app.state.rt.drain()
