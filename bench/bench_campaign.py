"""Campaign benchmark: a campaign to N opted-in people against the loopback fakes enforcing the
platforms' limits, the app a real subprocess (`python -m allervers.cli serve`):
Telegram (FakeTelegram: 30 sends per sliding second per bot, 1 per second per chat, 429 beyond) or
WhatsApp (FakeGraphApi.enforce_limit: 80 per sliding second per phone number id, 130429 beyond).

    python bench/bench_campaign.py --people 10000                      # Telegram: a plain run, then kill -9
    python bench/bench_campaign.py --people 10000 --channel whatsapp   # the same at 80/s
    python bench/bench_campaign.py --runs kill --kill-at 0.5
    python bench/bench_campaign.py --backend postgres    # PostgreSQL + Redis (wipes the bench database)

Printed per run, against a baseline measured in the same run (a plain client from this process,
evenly paced at 97 % of the limit, against the same fake: what this machine does right now):
every send of the bot / number during the campaign (campaign + replies: all count toward the limit)
per second and its share of the limit, the ratio to the baseline, the campaign alone, sends answered
429, people sent twice, people skipped; while it runs, other people write (--inbound-rate per
second: Telegram `/start`, or a signed WhatsApp text): the webhook's answer time and the time to
their first reply at the platform (p50 / p99). With --kill-at F the app is killed with SIGKILL once
a fraction F of the people got it, restarted at once, and the run counts what was sent twice or
never (counted at the fake, from the messages it received whole). On WhatsApp the fake posts
Meta's status webhooks (sent, delivered: signed, batched, retried while the app is down) to the app,
which confirms with them the sends a kill left in doubt (BENCH_STATUSES=0: none).
tests/outreach/test_campaign_crash.py runs the short version (240 / 480 people, kill -9).
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

from bench.bench_crash import App as _App, app_env, update_body  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

class App(_App):
    """The app subprocess; with BENCH_PROFILE=<file> it runs under cProfile (written when it stops)."""

    def start(self) -> None:
        target = os.environ.get("BENCH_PROFILE")
        if not target:
            return super().start()
        import subprocess

        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cProfile", "-o", target, "-m", "allervers.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=self.root, env={**self.env, "PYTHONPATH": str(self.root)},
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def stop(self) -> None:
        if not os.environ.get("BENCH_PROFILE") or self.process is None or self.process.poll() is not None:
            return super().stop()
        import signal

        self.process.send_signal(signal.SIGINT)  # the profile is written once the server has returned
        self.process.wait(timeout=180)


TEXT = "📣 Une permanence d'accès aux droits ouvre jeudi à la mairie, de 14 h à 17 h."
FIRST_CHAT = 30_000_000
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_bench_campaign"
DEFAULT_REDIS = "redis://127.0.0.1:6379/9"


async def prepare(database_url: str, people: int, channel: str = "telegram") -> None:
    """The schema and demo seed (by the app's own start-up), then N opted-in people and a campaign
    scheduled now: the app starts it at its first tick."""
    import allervers.models  # noqa: F401  (every table known to the metadata)
    from kernel.database import make_engine, make_sessionmaker, utcnow
    from outreach.models import Campaign
    from tests.outreach.helpers import seed_audience

    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    first = FIRST_CHAT if channel == "telegram" else FIRST_NUMBER
    await seed_audience(sessionmaker, 1, people, first, channel)
    messages = ({"telegram": {"text": TEXT, "buttons": []}} if channel == "telegram"
                else {"whatsapp": {"template": WA_TEMPLATE, "params": [], "preview": TEXT}})
    async with sessionmaker() as session, session.begin():
        session.add(Campaign(organisation_id=1, name="Bench", status="scheduled", scheduled_at=utcnow(),
                             audience={}, messages=messages))
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


async def inbound_load(url: str, rate: float, stop: asyncio.Event, latencies: list[float],
                       posted: dict | None = None) -> None:
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

        async def one(body: bytes, chat: int) -> None:
            began = loop.time()
            if posted is not None:
                posted[str(chat)] = time.monotonic()
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
            task = asyncio.create_task(one(update_body(update_id, chat, "text", "/start"), chat))
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


WA_TOKEN, WA_SECRET, WA_NUMBER = "bench-wa-token", "bench-wa-secret", "100000000000001"
WA_TEMPLATE = "bench_news"
FIRST_NUMBER = 33_600_000_000


class Platform:
    """What the benchmark reads at one platform's fake: sends accepted, sends refused (429 / 130429).

    The run polls it every half second: it reads only what arrived since its last look
    (calls_since / messages_since), never a copy of everything under the fake's lock (which held the
    fake's server thread for milliseconds at 10,000 calls, bunching its arrival times)."""

    def __init__(self, channel: str, telegram, graph) -> None:
        self.channel, self.telegram, self.graph = channel, telegram, graph
        self._cursor, self._seen = 0, []  # what was read so far (references: a call's status may still change)
        self.reached: set[str] = set()  # chats the campaign reached (as seen while polling)

    def poll(self) -> int:
        """Read what is new; the number of people the campaign reached so far (for the kill)."""
        if self.channel == "telegram":
            new, self._cursor = self.telegram.calls_since(self._cursor)
        else:
            new, self._cursor = self.graph.messages_since(self._cursor)
        self._seen.extend(new)
        for chat, _, ours in self._accepted(new):
            if ours:
                self.reached.add(chat)
        return len(self.reached)

    def _accepted(self, records) -> list[tuple[str, float, bool]]:
        if self.channel == "telegram":
            return [(str(c.chat_id), c.at, c.params.get("text") == TEXT) for c in records
                    if c.method == "sendMessage" and c.status == 200]
        return [(str(r.body.get("to")), r.at, (r.body.get("template") or {}).get("name") == WA_TEMPLATE)
                for r in records if r.phone_number_id == WA_NUMBER]

    def accepted(self) -> list[tuple[str, float, bool]]:
        """(chat, arrival time, is the campaign's message) of every accepted send of the bot / number."""
        self.poll()
        return self._accepted(self._seen)

    def refused_campaign(self) -> int:
        """Of the refused sends, the campaign's (the rest were replies to people writing meanwhile)."""
        if self.channel == "telegram":
            self.poll()
            return sum(1 for c in self._seen if c.method == "sendMessage" and c.status == 429
                       and c.params.get("text") == TEXT)
        return -1  # the Graph API fake does not keep refused bodies

    def refused(self) -> int:
        return self.telegram.too_many if self.channel == "telegram" else self.graph.too_many

    def reset(self) -> None:
        self._cursor, self._seen, self.reached = 0, [], set()
        if self.channel == "telegram":
            self.telegram.reset()
            self.telegram.too_many = 0
        else:
            self.graph.reset()
            self.graph.enforce_limit(self.graph.limit_per_second)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat, in clock ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def baseline(platform: Platform, rate: float, seconds: float) -> dict:
    """The best a plain client does against the same fake on this machine now: evenly spaced sends
    at the app's campaign headroom (97 % of the limit) from one loop, to distinct chats."""
    import aiohttp

    count = max(10, int(rate * seconds))
    loop = asyncio.get_running_loop()
    platform.reset()
    async with aiohttp.ClientSession() as session:
        began, tasks = loop.time(), []

        async def one(i: int) -> None:
            if platform.channel == "telegram":
                url = f"{platform.telegram.base_url}/bot{platform.telegram.token}/sendMessage"
                async with session.post(url, json={"chat_id": 70_000_000 + i, "text": "baseline"}) as r:
                    await r.read()
            else:
                url = f"{platform.graph.base_url}/{WA_NUMBER}/messages"
                body = {"messaging_product": "whatsapp", "to": str(FIRST_NUMBER + 900_000 + i), "type": "text",
                        "text": {"body": "baseline"}}
                async with session.post(url, json=body, headers={"Authorization": f"Bearer {WA_TOKEN}"}) as r:
                    await r.read()

        for i in range(count):
            await asyncio.sleep(max(0.0, began + i / (rate * 0.97) - loop.time()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks, return_exceptions=True)
    times = sorted(at for _, at, _ in platform.accepted())
    refused = platform.refused()
    platform.reset()
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"sent": len(times), "rate": (len(times) - 1) / span if span else 0.0, "refused": refused}


async def inbound_whatsapp(url: str, rate: float, stop: asyncio.Event, posted: dict, latencies: list[float]) -> None:
    """Other people writing on WhatsApp during the campaign (signed webhooks) at `rate` per second."""
    import json

    import aiohttp

    from tests.fakes.graph_api import sign

    if rate <= 0:
        return
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        next_at, n, pending = loop.time(), 0, set()

        async def one(person: str, raw: bytes) -> None:
            began = time.monotonic()
            posted[person] = began
            try:
                async with session.post(url + "/bots/whatsapp/webhook", data=raw, timeout=aiohttp.ClientTimeout(total=10),
                                        headers={"Content-Type": "application/json",
                                                 "X-Hub-Signature-256": sign(raw, WA_SECRET)}) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.monotonic() - began)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass

        while not stop.is_set():
            n += 1
            person = str(FIRST_NUMBER + 500_000 + n)
            raw = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
                "field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "33100000000", "phone_number_id": WA_NUMBER},
                    "contacts": [{"profile": {"name": "Sam"}, "wa_id": person}],
                    "messages": [{"from": person, "id": f"wamid.BENCH.{n}", "timestamp": str(int(time.time())),
                                  "type": "text", "text": {"body": "Bonjour"}}]}}]}]}).encode()
            task = asyncio.create_task(one(person, raw))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if pending:
            await asyncio.wait(pending, timeout=10)


CONFIRM_GRACE = 10.0  # ALLERVERS_WHATSAPP_CONFIRM_GRACE_SECONDS for the app (1 h in production)


def confirmations(log_path: Path) -> dict:
    """What the app's log says of the WhatsApp sends left in doubt (conversations/confirmations.py)."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return {"awaiting": text.count("awaiting its status"), "confirmed": text.count("confirmed by a"),
            "resent": text.count("sent again"), "given_up": text.count("no webhook at all")}


async def run(backend: str, people: int, rate: float, kill_at: float | None, inbound_rate: float,
              postgres_url: str, redis_url: str, channel: str = "telegram", baseline_seconds: float = 5.0) -> dict:
    from tests.fakes.graph_api import FakeGraphApi

    with tempfile.TemporaryDirectory(prefix="allervers-campaign-") as workdir_name:
        workdir = Path(workdir_name)
        if backend == "sqlite":
            database_url, redis = f"sqlite+aiosqlite:///{workdir}/bench.db", None
        else:
            database_url, redis = postgres_url, redis_url
        await wipe(database_url, redis)
        telegram_limit = rate if channel == "telegram" else None
        with FakeTelegram(limit_per_second=telegram_limit, limit_per_chat_seconds=1.0) as fake, \
                FakeGraphApi(access_token=WA_TOKEN) as graph:
            graph.enforce_limit(rate if channel == "whatsapp" else None)
            platform = Platform(channel, fake, graph)
            env = app_env(database_url, redis, workdir, fake.base_url, {
                "ALLERVERS_CAMPAIGN_QUIET_ENABLED": "false", "ALLERVERS_CAMPAIGN_TICK_SECONDS": "0.5",
                "ALLERVERS_RATE_LIMITS_ENABLED": "false",
                **({"ALLERVERS_CAMPAIGN_HEADROOM": os.environ["BENCH_HEADROOM"]} if os.environ.get("BENCH_HEADROOM") else {}),
                "ALLERVERS_CAMPAIGN_TELEGRAM_PER_SECOND": str(rate if channel == "telegram" else 30),
                "ALLERVERS_CAMPAIGN_WHATSAPP_PER_SECOND": str(rate if channel == "whatsapp" else 80),
                "ALLERVERS_WHATSAPP_ACCESS_TOKEN": WA_TOKEN, "ALLERVERS_WHATSAPP_APP_SECRET": WA_SECRET,
                "ALLERVERS_WHATSAPP_VERIFY_TOKEN": "bench", "ALLERVERS_WHATSAPP_GRAPH_API_BASE": graph.base_url,
                "ALLERVERS_WHATSAPP_PHONE_NUMBER_ID": WA_NUMBER,
                "ALLERVERS_WHATSAPP_CONFIRM_GRACE_SECONDS": str(CONFIRM_GRACE),
                "ALLERVERS_WHATSAPP_CONFIRM_CHECK_SECONDS": "1"})
            app = App(ROOT, env, workdir / "app.log")
            app.start()  # migrations and the demo seed
            await app.wait_ready()
            app.stop()
            await prepare(database_url, people, channel)
            base = await baseline(platform, rate, baseline_seconds)
            started = time.monotonic()
            app = App(ROOT, env, workdir / "app.log")
            if channel == "whatsapp" and os.environ.get("BENCH_STATUSES", "1") != "0":
                # like Meta: signed status webhooks (sent, delivered) for each accepted message, retried
                graph.send_statuses(app.url + "/bots/whatsapp/webhook", WA_SECRET, statuses=("sent", "delivered"))
            app.start()
            await app.wait_ready()
            stop, latencies, posted = asyncio.Event(), [], {}
            if channel == "telegram":
                inbound = asyncio.create_task(inbound_load(app.url, inbound_rate, stop, latencies, posted))
            else:
                inbound = asyncio.create_task(inbound_whatsapp(app.url, inbound_rate, stop, posted, latencies))
            killed = None

            def campaign_sends():
                return [(chat, at) for chat, at, ours in platform.accepted() if ours]

            cpu = 0.0  # the app's CPU seconds (both processes when it is killed and restarted)
            cpu_began = cpu_seconds(app.process.pid)
            deadline = time.monotonic() + people / rate * 3 + 120
            while time.monotonic() < deadline:
                count = platform.poll()
                if kill_at is not None and killed is None and count >= people * kill_at:
                    cpu += cpu_seconds(app.process.pid) - cpu_began
                    app.kill()
                    killed = count
                    app = App(ROOT, env, workdir / "app.log")
                    graph.point_webhooks(app.url + "/bots/whatsapp/webhook")  # statuses refused meanwhile retry there
                    app.start()
                    await app.wait_ready()
                    cpu_began = 0.0  # its start-up counts: a restart is part of the run
                if count >= people:
                    break
                await asyncio.sleep(0.5)
            cpu += cpu_seconds(app.process.pid) - cpu_began
            stop.set()
            await inbound
            await asyncio.sleep(3)  # anything late (a second send) shows up
            app.stop()
            sends = campaign_sends()
            per_chat = Counter(chat for chat, _ in sends)
            times = sorted(at for _, at in sends)
            first, last = (times[0], times[-1]) if times else (0.0, 0.0)
            span = last - first if len(times) > 1 else float("nan")
            everything = [at for _, at, _ in platform.accepted() if first <= at <= last]
            first_reply = {}
            for chat, at, ours in platform.accepted():
                if not ours and chat in posted and chat not in first_reply:
                    first_reply[chat] = at - posted[chat]
            replies = list(first_reply.values())
            if os.environ.get("BENCH_DEBUG"):
                gaps = sorted((b - a, a - first) for a, b in zip(times, times[1:]))[-8:]
                print("largest gaps (gap, at):", [(round(g, 2), round(t, 1)) for g, t in gaps])
                every = sorted(at for _, at, _ in platform.accepted())
                n = int(rate)
                spans = [every[i + n - 1] - every[i] for i in range(len(every) - n + 1)]
                print(f"windows of {n} accepted sends: shortest {min(spans or [0]):.3f} s, "
                      f"{sum(1 for x in spans if x < 1.0)} under 1 s, {sum(1 for x in spans if x < 1.03)} under 1.03 s")
                print("\n".join(l for l in (workdir / "app.log").read_text(errors="replace").splitlines()
                                 if any(w in l for w in ("sweep", "crash", "ERROR", "WARNING", "failed", "Traceback")))[-8000:])
            return {
                "channel": channel, "backend": backend, "people": people, "sent": len(sends), "reached": len(per_chat),
                "span": span, "minimum": (people - 1) / rate,
                "campaign_rate": (len(sends) - 1) / span if span else 0.0,
                "rate": (len(everything) - 1) / span if span else 0.0,  # every send of the bot meanwhile
                "too_many": platform.refused(), "too_many_campaign": platform.refused_campaign(),
                "twice": sum(1 for n in per_chat.values() if n > 1),
                "skipped": people - len(per_chat), "killed_at": killed, "wall": time.monotonic() - started,
                "inbound": len(latencies), "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                "max": max(latencies) if latencies else float("nan"),
                "reply_p50": percentile(replies, 0.5), "reply_p99": percentile(replies, 0.99), "replied": len(replies),
                "baseline": base, "cpu": cpu, "cpu_per_send_ms": 1000 * cpu / max(1, len(platform.accepted())),
                "doubt": confirmations(workdir / "app.log") if channel == "whatsapp" else None,
                "statuses": (len(graph.statuses_delivered), graph.webhook_posts, graph.webhook_refused)
                if channel == "whatsapp" else None,
            }


def line(result: dict, rate: float) -> str:
    kill = f", kill -9 after {result['killed_at']} reached" if result["killed_at"] is not None else ""
    base = result["baseline"]
    inbound = (f"; inbound meanwhile: {result['inbound']} webhooks answered p50 {result['p50'] * 1000:.0f} ms, "
               f"p99 {result['p99'] * 1000:.0f} ms (max {result['max'] * 1000:.0f} ms), first reply at the platform "
               f"p50 {result['reply_p50'] * 1000:.0f} ms, p99 {result['reply_p99'] * 1000:.0f} ms "
               f"({result['replied']} people)") if result["inbound"] else ""
    doubt = ""
    if result.get("doubt") is not None:
        delivered, posts, refused = result["statuses"]
        d = result["doubt"]
        doubt = (f"; status webhooks: {delivered} statuses answered 2xx in {posts - refused} POSTs ({refused} POSTs "
                 f"refused or unanswered, retried)")
        if result["killed_at"] is not None:
            doubt += (f"; in doubt at the kill: {d['awaiting']} held awaiting, {d['confirmed']} confirmed by their "
                      f"status, {d['resent']} sent again, {d['given_up']} given up")
    return (f"{result['channel']} / {result['backend']}: {result['people']} people{kill}: {result['sent']} campaign "
            f"sends in {result['span']:.1f} s (minimum {result['minimum']:.1f} s); every send of the "
            f"{'bot' if result['channel'] == 'telegram' else 'number'} {result['rate']:.1f}/s = "
            f"{100 * result['rate'] / rate:.1f} % of {rate:g}/s (campaign alone {result['campaign_rate']:.1f}/s); "
            f"baseline (a plain paced client, same fake, same run) {base['rate']:.1f}/s, {base['refused']} refused: "
            f"ratio {result['rate'] / base['rate'] if base['rate'] else float('nan'):.3f}; "
            f"{result['too_many']} sends answered 429 ({100 * result['too_many'] / max(1, result['sent']):.2f} %; "
            f"campaign's {result['too_many_campaign'] if result['too_many_campaign'] >= 0 else 'n/a'}); "
            f"{result['twice']} sent twice, {result['skipped']} skipped (both counted at the fake: the messages it "
            f"received whole, per person); app CPU {result['cpu']:.1f} s = "
            f"{result['cpu_per_send_ms']:.2f} ms per send accepted{inbound}{doubt}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", "--contacts", type=int, default=1000, help="the campaign's audience (the issue's figure: 10000)")
    parser.add_argument("--channel", choices=("telegram", "whatsapp"), default="telegram")
    parser.add_argument("--rate", type=float, default=None,
                        help="the fake's (and the app's) sends per second: 30 on Telegram, 80 on WhatsApp")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", choices=("both", "plain", "kill"), default="both")
    parser.add_argument("--kill-at", type=float, default=0.5)
    parser.add_argument("--inbound-rate", type=float, default=2.0, help="other people's /start per second meanwhile")
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    rate = args.rate or (30.0 if args.channel == "telegram" else 80.0)
    runs = {"both": [None, args.kill_at], "plain": [None], "kill": [args.kill_at]}[args.runs]
    for kill_at in runs:
        result = asyncio.run(run(args.backend, args.people, rate, kill_at, args.inbound_rate,
                                 args.postgres_url, args.redis_url, args.channel))
        print(line(result, rate), flush=True)


if __name__ == "__main__":
    main()
