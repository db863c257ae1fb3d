"""Several app processes behind a round-robin proxy, on PostgreSQL + Redis (+ an S3 server).

    python bench/bench_processes.py                  # every figure (needs PostgreSQL and Redis)
    python bench/bench_processes.py --only throughput

The app processes are real subprocesses (`python -m allervers.cli serve`, bench_crash.App) sharing
one PostgreSQL database, one Redis database and (when moto is installed) one S3 bucket on moto's
server; a small asyncio TCP proxy on loopback hands each new connection to the next live process
(round robin, skipping a dead one: what a Kubernetes Service or haproxy does). The fake Telegram
Bot API (tests/fakes/telegram_api.py) answers the replies. Figures:

- updates/s with 1 and 2 processes: closed loop (many people, each posting its next update as soon
  as the previous got its 200), through the proxy;
- p99 of the webhook's answer at 200 updates/s offered across 3 processes (open loop);
- person -> worker screen across 2 processes: the person's update posted to process B, the worker's
  inbox stream (SSE) open on process A: time until the event arrives, and until the timeline
  fragment fetched on A shows the message (what the inbox page's htmx does on that event);
- RSS per process, with the OpenFisca child (rights_backend=openfisca, once it is ready).

`Cluster` and `RoundRobinProxy` are what tests/scaleout/test_processes.py uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from bench_crash import (SCRIPT, SECRET, WEBHOOK, App, app_env, database_counts, reset_postgres,  # noqa: E402
                         reset_redis, update_body, wait_drained)
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_bench_processes"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"
HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}


class RoundRobinProxy:
    """TCP round robin on loopback: each accepted connection goes to the next backend that accepts."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(range(len(ports)))
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = [0] * len(ports)

    async def start(self) -> "RoundRobinProxy":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.ports)):
            index = next(self._next)
            try:
                upstream = await asyncio.open_connection("127.0.0.1", self.ports[index])
                self.connections[index] += 1
                break
            except OSError:
                continue  # that process is down: the next one
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await source.read(65536)
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class Cluster:
    """N app processes sharing PostgreSQL + Redis (+ S3), the fake Bot API and a proxy in front."""

    def __init__(self, n: int, database_url: str, redis_url: str, workdir: Path, fake: FakeTelegram,
                 extra_env: dict | None = None) -> None:
        env = app_env(database_url, redis_url, workdir, fake.base_url, {
            "ALLERVERS_SEED_DEMO": "true", "ALLERVERS_DELIVERY_BASE_BACKOFF": "0.05",
            "ALLERVERS_RETENTION_PURGE_INTERVAL": "0", **(extra_env or {})})
        self.database_url = database_url
        self.apps = [App(ROOT, env, workdir / f"app-{chr(97 + i)}.log") for i in range(n)]
        self.proxy = RoundRobinProxy([app.port for app in self.apps])

    async def start(self) -> "Cluster":
        for app in self.apps:  # together: migrations and the demo seed take turns (advisory lock)
            app.start()
        await asyncio.gather(*(app.wait_ready(timeout=240) for app in self.apps))
        await self.proxy.start()
        return self

    async def stop(self) -> None:
        await self.proxy.close()
        for app in self.apps:
            await asyncio.to_thread(app.stop)


async def post_until_200(session, url: str, body: bytes, stats: dict | None = None) -> float:
    """Like Telegram: posted again until a 200. Returns the latency of the successful post."""
    import aiohttp

    while True:
        started = time.perf_counter()
        try:
            async with session.post(url + WEBHOOK, data=body, headers=HEADERS,
                                    timeout=aiohttp.ClientTimeout(total=20)) as response:
                await response.read()
                if response.status == 200:
                    return time.perf_counter() - started
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass
        if stats is not None:
            stats["retried"] = stats.get("retried", 0) + 1
        await asyncio.sleep(0.5)


async def closed_loop(url: str, people: int, seconds: float, first_chat: int, first_update: int) -> dict:
    """`people` each post the script's next update as soon as the previous one got its 200."""
    import aiohttp

    counter = itertools.count(first_update)
    done, latencies = 0, []
    deadline = time.perf_counter() + seconds

    async def person(index: int, session) -> None:
        nonlocal done
        chat = first_chat + index
        step = 0
        while time.perf_counter() < deadline:
            kind, value = SCRIPT[step % len(SCRIPT)] if step < len(SCRIPT) else ("text", f"message {step}")
            latencies.append(await post_until_200(session, url, update_body(next(counter), chat, kind, value)))
            done += 1
            step += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        await asyncio.gather(*(person(i, session) for i in range(people)))
    elapsed = time.perf_counter() - started
    return {"updates": done, "seconds": elapsed, "per_second": done / elapsed, "p99": percentile(latencies, 99)}


async def open_loop(url: str, rate: float, seconds: float, first_chat: int, first_update: int,
                    acked: list | None = None, stats: dict | None = None, gap: float = 1.0) -> list[float]:
    """People start at rate/len(SCRIPT) per second and send the script `gap` apart: `rate` updates/s
    offered in all. Returns the latency of every update's 200."""
    import aiohttp

    people = max(1, int(rate * seconds / len(SCRIPT)))
    starts = rate / len(SCRIPT)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1
    latencies: list[float] = []

    async def person(index: int, session) -> None:
        chat = first_chat + index
        for step, (kind, value) in enumerate(SCRIPT):
            delay = begin + index / starts + step * gap - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            update_id = first_update + index * len(SCRIPT) + step
            latencies.append(await post_until_200(session, url, update_body(update_id, chat, kind, value), stats))
            if acked is not None:
                acked.append(update_id)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        await asyncio.gather(*(person(i, session) for i in range(people)))
    return latencies


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


# --- the worker's screen ---------------------------------------------------------------------------
async def worker_session(base_url: str, email: str = "camille@demo.allervers.fr",
                         password: str = "allervers-demo"):
    import re

    import httpx

    client = httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(20))
    page = await client.get("/inbox/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = await client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": token})
    if response.status_code != 303:
        raise RuntimeError(f"worker login failed: {response.status_code}")
    return client


class Stream:
    """An SSE stream read in the background: (arrival time, event, data)."""

    def __init__(self, client, path: str) -> None:
        self.client, self.path = client, path
        self.events: asyncio.Queue = asyncio.Queue()
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def _read(self) -> None:
        import httpx

        async with self.client.stream("GET", self.path, timeout=httpx.Timeout(10, read=None)) as response:
            event, data = "message", []
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    if line.strip() == ": connected":
                        self.connected.set()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "":
                    if data:
                        await self.events.put((time.perf_counter(), event, "\n".join(data)))
                    event, data = "message", []

    async def __aenter__(self) -> "Stream":
        self.task = asyncio.create_task(self._read())
        await asyncio.wait_for(self.connected.wait(), 20)
        return self

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task

    async def next(self, wanted, timeout: float = 10.0):
        deadline = time.perf_counter() + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no matching event on {self.path}")
            arrived, event, data = await asyncio.wait_for(self.events.get(), remaining)
            if wanted(event, data):
                return arrived, event, data

    def clear(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()


async def handed_off_person(url: str, chat: int, first_update: int) -> None:
    """A person who went through the script's hand-off steps (assigned to the demo worker)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for step, (kind, value) in enumerate(SCRIPT[:4]):
            await post_until_200(session, url, update_body(first_update + step, chat, kind, value))


async def conversation_of(database_url: str, chat: int) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(
                "SELECT c.id FROM conversations c JOIN addresses a ON a.id = c.address_id "
                "WHERE a.channel = 'telegram' AND a.external_id = :chat ORDER BY c.id DESC"), {"chat": str(chat)})).scalar()
    finally:
        await engine.dispose()


async def screen_latency(database_url: str, a_url: str, b_url: str, probes: int, chat: int,
                         first_update: int) -> dict:
    """The person writes to B; the worker's stream and page are on A."""
    import aiohttp

    await handed_off_person(b_url, chat, first_update)
    conversation = await conversation_of(database_url, chat)
    worker = await worker_session(a_url)
    events, screens = [], []
    try:
        async with Stream(worker, f"/inbox/stream?conversation={conversation}") as stream, \
                aiohttp.ClientSession() as session:
            await asyncio.sleep(0.5)
            for probe in range(probes):
                stream.clear()
                words = f"sonde {probe} pour l'écran"
                started = time.perf_counter()
                sending = asyncio.create_task(post_until_200(
                    session, b_url, update_body(first_update + 10 + probe, chat, "text", words)))
                arrived, _, _ = await stream.next(lambda e, d: e == "timeline" and d == str(conversation))
                page = await worker.get(f"/inbox/conversations/{conversation}/timeline")  # htmx, on sse:timeline
                shown = time.perf_counter()
                if "sonde {}".format(probe) not in page.text:
                    raise AssertionError("the message is not on the worker's page")
                await sending
                events.append(arrived - started)
                screens.append(shown - started)
                await asyncio.sleep(0.05)
    finally:
        await worker.aclose()
    return {"probes": probes, "event_p50": percentile(events, 50), "event_p99": percentile(events, 99),
            "screen_p50": percentile(screens, 50), "screen_p99": percentile(screens, 99),
            "screen_max": max(screens)}


# --- RSS -----------------------------------------------------------------------------------------
async def rss_with_openfisca(database_url: str, redis_url: str, workdir: Path, timeout: float = 600.0) -> dict:
    import httpx
    import psutil

    with FakeTelegram() as fake:
        env = app_env(database_url, redis_url, workdir, fake.base_url, {"ALLERVERS_RIGHTS_BACKEND": "openfisca"})
        app = App(ROOT, env, workdir / "app-rss.log")
        app.start()
        try:
            await app.wait_ready(timeout=240)
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=app.url) as client:
                while time.monotonic() - started < timeout:
                    body = (await client.get("/readyz")).json()
                    if body.get("rights") == "ready":
                        break
                    await asyncio.sleep(1)
            loaded = time.monotonic() - started
            process = psutil.Process(app.process.pid)
            children = process.children(recursive=True)
            main_rss = process.memory_info().rss
            child_rss = sum(child.memory_info().rss for child in children)
            return {"main_mb": main_rss / 2**20, "children_mb": child_rss / 2**20, "children": len(children),
                    "total_mb": (main_rss + child_rss) / 2**20, "rights_ready_seconds": loaded,
                    "rights": body.get("rights")}
        finally:
            app.stop()


# --- the figures ----------------------------------------------------------------------------------
async def throughput(n: int, database_url: str, redis_url: str, people: int, seconds: float) -> dict:
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    with FakeTelegram() as fake:
        cluster = await Cluster(n, database_url, redis_url, workdir, fake).start()
        try:
            await closed_loop(cluster.proxy.url, 8, 2.0, 700_000_001, 800_000_001)  # warm-up
            result = await closed_loop(cluster.proxy.url, people, seconds, 710_000_001, 810_000_001)
        finally:
            await cluster.stop()
    return result


async def latency_at(rate: float, n: int, database_url: str, redis_url: str, seconds: float) -> dict:
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    stats: dict = {}
    with FakeTelegram() as fake:
        cluster = await Cluster(n, database_url, redis_url, workdir, fake).start()
        try:
            latencies = await open_loop(cluster.proxy.url, rate, seconds, 720_000_001, 820_000_001, stats=stats)
        finally:
            await cluster.stop()
    return {"updates": len(latencies), "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "max": max(latencies), "retried": stats.get("retried", 0)}


async def screen(database_url: str, redis_url: str, probes: int) -> dict:
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    with FakeTelegram() as fake:
        cluster = await Cluster(2, database_url, redis_url, workdir, fake).start()
        try:
            a, b = cluster.apps
            return await screen_latency(database_url, a.url, b.url, probes, 730_000_001, 830_000_001)
        finally:
            await cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--redis-url", default=os.environ.get("ALLERVERS_BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--only", choices=["throughput", "latency", "screen", "rss"], action="append")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--people", type=int, default=48)
    parser.add_argument("--probes", type=int, default=100)
    args = parser.parse_args()
    only = set(args.only or ["throughput", "latency", "screen", "rss"])
    print(f"Allervers processes benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    db, redis = args.postgres_url, args.redis_url
    if "throughput" in only:
        one = asyncio.run(throughput(1, db, redis, args.people, args.seconds))
        print(f"1 process:   {one['per_second']:.0f} updates/s ({one['updates']} in {one['seconds']:.1f} s, "
              f"p99 {one['p99'] * 1000:.0f} ms)", flush=True)
        two = asyncio.run(throughput(2, db, redis, args.people, args.seconds))
        print(f"2 processes: {two['per_second']:.0f} updates/s ({two['updates']} in {two['seconds']:.1f} s, "
              f"p99 {two['p99'] * 1000:.0f} ms): {two['per_second'] / one['per_second']:.2f}x one", flush=True)
    if "latency" in only:
        at = asyncio.run(latency_at(200, 3, db, redis, args.seconds))
        print(f"3 processes at 200 updates/s offered: {at['updates']} updates, p50 {at['p50'] * 1000:.0f} ms, "
              f"p99 {at['p99'] * 1000:.0f} ms, max {at['max'] * 1000:.0f} ms, {at['retried']} posts retried",
              flush=True)
    if "screen" in only:
        seen = asyncio.run(screen(db, redis, args.probes))
        print(f"person -> worker screen across 2 processes ({seen['probes']} probes): event p50 "
              f"{seen['event_p50'] * 1000:.0f} ms, p99 {seen['event_p99'] * 1000:.0f} ms; page shows it p50 "
              f"{seen['screen_p50'] * 1000:.0f} ms, p99 {seen['screen_p99'] * 1000:.0f} ms "
              f"(max {seen['screen_max'] * 1000:.0f} ms)", flush=True)
    if "rss" in only:
        reset_postgres(db)
        reset_redis(redis)
        rss = asyncio.run(rss_with_openfisca(db, redis, Path(tempfile.mkdtemp(prefix="allervers-rss-"))))
        print(f"RSS: main process {rss['main_mb']:.0f} MB + {rss['children']} child(ren) {rss['children_mb']:.0f} MB "
              f"= {rss['total_mb']:.0f} MB (rights {rss['rights']} after {rss['rights_ready_seconds']:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
