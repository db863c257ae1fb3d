"""Benchmark of the inbound path, against a bare FastAPI endpoint in the same run. Prints figures.

    python bench/bench_inbound.py                       # SQLite, PostgreSQL (+ Redis) when reachable
    python bench/bench_inbound.py --backends sqlite --duration 5

The inbound path: Telegram webhook (HTTP POST) -> secret check -> parse (aiogram types) -> dedupe
(unique channel + update id) -> state -> flow step -> persist (one transaction) -> outbox rows, then
delivery to a fake Bot API on loopback (a separate process answering every method at once).

Every server is a separate process under uvicorn with uvloop + httptools: the bare endpoint, the app
(`allervers.app:create_app`, configured by ALLERVERS_* variables, demo seed on), the fake Bot API.
The load generator (aiohttp client, this process) plays many distinct people, each sending
/start, then button answers (consent, "talk to someone", a topic: a handoff to the demo worker),
then a free text relayed to the worker.

Two measurements per server:
- closed loop: `--concurrency` clients send as fast as answers come back, for `--duration` seconds
  -> requests (updates) per second;
- open loop: updates sent at a fixed `--rate` (100/s) for `--duration` seconds whatever the answers
  -> per-request latency measured from the scheduled send time (no coordinated omission): p50, p99.
CPU time of the app process per update (from /proc) is printed too: it varies less than
throughput when the machine is shared.

Bar of the project (issue 2): >= 150 updates/s per process, p99 < 250 ms at 100/s offered; goal 400.
Not a test: nothing asserts, it prints a table.
"""

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TOKEN = "123456:BENCH-fake-telegram-token"
SECRET = "bench-secret"
WEBHOOK = "/bots/telegram/webhook"
BARE = "/bare"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"
CLK_TCK = os.sysconf("SC_CLK_TCK")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.backends import reset_postgres, reset_redis  # noqa: E402


# --- the servers (imported by uvicorn in their own processes) ----------------------------------
def bare_app():
    """The bare FastAPI endpoint: reads the body, answers a small JSON."""
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post(BARE)
    async def bare(request: Request):
        await request.body()
        return {"ok": True}

    return app


def fake_bot_api():
    """A minimal fake Telegram Bot API: answers every method at once, counts calls (GET /count)."""
    counts: dict[str, int] = {}
    message = json.dumps({"ok": True, "result": {"message_id": 1, "date": 1763800000,
                                                 "chat": {"id": 1, "type": "private"}, "text": "."}}).encode()
    true = b'{"ok":true,"result":true}'

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        while True:  # drain the request body
            event = await receive()
            if not event.get("more_body"):
                break
        if path == "/count":
            body = json.dumps(counts).encode()
        else:
            method = path.rsplit("/", 1)[-1]
            counts[method] = counts.get(method, 0) + 1
            body = message if method.startswith("send") else true
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


# --- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, name: str, target: str, env: dict | None = None, workdir: Path | None = None,
                 profile: Path | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open((workdir or Path(tempfile.gettempdir())) / f"bench-{name}.log", "wb")
        prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
        command = prefix + ["-m", "uvicorn", "--factory", target, "--app-dir", str(BENCH),
                            "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop",
                            "--http", "httptools", "--log-level", "warning", "--no-access-log"]
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(command, cwd=workdir or ROOT, env=full_env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.log.name}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not start in {timeout} s; see {self.log.name}")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# --- the people ------------------------------------------------------------------------------------
_update_ids = itertools.count(1)


def update(chat_id: int, text: str | None = None, callback: str | None = None) -> bytes:
    update_id = next(_update_ids)
    user = {"id": chat_id, "is_bot": False, "first_name": "Alex", "language_code": "fr"}
    chat = {"id": chat_id, "type": "private", "first_name": "Alex"}
    if callback is not None:
        body = {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": user, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1763800000, "chat": chat, "text": "…"}}}
    else:
        body = {"update_id": update_id, "message": {"message_id": update_id, "date": 1763800000, "chat": chat,
                                                    "from": user, "text": text}}
    return json.dumps(body).encode()


# One person: /start (welcome + consent), consent, "talk to someone", a topic (handoff), a free text.
SCRIPT = [("text", "/start"), ("callback", "oui"), ("callback", "parler"), ("callback", "logement"),
          ("text", "merci, j'attends")]


def step(chat_id: int, index: int) -> bytes:
    kind, value = SCRIPT[index]
    return update(chat_id, text=value) if kind == "text" else update(chat_id, callback=value)


_people = itertools.count(10_000_001)


# --- load ------------------------------------------------------------------------------------------
@dataclass
class Result:
    done: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def post(session, url: str, body: bytes, headers: dict) -> bool:
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status == 200
    except Exception:
        return False


HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}


async def closed_loop(url: str, concurrency: int, duration: float) -> Result:
    """`concurrency` clients, each a succession of people going through the script, for `duration` s."""
    import aiohttp

    result = Result()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        stop_at = start + duration

        async def client() -> None:
            while loop.time() < stop_at:
                chat_id = next(_people)
                for index in range(len(SCRIPT)):
                    if loop.time() >= stop_at:
                        return
                    ok = await post(session, url, step(chat_id, index), HEADERS)
                    result.done += ok
                    result.errors += not ok

        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.seconds = loop.time() - start
    return result


async def open_loop(url: str, rate: float, duration: float) -> Result:
    """Send at a fixed rate, whatever the answers; latency from the scheduled time of each update.

    People take turns: update i goes to person i % P at step i // P, with P = 2 s of updates, so one
    person's updates are 2 s apart (in order, never overlapping)."""
    import aiohttp

    total = int(rate * duration)
    people = max(1, int(rate * 2))
    chat_ids = [next(_people) for _ in range(people)]
    result = Result()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        tasks = []

        async def one(i: int, scheduled: float) -> None:
            chat_id = chat_ids[i % people]
            ok = await post(session, url, step(chat_id, (i // people) % len(SCRIPT)), HEADERS)
            result.latencies.append(loop.time() - scheduled)
            result.done += ok
            result.errors += not ok

        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        result.seconds = loop.time() - start
    return result


def measure(server: Server, path: str, args, warmup: bool = True) -> tuple[Result, Result]:
    url = server.url + path
    if warmup:
        asyncio.run(closed_loop(url, args.concurrency, args.warmup))
    cpu = server.cpu_seconds()
    closed = asyncio.run(closed_loop(url, args.concurrency, args.duration))
    closed.cpu = server.cpu_seconds() - cpu
    settle(server)
    cpu = server.cpu_seconds()
    opened = asyncio.run(open_loop(url, args.rate, args.duration))
    opened.cpu = server.cpu_seconds() - cpu
    return closed, opened


def settle(server: Server, idle_cpu: float = 0.02, timeout: float = 120.0) -> float:
    """Wait until the server is idle (outbox drained): its CPU stops moving. Returns the seconds waited."""
    started = time.monotonic()
    last = server.cpu_seconds()
    while time.monotonic() - started < timeout:
        time.sleep(0.5)
        now = server.cpu_seconds()
        if now - last < idle_cpu:
            return time.monotonic() - started
        last = now
    return time.monotonic() - started


def sent_counts(fake: Server) -> dict:
    import httpx

    return httpx.get(fake.url + "/count", timeout=5).json()


# --- backends ---------------------------------------------------------------------------------------
def postgres_reachable(url: str) -> bool:
    """Wiped (created when missing) and ready, or not reachable: then the runs on it are skipped."""
    try:
        reset_postgres(url)
        return True
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        print(f"PostgreSQL not reachable ({type(error).__name__}); skipped")
        return False


def redis_reachable(url: str) -> bool:
    try:
        reset_redis(url)
        return True
    except Exception:  # noqa: BLE001
        return False


def app_env(database_url: str, redis_url: str | None, workdir: Path, fake: Server) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLERVERS_")}
    env.update({
        "ALLERVERS_DATABASE_URL": database_url,
        "ALLERVERS_TELEGRAM_BOT_TOKEN": TOKEN,
        "ALLERVERS_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "ALLERVERS_TELEGRAM_API_BASE": fake.url,
        "ALLERVERS_RIGHTS_BACKEND": "off",
        "ALLERVERS_DIRECTORY_AUTOLOAD": "false",
        "ALLERVERS_SECRET_KEY": "bench",
        "ALLERVERS_MEDIA_DIR": str(workdir / "media"),
    })
    if redis_url:
        env["ALLERVERS_REDIS_URL"] = redis_url
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres,postgres+redis")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop updates per second")
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES),
                        help="a database the benchmark may wipe (created if missing)")
    parser.add_argument("--redis-url", default=os.environ.get("ALLERVERS_BENCH_REDIS_URL", DEFAULT_REDIS),
                        help="a Redis database the benchmark may flush")
    parser.add_argument("--profile", metavar="DIR", help="run the app under cProfile, write DIR/<backend>.prof")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="allervers-bench-"))
    print(f"Allervers inbound benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} — Python {sys.version.split()[0]}")
    print(f"closed loop: {args.concurrency} clients x {args.duration:.0f} s; open loop: {args.rate:.0f}/s x "
          f"{args.duration:.0f} s; logs in {workdir}\n")
    rows = []
    fake = Server("fake-bot-api", "bench_inbound:fake_bot_api", workdir=workdir)
    bare = Server("bare", "bench_inbound:bare_app", workdir=workdir)
    try:
        fake.wait_ready("/count")
        bare.wait_ready("/docs")
        bare_closed, bare_open = measure(bare, BARE, args)
        bare.stop()
        print(f"bare FastAPI: {bare_closed.rate:,.0f} req/s closed loop "
              f"({bare_closed.cpu / max(1, bare_closed.done) * 1000:.2f} ms CPU/request); "
              f"open loop {args.rate:.0f}/s p50 {bare_open.percentile(.5):.1f} ms, "
              f"p99 {bare_open.percentile(.99):.1f} ms")
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend == "sqlite":
                database_url, redis_url = f"sqlite+aiosqlite:///{workdir}/bench.db", None
            elif backend.startswith("postgres"):
                if not postgres_reachable(args.postgres_url):
                    print(f"{backend}: PostgreSQL not reachable at {args.postgres_url}; skipped")
                    continue
                database_url, redis_url = args.postgres_url, None
                if backend == "postgres+redis":
                    if not redis_reachable(args.redis_url):
                        print(f"{backend}: Redis not reachable at {args.redis_url}; skipped")
                        continue
                    redis_url = args.redis_url
            else:
                raise SystemExit(f"unknown backend {backend}")
            profile = Path(args.profile) / f"{backend}.prof" if args.profile else None
            if profile:
                profile.parent.mkdir(parents=True, exist_ok=True)
            before = sent_counts(fake)
            app = Server(f"app-{backend}", "allervers.app:create_app",
                         env=app_env(database_url, redis_url, workdir, fake), workdir=workdir, profile=profile)
            try:
                app.wait_ready("/healthz")
                settle(app)
                closed, opened = measure(app, WEBHOOK, args)
                drain = settle(app)
                after = sent_counts(fake)
            finally:
                app.stop()
            sends = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            updates = closed.done + opened.done
            print(f"{backend}: {closed.rate:,.0f} updates/s closed loop ({closed.errors} errors), "
                  f"{closed.cpu / max(1, closed.done) * 1000:.2f} ms app CPU/update; open loop "
                  f"{opened.rate:,.0f}/s p50 {opened.percentile(.5):.1f} ms p99 {opened.percentile(.99):.1f} ms "
                  f"max {max(opened.latencies) * 1000:.0f} ms ({opened.errors} errors); outbox drained "
                  f"{drain:.1f} s after the load; Bot API calls {sends} for {updates} (+warm-up) updates")
            rows.append((backend, bare_closed.rate, closed.rate, closed.rate / max(bare_closed.rate, 1e-9),
                         opened.percentile(.5), opened.percentile(.99),
                         closed.cpu / max(1, closed.done) * 1000))
    finally:
        bare.stop()
        fake.stop()
    print()
    header = ("backend", "bare req/s", "inbound upd/s", "ratio", f"p50 @{args.rate:.0f}/s", f"p99 @{args.rate:.0f}/s",
              "app CPU/upd")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for backend, bare_rate, rate, ratio, p50, p99, cpu in rows:
        print(f"| {backend} | {bare_rate:,.0f} | {rate:,.0f} | {ratio:.3f} | {p50:.1f} ms | {p99:.1f} ms | "
              f"{cpu:.2f} ms |")
    print("\nbar: >= 150 updates/s per process and p99 < 250 ms at 100/s offered; goal 400 updates/s")
    if not args.profile:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
