"""Crash benchmark: kill -9 the app under load, restart it, count what was lost or sent twice.

    python bench/bench_crash.py                              # 5 runs on SQLite
    python bench/bench_crash.py --backend postgres+redis --runs 5
    python bench/bench_crash.py --root /tmp/old-checkout     # the same load against other code

The app runs as a real subprocess (`python -m allervers.cli serve`) against the fake Telegram Bot
API of the tests (tests/fakes/telegram_api.py, on loopback in this process), which records every
sendMessage it answers. The load generator plays many people (distinct chat ids), each sending the
five updates of bench_inbound's script one second apart, ~`--rate` updates per second in all, like
Telegram does: an update is posted again (same update_id) until it gets a 200, and a person's next
update waits for that. Mid-load the app is killed with SIGKILL, then started again at once; once
the load is over and the outbox drained, the run counts:

- updates answered 200 but not stored (lost) and stored twice — both must be 0;
- replies sent twice: per (chat, text), the sendMessage calls the fake received beyond the rows the
  database holds as sent (a reply's text is the same for everyone, but the pair chat + text is one
  row per script step, so any surplus is a row sent twice), and the converse (rows "sent" the fake
  never received, which must be 0), and rows never delivered.

Prints one line per run and the total (replies sent twice per 1,000). `run_once()` is what
tests/hardening/test_crash.py calls. Not a test: nothing asserts here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backends import reset_postgres, reset_redis  # noqa: E402
from tests.fakes.telegram_api import TOKEN, FakeTelegram  # noqa: E402

SECRET = "crash-bench-secret"
WEBHOOK = "/bots/telegram/webhook"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_bench_crash"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
SCRIPT = [("text", "/start"), ("callback", "oui"), ("callback", "parler"), ("callback", "logement"),
          ("text", "merci, j'attends")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def update_body(update_id: int, chat_id: int, kind: str, value: str) -> bytes:
    user = {"id": chat_id, "is_bot": False, "first_name": "Alex", "language_code": "fr"}
    chat = {"id": chat_id, "type": "private", "first_name": "Alex"}
    if kind == "callback":
        body = {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": user, "chat_instance": "1", "data": value,
            "message": {"message_id": update_id, "date": 1763800000, "chat": chat, "text": "…"}}}
    else:
        body = {"update_id": update_id, "message": {"message_id": update_id, "date": 1763800000, "chat": chat,
                                                    "from": user, "text": value}}
    return json.dumps(body).encode()


class App:
    """The app as a subprocess (`python -m allervers.cli serve`), killable with SIGKILL."""

    def __init__(self, root: Path, env: dict, log_path: Path) -> None:
        self.root, self.env, self.log_path = root, env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "allervers.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.root, env={**self.env, "PYTHONPATH": str(self.root)}, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    async def wait_ready(self, timeout: float = 120.0) -> None:
        import aiohttp

        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the app exited; see {self.log_path}")
                try:
                    async with session.get(self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"the app did not start in {timeout} s; see {self.log_path}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class RunResult:
    updates: int = 0  # updates answered 200
    posts_failed: int = 0  # posts that got no 200 (server down, 5xx): posted again
    lost: int = 0
    stored_twice: int = 0
    replies: int = 0  # sendMessage calls the fake answered
    sent_twice: int = 0
    phantom: int = 0  # rows marked sent that the fake never received
    undelivered: int = 0  # outbound rows not sent once drained
    kills: int = 0
    killed_at: list = field(default_factory=list)
    restart_seconds: float = 0.0
    drain_seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def per_thousand(self) -> float:
        return 1000 * self.sent_twice / self.replies if self.replies else 0.0

    def line(self) -> str:
        killed = ", ".join(f"{t:.1f}" for t in self.killed_at)
        return (f"{self.updates} updates ({self.posts_failed} posts retried), killed at {killed} s, "
                f"up again in {self.restart_seconds:.1f} s (longest), drained in {self.drain_seconds:.1f} s: lost {self.lost}, "
                f"stored twice {self.stored_twice}; {self.replies} replies, sent twice {self.sent_twice} "
                f"({self.per_thousand:.2f} per 1,000), marked sent but not received {self.phantom}, "
                f"undelivered {self.undelivered}")


async def load(url: str, rate: float, duration: float, gap: float, first_chat: int, first_update: int,
               result: RunResult, acked: list) -> None:
    """People start at rate/len(SCRIPT) per second; each sends the script `gap` seconds apart."""
    import aiohttp

    people = max(1, int(rate * duration / len(SCRIPT)))
    starts_per_second = rate / len(SCRIPT)
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1
    update_ids = iter(range(first_update, first_update + people * len(SCRIPT)))
    plan = [[next(update_ids) for _ in SCRIPT] for _ in range(people)]

    async def person(index: int, session) -> None:
        chat_id = first_chat + index
        start = begin + index / starts_per_second
        for step, (kind, value) in enumerate(SCRIPT):
            delay = start + step * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            body = update_body(plan[index][step], chat_id, kind, value)
            while True:
                try:
                    async with session.post(url + WEBHOOK, data=body, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=15)) as response:
                        await response.read()
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                result.posts_failed += 1
                await asyncio.sleep(1.0)  # Telegram retries too (more slowly still)
            acked.append(plan[index][step])
            result.updates += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(person(i, session) for i in range(people)))


async def database_counts(database_url: str) -> tuple[Counter, Counter, Counter]:
    """(inbound external ids, sent rows per (chat, text), rows not sent)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            inbound = Counter(row[0] for row in await connection.execute(text(
                "SELECT external_id FROM messages WHERE direction = 'in' AND channel = 'telegram'")))
            outbound = (await connection.execute(text(
                "SELECT a.external_id, m.text, m.status FROM messages m "
                "JOIN conversations c ON c.id = m.conversation_id JOIN addresses a ON a.id = c.address_id "
                "WHERE m.direction = 'out'"))).all()
    finally:
        await engine.dispose()
    sent = Counter((chat, body) for chat, body, status in outbound if status in ("sent", "delivered", "read"))
    unsent = Counter(status for _, _, status in outbound if status not in ("sent", "delivered", "read"))
    return inbound, sent, unsent


async def wait_drained(database_url: str, fake: FakeTelegram, timeout: float = 90.0) -> float:
    started = time.monotonic()
    stable_since, last = time.monotonic(), -1
    while time.monotonic() - started < timeout:
        _, _, unsent = await database_counts(database_url)
        count = len(fake.sent_messages())
        if count != last:
            stable_since, last = time.monotonic(), count
        if not (unsent.get("queued") or unsent.get("sending")) and time.monotonic() - stable_since > 1.5:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started


def app_env(database_url: str, redis_url: str | None, workdir: Path, api_base: str, extra: dict | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLERVERS_")}
    env.update({
        "ALLERVERS_DATABASE_URL": database_url,
        "ALLERVERS_TELEGRAM_BOT_TOKEN": TOKEN,
        "ALLERVERS_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "ALLERVERS_TELEGRAM_API_BASE": api_base,
        "ALLERVERS_RIGHTS_BACKEND": "off",
        "ALLERVERS_DIRECTORY_AUTOLOAD": "false",
        "ALLERVERS_SECRET_KEY": "crash-bench",
        "ALLERVERS_MEDIA_DIR": str(workdir / "media"),
    })
    if redis_url:
        env["ALLERVERS_REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


async def run_once(database_url: str, redis_url: str | None, *, root: Path = ROOT, rate: float = 50.0,
                   duration: float = 24.0, gap: float = 1.0, kills: int = 1,
                   kill_between: tuple[float, float] = (0.25, 0.75),
                   workdir: Path | None = None, seed: int | None = None, extra_env: dict | None = None) -> RunResult:
    """One run on a fresh database (the caller wipes it): load, kill -9 mid-load (`kills` times, at
    random moments spread over `kill_between` of the duration), restart at once, drain, count."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="allervers-crash-"))
    randomness = random.Random(seed)
    result = RunResult()
    acked: list[int] = []
    with FakeTelegram() as fake:
        app = App(root, app_env(database_url, redis_url, workdir, fake.base_url, extra_env), workdir / "app.log")
        app.start()
        try:
            await app.wait_ready()
            loop = asyncio.get_running_loop()
            began = loop.time()
            generator = asyncio.create_task(load(app.url, rate, duration, gap, 500_000_001, 900_000_001,
                                                 result, acked))
            low, high = kill_between
            for kill in range(kills):
                slot = (high - low) / kills
                moment = began + duration * (low + slot * (kill + randomness.random()))
                await asyncio.sleep(max(0.0, moment - loop.time()))
                result.killed_at.append(loop.time() - began)
                app.kill()
                result.kills += 1
                restarted = loop.time()
                app.start()
                await app.wait_ready()
                result.restart_seconds = max(result.restart_seconds, loop.time() - restarted)
            await generator
            result.drain_seconds = await wait_drained(database_url, fake)
        finally:
            app.stop()
        inbound, sent_rows, unsent = await database_counts(database_url)
        received = Counter((str(c.chat_id), c.params.get("text")) for c in fake.sent_messages())
    result.lost = sum(1 for update_id in set(acked) if str(update_id) not in inbound)
    result.stored_twice = sum(n - 1 for n in inbound.values() if n > 1)
    result.replies = sum(received.values())
    result.sent_twice = sum(max(0, n - sent_rows.get(key, 0)) for key, n in received.items())
    result.phantom = sum(max(0, n - received.get(key, 0)) for key, n in sent_rows.items())
    result.undelivered = sum(unsent.values())
    result.details = {"unsent": dict(unsent), "log": str(workdir / "app.log")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres", "postgres+redis"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=50.0, help="updates per second offered")
    parser.add_argument("--duration", type=float, default=24.0, help="seconds of load per run")
    parser.add_argument("--kills", type=int, default=1, help="kill -9 this many times per run")
    parser.add_argument("--root", type=Path, default=ROOT, help="the code to run (a checkout)")
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="a database the benchmark may wipe (created if missing)")
    parser.add_argument("--redis-url", default=os.environ.get("ALLERVERS_BENCH_REDIS_URL", DEFAULT_REDIS),
                        help="a Redis database the benchmark may flush")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()

    print(f"Allervers crash benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {args.backend}, {args.runs} runs of "
          f"{args.duration:.0f} s at {args.rate:.0f} updates/s, code {args.root}, load average "
          f"{os.getloadavg()[0]:.1f}")
    total = RunResult()
    for run in range(args.runs):
        workdir = Path(tempfile.mkdtemp(prefix="allervers-crash-"))
        redis_url = None
        if args.backend == "sqlite":
            database_url = f"sqlite+aiosqlite:///{workdir}/crash.db"
        else:
            reset_postgres(args.postgres_url)
            database_url = args.postgres_url
            if args.backend == "postgres+redis":
                reset_redis(args.redis_url)
                redis_url = args.redis_url
        seed = None if args.seed is None else args.seed + run
        result = asyncio.run(run_once(database_url, redis_url, root=args.root, rate=args.rate,
                                      duration=args.duration, kills=args.kills, workdir=workdir, seed=seed))
        print(f"run {run + 1}: {result.line()}", flush=True)
        for name in ("kills", "updates", "posts_failed", "lost", "stored_twice", "replies", "sent_twice", "phantom",
                     "undelivered"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    print(f"\ntotal over {args.runs} runs ({total.kills} kill -9): {total.updates} updates, lost {total.lost}, stored twice "
          f"{total.stored_twice}; {total.replies} replies, sent twice {total.sent_twice} "
          f"({total.per_thousand:.2f} per 1,000), marked sent but not received {total.phantom}, "
          f"undelivered {total.undelivered}")


if __name__ == "__main__":
    main()
