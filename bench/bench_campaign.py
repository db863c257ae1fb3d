"""Campaign benchmark: a Telegram campaign to N opted-in people against the loopback fake Bot API
enforcing Telegram's limits (30 sends per sliding second per bot, 1 per second per chat; 429 and
retry_after beyond), the app a real subprocess (`python -m allervers.cli serve`).

    python bench/bench_campaign.py                       # 1,000 people, then the same with a kill -9
    python bench/bench_campaign.py --people 10000        # the full run (~6 min per run at 30/s)
    python bench/bench_campaign.py --kill-at 0.5 --runs kill
    python bench/bench_campaign.py --backend postgres    # PostgreSQL + Redis (wipes the bench database)

Printed per run: sends, elapsed from the first send to the last vs the theoretical minimum (N/30 s),
achieved rate and its share of 30/s, sends answered 429, people sent twice, people skipped, and
while the campaign runs, inbound `/start` updates of other people posted at --inbound-rate: the
webhook's answer time (p50 / p99 / max). With --kill-at F the app is killed with SIGKILL once a
fraction F of the people got it, restarted at once, and the run counts what was sent twice or never.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_crash import App, app_env, update_body  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

TEXT = "📣 Une permanence d'accès aux droits ouvre jeudi à la mairie, de 14 h à 17 h."
FIRST_CHAT = 30_000_000
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_bench_campaign"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


async def prepare(database_url: str, people: int) -> None:
    """The schema and demo seed (by the app's own start-up), then N opted-in people and a campaign
    scheduled now: the app starts it at its first tick."""
    import allervers.models  # noqa: F401  (every table known to the metadata)
    from allervers.database import make_engine, make_sessionmaker, utcnow
    from outreach.models import Campaign
    from tests.outreach.helpers import seed_audience

    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    await seed_audience(sessionmaker, 1, people, FIRST_CHAT)
    async with sessionmaker() as session, session.begin():
        session.add(Campaign(organisation_id=1, name="Bench", status="scheduled", scheduled_at=utcnow(),
                             audience={}, messages={"telegram": {"text": TEXT, "buttons": []}}))
    await engine.dispose()


async def wipe(database_url: str, redis_url: str | None) -> None:
    if database_url.startswith("sqlite"):
        return
    import asyncpg

    server = database_url.replace("postgresql+asyncpg://", "postgresql://")
    base, name = server.rsplit("/", 1)
    connection = await asyncpg.connect(base + "/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        client.close()


async def inbound_load(url: str, rate: float, stop: asyncio.Event, latencies: list[float]) -> None:
    """Other people writing during the campaign: `/start` from new chats at `rate` per second."""
    import aiohttp

    if rate <= 0:
        return
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": "crash-bench-secret"}
    loop = asyncio.get_running_loop()
    update_id, chat = 900_000_000, 90_000_000
    async with aiohttp.ClientSession() as session:
        next_at = loop.time()
        pending = set()

        async def one(body: bytes) -> None:
            began = loop.time()
            try:
                async with session.post(url + "/bots/telegram/webhook", data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(loop.time() - began)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass

        while not stop.is_set():
            update_id += 1
            chat += 1
            task = asyncio.create_task(one(update_body(update_id, chat, "text", "/start")))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if pending:
            await asyncio.wait(pending, timeout=10)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(backend: str, people: int, rate: float, kill_at: float | None, inbound_rate: float,
              postgres_url: str, redis_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="allervers-campaign-") as workdir_name:
        workdir = Path(workdir_name)
        if backend == "sqlite":
            database_url, redis = f"sqlite+aiosqlite:///{workdir}/bench.db", None
        else:
            database_url, redis = postgres_url, redis_url
        await wipe(database_url, redis)
        with FakeTelegram(limit_per_second=rate, limit_per_chat_seconds=1.0) as fake:
            env = app_env(database_url, redis, workdir, fake.base_url, {
                "ALLERVERS_CAMPAIGN_QUIET_ENABLED": "false", "ALLERVERS_CAMPAIGN_TELEGRAM_PER_SECOND": str(rate),
                "ALLERVERS_CAMPAIGN_TICK_SECONDS": "0.5", "ALLERVERS_RATE_LIMITS_ENABLED": "false"})
            app = App(ROOT, env, workdir / "app.log")
            app.start()  # migrations and the demo seed
            await app.wait_ready()
            app.stop()
            await prepare(database_url, people)
            fake.reset()
            started = time.monotonic()
            app = App(ROOT, env, workdir / "app.log")
            app.start()
            await app.wait_ready()
            stop, latencies = asyncio.Event(), []
            inbound = asyncio.create_task(inbound_load(app.url, inbound_rate, stop, latencies))
            killed = None

            def campaign_sends():
                return [c for c in fake.sent_messages() if c.params.get("text") == TEXT]

            deadline = time.monotonic() + people / rate * 3 + 120
            while time.monotonic() < deadline:
                count = len({c.chat_id for c in campaign_sends()})
                if kill_at is not None and killed is None and count >= people * kill_at:
                    app.kill()
                    killed = count
                    app = App(ROOT, env, workdir / "app.log")
                    app.start()
                    await app.wait_ready()
                if count >= people:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # anything late (a second send) shows up
            stop.set()
            await inbound
            app.stop()
            sends = campaign_sends()
            per_chat = Counter(int(c.chat_id) for c in sends)
            times = sorted(c.at for c in sends)
            span = times[-1] - times[0] if len(times) > 1 else float("nan")
            if os.environ.get("BENCH_DEBUG"):
                gaps = sorted((b - a, a - times[0]) for a, b in zip(times, times[1:]))[-8:]
                print("largest gaps (gap, at):", [(round(g, 2), round(t, 1)) for g, t in gaps])
            return {
                "backend": backend, "people": people, "sent": len(sends), "reached": len(per_chat),
                "span": span, "minimum": (people - 1) / rate, "rate": (len(sends) - 1) / span if span else 0,
                "too_many": sum(1 for c in fake.calls("sendMessage") if c.status == 429 and c.params.get("text") == TEXT),
                "replies_429": fake.too_many - sum(1 for c in fake.calls("sendMessage")
                                                   if c.status == 429 and c.params.get("text") == TEXT),
                "twice": sum(1 for n in per_chat.values() if n > 1),
                "skipped": people - len(per_chat), "killed_at": killed, "wall": time.monotonic() - started,
                "inbound": len(latencies), "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                "max": max(latencies) if latencies else float("nan"),
            }


def line(result: dict, rate: float) -> str:
    kill = f", kill -9 after {result['killed_at']} reached" if result["killed_at"] is not None else ""
    inbound = (f"; inbound during it: {result['inbound']} answered, p50 {result['p50'] * 1000:.0f} ms, "
               f"p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms") if result["inbound"] else ""
    return (f"{result['backend']}: {result['people']} people{kill}: {result['sent']} sent in {result['span']:.1f} s "
            f"(minimum {result['minimum']:.1f} s) = {result['rate']:.1f}/s ({100 * result['rate'] / rate:.1f} % of "
            f"{rate:g}/s); {result['too_many']} campaign sends answered 429 ({100 * result['too_many'] / max(1, result['sent']):.2f} %), "
            f"{result['replies_429']} replies to others answered 429; "
            f"{result['twice']} sent twice, {result['skipped']} skipped{inbound}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=30.0, help="the fake's (and the app's) sends per second")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", choices=("both", "plain", "kill"), default="both")
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--inbound-rate", type=float, default=2.0, help="other people's /start per second meanwhile")
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    runs = {"both": [None, args.kill_at], "plain": [None], "kill": [args.kill_at]}[args.runs]
    for kill_at in runs:
        result = asyncio.run(run(args.backend, args.people, args.rate, kill_at, args.inbound_rate,
                                 args.postgres_url, args.redis_url))
        print(line(result, args.rate), flush=True)


if __name__ == "__main__":
    main()
