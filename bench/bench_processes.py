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

from bench_crash import (SCRIPT, SECRET, WEBHOOK, App, app_env, database_counts, free_port, reset_postgres,  # noqa: E402
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


class CpuLimit:
    """A pod's `resources.limits.cpu` on this machine: a cgroup (v1, cpu controller) with a CFS
    quota of `cores` per period, the app process put in it before it starts its children (the
    OpenFisca child inherits it). Needs root and /sys/fs/cgroup/cpu writable; removed by close()."""

    ROOT = Path("/sys/fs/cgroup/cpu")
    PERIOD_US = 100_000  # Kubernetes' period (the kubelet's default cpu.cfs_period_us)

    def __init__(self, name: str, cores: float) -> None:
        self.path = self.ROOT / name
        self.cores = cores
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
        (self.path / "cpu.cfs_quota_us").write_text(str(int(cores * self.PERIOD_US)))

    @classmethod
    def available(cls) -> bool:
        return (cls.ROOT / "cgroup.procs").exists() and os.access(cls.ROOT, os.W_OK)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def throttled(self) -> dict:
        """cpu.stat: periods, periods throttled, time throttled (ns)."""
        stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        return {key: int(value) for key, value in stat.items()}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            for pid in (self.path / "cgroup.procs").read_text().split():  # (a process left over)
                with contextlib.suppress(OSError):
                    (self.ROOT / "cgroup.procs").write_text(pid)
            self.path.rmdir()


class Cluster:
    """N app processes sharing PostgreSQL + Redis (+ S3), the fake Bot API and a proxy in front.
    `cpu_limit`: each process (with its children) in its own cgroup of that many cores (CpuLimit)."""

    def __init__(self, n: int, database_url: str, redis_url: str, workdir: Path, fake,
                 extra_env: dict | None = None, cpu_limit: float | None = None) -> None:
        env = app_env(database_url, redis_url, workdir, fake.base_url, {
            "ALLERVERS_SEED_DEMO": "true", "ALLERVERS_DELIVERY_BASE_BACKOFF": "0.05",
            "ALLERVERS_RETENTION_PURGE_INTERVAL": "0", **(extra_env or {})})
        self.database_url = database_url
        self.apps = [App(ROOT, env, workdir / f"app-{chr(97 + i)}.log") for i in range(n)]
        self.proxy = RoundRobinProxy([app.port for app in self.apps])
        self.cpu_limit = cpu_limit
        self.limits: list[CpuLimit] = []

    async def start(self, proxy: bool = True) -> "Cluster":
        for app in self.apps:  # together: migrations and the demo seed take turns (advisory lock)
            app.start()
            if self.cpu_limit:
                limit = CpuLimit(f"allervers-bench-{os.getpid()}-{app.port}", self.cpu_limit)
                limit.add(app.process.pid)
                self.limits.append(limit)
        await asyncio.gather(*(app.wait_ready(timeout=240) for app in self.apps))
        if proxy:
            await self.proxy.start()
        return self

    def throttled(self) -> dict:
        """Summed over the processes' cgroups (cpu.stat)."""
        total: dict = {}
        for limit in self.limits:
            for key, value in limit.throttled().items():
                total[key] = total.get(key, 0) + value
        return total

    async def stop(self) -> None:
        await self.proxy.close()
        await asyncio.gather(*(asyncio.to_thread(app.stop) for app in self.apps))  # SIGTERM to all at once
        for limit in self.limits:
            limit.close()


async def post_until_200(session, url: str, body: bytes, stats: dict | None = None, path: str = WEBHOOK,
                        headers: dict | None = None) -> float:
    """Like the platforms: posted again (0.5 s later) until a 200. Returns the latency of the
    successful post. Telegram's webhook and headers unless told."""
    import aiohttp

    while True:
        started = time.perf_counter()
        try:
            async with session.post(url + path, data=body, headers=headers or HEADERS,
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


# --- cheap non-app side: haproxy, wrk, CPU from /proc ---------------------------------------------
# On 2 cores, a Python load generator, proxy and fake Bot API take a core of their own (the first
# figures were 1.01x for that reason). The throughput figures use C programs from Debian instead
# (`apt-get install haproxy wrk`): haproxy balances round robin over the app processes and a
# second haproxy plays the Bot API; wrk posts the updates. /proc says what each one cost.

# The Bot API's documented answer to sendMessage: {"ok": true, "result": <the sent Message>} (a
# Message has message_id, date and chat). Every method gets it: the app only reads message_id
# (sendMessage, sendVenue) or "ok" (the edits after a button press, which also accept a Message).
BOT_API_ANSWER = ('{\\"ok\\":true,\\"result\\":{\\"message_id\\":%rt,\\"date\\":%[date],'
                  '\\"chat\\":{\\"id\\":1,\\"type\\":\\"private\\"},\\"text\\":\\"ok\\"}}')


# The Cloud API's answer to POST /<phone number id>/messages (the app reads messages[0].id).
GRAPH_API_ANSWER = ('{\\"messaging_product\\":\\"whatsapp\\",\\"contacts\\":[{\\"input\\":\\"x\\",'
                    '\\"wa_id\\":\\"x\\"}],\\"messages\\":[{\\"id\\":\\"wamid.OUT%rt\\"}]}')


HAPROXY_COMMON = """global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
"""  # one thread, HTTP, the same time-outs for both


class Haproxy:
    """Debian's haproxy in the foreground (-db), one thread. `balancer(ports)`: round robin over the
    app processes (per request; a dead process is skipped: connection retried on the next one, and
    health checks on /livez). `bot_api()`: answers every request at once with BOT_API_ANSWER."""

    def __init__(self, config: str, workdir: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = workdir / f"haproxy-{name}.cfg"
        self.path.write_text(config.replace("@PORT@", str(self.port)))
        self.process = None

    @staticmethod
    def available() -> bool:
        import shutil

        return shutil.which("haproxy") is not None

    @classmethod
    def balancer(cls, ports: list[int], workdir: Path) -> "Haproxy":
        servers = "\n".join(f"    server app{i} 127.0.0.1:{port} check inter 500ms fall 1 rise 1"
                            for i, port in enumerate(ports))
        return cls(HAPROXY_COMMON + f"""    retries 3
    option redispatch 1
frontend web
    bind 127.0.0.1:@PORT@
    default_backend apps
backend apps
    balance roundrobin
    option httpchk GET /livez
{servers}
""", workdir, "balancer")

    @classmethod
    def bot_api(cls, workdir: Path) -> "Haproxy":
        return cls(HAPROXY_COMMON + f"""frontend botapi
    bind 127.0.0.1:@PORT@
    http-request return status 200 content-type application/json lf-string "{BOT_API_ANSWER}"
""", workdir, "botapi")

    @classmethod
    def graph_api(cls, workdir: Path) -> "Haproxy":
        """The WhatsApp Cloud API's /<number>/messages: answers every request at once with a message
        id, and logs each one's arrival (epoch ms) with the start of its body (whom it is for) to
        `self.log_path`: when each reply reached the platform."""
        proxy = cls(HAPROXY_COMMON + f"""frontend graph
    bind 127.0.0.1:@PORT@
    log stdout format raw local0
    option http-buffer-request
    http-request capture req.body len 120
    log-format "%[date(0,ms)] %[capture.req.hdr(0)]"
    http-request return status 200 content-type application/json lf-string "{GRAPH_API_ANSWER}"
""", workdir, "graph")
        proxy.log_path = workdir / "graph-arrivals.log"
        return proxy

    def arrivals(self) -> dict[str, list[float]]:
        """Per recipient ("to"), the arrival times (epoch seconds) of the requests for them, in order."""
        import re

        found: dict[str, list[float]] = {}
        for line in self.log_path.read_text(errors="replace").splitlines():
            at, _, body = line.partition(" ")
            to = re.search(r'"to":"(\d+)"', body)
            if at.isdigit() and to:
                found.setdefault(to.group(1), []).append(int(at) / 1000)
        return {to: sorted(times) for to, times in found.items()}

    def start(self) -> "Haproxy":
        import socket
        import subprocess

        log_path = getattr(self, "log_path", None)
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(["haproxy", "-f", str(self.path), "-db"], stdout=out,
                                        stderr=subprocess.DEVNULL)
        if log_path:
            out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        raise RuntimeError("haproxy did not start")

    @property
    def base_url(self) -> str:  # as FakeTelegram's, for app_env
        return self.url

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)

    def __enter__(self) -> "Haproxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


WRK_SCRIPT = r"""
-- Telegram updates for wrk: every request a distinct update_id; people take turns (person n%people
-- posts its next update), each sends the five updates of the script then free texts, `per_person`
-- updates in all, and is followed by a new person (a new chat id).
local first_chat, first_update, people, per_person, secret
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  first_chat, first_update = tonumber(args[1]), tonumber(args[2])
  people, per_person, secret = tonumber(args[3]), tonumber(args[4]), args[5]
  thread_id = tonumber(wrk.thread:get("id")) or 0
end

local script = {{"text", "/start"}, {"callback", "oui"}, {"callback", "parler"}, {"callback", "logement"},
                {"text", "merci, j'attends"}}

function request()
  local n = counter
  counter = counter + 1
  local person = n % people
  local turn = math.floor(n / people)
  local generation = math.floor(turn / per_person)
  local step = turn % per_person
  local chat = first_chat + thread_id * 10000000 + generation * people + person
  local update_id = first_update + thread_id * 100000000 + n
  local user = string.format('{"id":%d,"is_bot":false,"first_name":"Alex","language_code":"fr"}', chat)
  local chatj = string.format('{"id":%d,"type":"private","first_name":"Alex"}', chat)
  local body
  local kind, value = "text", "message " .. step
  if step < #script then kind, value = script[step + 1][1], script[step + 1][2] end
  if kind == "callback" then
    body = string.format('{"update_id":%d,"callback_query":{"id":"cb%d","from":%s,"chat_instance":"1","data":"%s",' ..
      '"message":{"message_id":%d,"date":1763800000,"chat":%s,"text":"..."}}}', update_id, update_id, user, value,
      update_id, chatj)
  else
    body = string.format('{"update_id":%d,"message":{"message_id":%d,"date":1763800000,"chat":%s,"from":%s,' ..
      '"text":"%s"}}', update_id, update_id, chatj, user, value)
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["X-Telegram-Bot-Api-Secret-Token"] = secret}, body)
end

function done(summary, latency, requests)
  io.write(string.format('WRK {"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class CpuMeter:
    """CPU seconds per component between two snapshots, from /proc (psutil): the app processes and
    their children, this database's PostgreSQL backends, PostgreSQL's shared processes (WAL writer,
    checkpointer...), redis-server, each haproxy, and the whole machine (what other jobs used shows
    as the difference)."""

    POSTGRES_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher",
                       "logical replication launcher", "stats", "archiver")

    def __init__(self, apps: list, database: str, haproxies: dict[str, "Haproxy"]) -> None:
        self.apps, self.database, self.haproxies = apps, database, haproxies

    def _processes(self) -> dict[str, list]:
        import psutil

        found: dict[str, list] = {"app processes": [], "PostgreSQL (this database)": [],
                                  "PostgreSQL (shared: WAL writer...)": [], "Redis": []}
        for app in self.apps:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(app.process.pid)
                found["app processes"] += [parent, *parent.children(recursive=True)]
        for process in psutil.process_iter(["name", "cmdline"]):
            name, cmdline = process.info["name"] or "", " ".join(process.info["cmdline"] or ())
            if name == "postgres" or cmdline.startswith("postgres"):
                if f" {self.database} " in f" {cmdline} ":
                    found["PostgreSQL (this database)"].append(process)
                elif any(word in cmdline for word in self.POSTGRES_SHARED) or " -D " in cmdline:
                    found["PostgreSQL (shared: WAL writer...)"].append(process)
            elif name == "redis-server":
                found["Redis"].append(process)
        for label, proxy in self.haproxies.items():
            with contextlib.suppress(psutil.Error):
                found[label] = [psutil.Process(proxy.process.pid)]
        return found

    def snapshot(self) -> dict:
        import psutil

        per_pid: dict[str, dict[int, float]] = {}
        for label, processes in self._processes().items():
            per_pid[label] = {}
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    per_pid[label][process.pid] = cpu_seconds(process)
        machine = psutil.cpu_times()
        return {"pids": per_pid, "machine_busy": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
                "at": time.monotonic()}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        """Seconds of CPU per component (a process born in between counts from zero)."""
        spent = {label: sum(now - before["pids"].get(label, {}).get(pid, 0.0) for pid, now in pids.items())
                 for label, pids in after["pids"].items()}
        spent["machine (all jobs)"] = after["machine_busy"] - before["machine_busy"]
        spent["wall"] = after["at"] - before["at"]
        return spent

    @staticmethod
    def others(spent: dict) -> float:
        """What the machine spent on jobs that are not this benchmark's (other sessions' tests)."""
        ours = sum(seconds for label, seconds in spent.items() if label not in ("wall", "machine (all jobs)"))
        return spent["machine (all jobs)"] - ours


async def wrk_closed_loop(url: str, connections: int, seconds: float, first_chat: int, first_update: int,
                          people: int, per_person: int, workdir: Path) -> dict:
    """wrk (one thread, `connections` connections, each posting its next update when the previous
    one is answered). Returns its summary and its own CPU (rusage)."""
    import json
    import subprocess

    script = workdir / "updates.lua"
    script.write_text(WRK_SCRIPT)
    process = await asyncio.to_thread(
        subprocess.Popen, ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "20s",
                           "-s", str(script), url + WEBHOOK, "--", str(first_chat), str(first_update), str(people),
                           str(per_person), SECRET], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, _, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
    output = process.stdout.read().decode()
    process.returncode = 0
    line = next((line for line in output.splitlines() if line.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk said: {output}")
    summary = json.loads(line[4:])
    seconds_run = summary["duration_us"] / 1e6
    ok = summary["requests"] - summary["status_errors"]
    return {"updates": ok, "requests": summary["requests"], "seconds": seconds_run, "per_second": ok / seconds_run,
            "p50": summary["p50_us"] / 1e6, "p99": summary["p99_us"] / 1e6, "max": summary["max_us"] / 1e6,
            "errors": {k: summary[k] for k in ("status_errors", "connect", "read", "write", "timeout")},
            "cpu": usage.ru_utime + usage.ru_stime}


async def py_spy_top(pid: int, seconds: float, path: Path) -> asyncio.subprocess.Process | None:
    """py-spy (from PyPI) sampling one app process for `seconds` (raw stacks to `path`)."""
    import shutil

    spy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                     if (Path(sys.executable).parent / "py-spy").exists() else None)
    if spy is None:
        print("py-spy not installed (pip install py-spy): no profile", flush=True)
        return None
    return await asyncio.create_subprocess_exec(spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                                "--rate", "97", "--format", "raw", "--output", str(path), "--nonblocking",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


def profile_summary(path: Path, top: int = 25) -> str:
    """Own time and cumulative time per function of py-spy's raw stacks."""
    from collections import Counter

    own, total, samples = Counter(), Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].rsplit("/", 1)[-1] for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples; own time:"]
    lines += [f"  {100 * n / samples:5.1f} %  {frame}" for frame, n in own.most_common(top)]
    lines += ["cumulative:"]
    lines += [f"  {100 * n / samples:5.1f} %  {frame}" for frame, n in total.most_common(top * 2)]
    return "\n".join(lines)


# --- the figures ----------------------------------------------------------------------------------
def database_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?")[0]


def pg_counters(database_url: str) -> dict:
    """The database's counters so far (pg_stat_database): transactions committed (per update, they
    tell how large the intake's batches were: conversations/intake.py writes one commit per batch,
    plus the outbox's recorded outcomes) and sessions established (connections opened: the pools'
    churn); this read's own session counts in the latter (one per read)."""
    import asyncpg

    async def read() -> dict:
        url = database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            row = await connection.fetchrow("SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database"
                                            " WHERE datname = $1", database_name(database_url))
            return {"commits": row["xact_commit"], "rollbacks": row["xact_rollback"], "sessions": row["sessions"]}
        finally:
            await connection.close()

    return asyncio.run(read())


class ConnectionSampler:
    """pg_stat_activity sampled every `every` seconds during a run: the backends connected to the
    database (most, mean), and how many were running a statement or in a transaction at once."""

    def __init__(self, database_url: str, every: float = 0.2) -> None:
        self.database_url, self.every = database_url, every
        self.samples: list[tuple[int, int]] = []  # (connected, busy)
        self.task: asyncio.Task | None = None

    async def _run(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            while True:
                row = await connection.fetchrow(
                    "SELECT count(*) AS connected, count(*) FILTER (WHERE state <> 'idle') AS busy "
                    "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database_name(self.database_url))
                self.samples.append((row["connected"], row["busy"]))
                await asyncio.sleep(self.every)
        finally:
            await connection.close()

    def start(self) -> "ConnectionSampler":
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> dict:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        if not self.samples:
            return {}
        connected = [c for c, _ in self.samples]
        busy = [b for _, b in self.samples]
        return {"connected_max": max(connected), "connected_mean": statistics.mean(connected),
                "busy_max": max(busy), "busy_p90": percentile(busy, 90)}


def cpu_table(spent: dict, updates: int) -> str:
    rows = [f"    {'component':<36} {'CPU s':>7} {'ms/update':>10} {'cores':>6}"]
    spent = {**spent, "other jobs (machine - the above)": CpuMeter.others(spent)}
    for label, seconds in spent.items():
        if label == "wall":
            continue
        rows.append(f"    {label:<36} {seconds:7.2f} {1000 * seconds / max(updates, 1):10.3f} "
                    f"{seconds / spent['wall']:6.2f}")
    return "\n".join(rows)


async def throughput(n: int, database_url: str, redis_url: str, connections: int, seconds: float,
                     people: int, per_person: int, profile: Path | None = None, cpu_limit: float | None = None,
                     extra_env: dict | None = None) -> dict:
    """Closed loop through haproxy with wrk, the Bot API played by haproxy; CPU per component.
    `cpu_limit`: each app process in a cgroup of that many cores (a pod's CPU limit)."""
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    with Haproxy.bot_api(workdir) as bot_api:
        cluster = Cluster(n, database_url, redis_url, workdir, bot_api, extra_env, cpu_limit=cpu_limit)
        await cluster.start(proxy=False)
        balancer = Haproxy.balancer([app.port for app in cluster.apps], workdir).start()
        try:
            await asyncio.sleep(1.5)  # health checks up
            await wrk_closed_loop(balancer.url, 8, 3, 700_000_001, 800_000_001, 64, per_person, workdir)  # warm-up
            await asyncio.sleep(1)
            meter = CpuMeter(cluster.apps, database_name(database_url), {"haproxy (balancer)": balancer,
                                                                         "haproxy (Bot API)": bot_api})
            spy = None
            if profile is not None:
                spy = await py_spy_top(cluster.apps[0].process.pid, seconds - 1, profile)
            bench_before = time.process_time()
            counters_before = await asyncio.to_thread(pg_counters, database_url)
            throttled_before = cluster.throttled()
            sampler = ConnectionSampler(database_url).start()
            before = meter.snapshot()
            result = await wrk_closed_loop(balancer.url, connections, seconds, 710_000_001, 810_000_001, people,
                                           per_person, workdir)
            after = meter.snapshot()
            result["connections"] = await sampler.stop()
            throttled_after = cluster.throttled()
            result["throttled"] = {key: value - throttled_before.get(key, 0) for key, value in throttled_after.items()}
            # (the stats collector lags by up to its flush interval: read after a short pause)
            await asyncio.sleep(1.2)
            counters = await asyncio.to_thread(pg_counters, database_url)
            result["commits"] = counters["commits"] - counters_before["commits"]
            result["rollbacks"] = counters["rollbacks"] - counters_before["rollbacks"]  # (each checkout's ping is one)
            # less the sampler's connection and the two reads' own
            result["sessions_opened"] = counters["sessions"] - counters_before["sessions"] - 2
            spent = CpuMeter.delta(before, after)
            spent["wrk (load generator)"] = result["cpu"]
            spent["this script (idle meanwhile)"] = time.process_time() - bench_before
            result["cpu_spent"] = spent
            if spy is not None:
                await spy.wait()
        finally:
            balancer.stop()
            await cluster.stop()
    return result


WA_SECRET = "bench-whatsapp-app-secret"
WA_WEBHOOK = "/bots/whatsapp/webhook"


def whatsapp_numbers(count: int) -> list[str]:
    """The phone number ids of `count` services (each its own number: its own send budget)."""
    return [str(100_000_000_000_001 + index) for index in range(count)]


def whatsapp_env(graph_url: str, numbers: list[str]) -> dict:
    return {"ALLERVERS_WHATSAPP_ACCESS_TOKEN": "bench-access-token", "ALLERVERS_WHATSAPP_APP_SECRET": WA_SECRET,
            "ALLERVERS_WHATSAPP_VERIFY_TOKEN": "bench-verify", "ALLERVERS_WHATSAPP_GRAPH_API_BASE": graph_url,
            "ALLERVERS_WHATSAPP_PHONE_NUMBER_ID": numbers[0]}


def whatsapp_body(message_id: str, person: str, number: str, kind: str, value: str) -> tuple[bytes, dict]:
    """A Cloud API webhook with one message (a text, or a button reply for SCRIPT's callbacks) to
    `number`, and its headers (the X-Hub-Signature-256 of the app secret)."""
    import hashlib
    import hmac
    import json

    message = {"from": person, "id": message_id, "timestamp": str(int(time.time()))}
    if kind == "callback":
        message.update(type="interactive", interactive={"type": "button_reply",
                                                        "button_reply": {"id": value, "title": value}})
    else:
        message.update(type="text", text={"body": value})
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33199" + number[-6:], "phone_number_id": number},
            "contacts": [{"profile": {"name": "Alex"}, "wa_id": person}], "messages": [message]}}]}]}).encode()
    signature = hmac.new(WA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}


async def open_loop_whatsapp(url: str, rate: float, seconds: float, first_person: int, numbers: list[str],
                             scheduled: dict, stats: dict, gap: float = 1.0) -> list[float]:
    """As open_loop, on WhatsApp: person i writes to numbers[i % len(numbers)] (the services of a
    network, each its own number). Latency from each update's scheduled time to its 200 (posted
    again after 0.5 s until then, as the platform retries). `scheduled[message id]` = that time
    (epoch seconds), for the replies' latency."""
    import aiohttp

    people = max(1, int(rate * seconds / len(SCRIPT)))
    starts = rate / len(SCRIPT)
    loop = asyncio.get_running_loop()
    begin = loop.time() + 0.1
    to_epoch = time.time() - loop.time()
    latencies: list[float] = []

    async def person(index: int, session) -> None:
        who = str(33_600_000_000 + first_person + index)
        number = numbers[index % len(numbers)]
        for step, (kind, value) in enumerate(SCRIPT):
            due = begin + index / starts + step * gap
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            message_id = f"wamid.IN.{who}.{step}"
            scheduled[message_id] = due + to_epoch
            body, headers = whatsapp_body(message_id, who, number, kind, value)
            await post_until_200(session, url, body, stats, WA_WEBHOOK, headers)
            latencies.append(loop.time() - due)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        await asyncio.gather(*(person(i, session) for i in range(people)))
    return latencies


async def reply_latencies(database_url: str, arrivals: dict[str, list[float]], scheduled: dict,
                          people: set[str]) -> dict:
    """Each reply's arrival at the fake platform, from the scheduled time of the update it answers.
    Per person, the requests the fake received are their sent rows in order (one request a row:
    no venue nor file in the script); the update a row answers is the person's latest inbound row
    before it (same table, one sequence). `first`: the first reply to each update (what the
    person waits for); `all`: every reply."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT a.external_id, m.direction, m.external_id, m.status FROM messages m "
                "JOIN conversations c ON c.id = m.conversation_id JOIN addresses a ON a.id = c.address_id "
                "WHERE a.channel = 'whatsapp' ORDER BY m.id"))).all()
    finally:
        await engine.dispose()
    sent_of: dict[str, list[str]] = {}  # person -> for each sent row in order, the update it answers
    last_in: dict[str, str] = {}
    for who, direction, external_id, status in rows:
        if who not in people:
            continue
        if direction == "in":
            last_in[who] = external_id
        elif status in ("sent", "delivered", "read") and who in last_in:
            sent_of.setdefault(who, []).append(last_in[who])
    first, every, unmatched = [], [], 0
    for who, answered in sent_of.items():
        times = arrivals.get(who, [])
        if len(times) != len(answered):
            unmatched += 1
            continue
        seen = set()
        for update_id, arrived in zip(answered, times):
            if update_id not in scheduled:
                continue
            latency = arrived - scheduled[update_id]
            every.append(latency)
            if update_id not in seen:
                seen.add(update_id)
                first.append(latency)
    return {"first_p50": percentile(first, 50), "first_p99": percentile(first, 99), "all_p99": percentile(every, 99),
            "replies": len(every), "people": len(sent_of) - unmatched, "unmatched": unmatched}


async def latency_at(rates: list[float], n: int, database_url: str, redis_url: str, seconds: float,
                     channel: str = "whatsapp", numbers: int = 8, profile: Path | None = None,
                     extra_env: dict | None = None) -> list[dict]:
    """Open loop (the Python generator: at these rates it costs little) through haproxy, the
    platform played by haproxy; `rates` in turn on the same processes, new people each time.
    WhatsApp: the people spread over `numbers` phone numbers (a network's services), so the
    replies stay within each number's send budget (80/s); Telegram: one bot (30/s), which 200
    updates/s outrun (~1.2 replies each): the outbox then holds a backlog, rightly."""
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    results = []
    ids = whatsapp_numbers(numbers)
    platform = Haproxy.graph_api(workdir) if channel == "whatsapp" else Haproxy.bot_api(workdir)
    with platform:
        extra = {**(whatsapp_env(platform.url, ids) if channel == "whatsapp" else {}), **(extra_env or {})}
        cluster = Cluster(n, database_url, redis_url, workdir, platform, extra)
        await cluster.start(proxy=False)
        balancer = Haproxy.balancer([app.port for app in cluster.apps], workdir).start()
        try:
            await asyncio.sleep(1.5)
            meter = CpuMeter(cluster.apps, database_name(database_url), {"haproxy (balancer)": balancer,
                                                                         "haproxy (platform)": platform})
            before = meter.snapshot()
            await asyncio.sleep(5)
            idle = CpuMeter.delta(before, meter.snapshot())
            results.append({"idle_app_cores": idle["app processes"] / idle["wall"]})
            for index, rate in enumerate(rates):
                stats: dict = {}
                scheduled: dict = {}
                first_person = (index + 1) * 1_000_000
                bench_before, before = time.process_time(), meter.snapshot()
                counters_before = await asyncio.to_thread(pg_counters, database_url)
                sampler = ConnectionSampler(database_url).start()
                started = time.monotonic()
                spy = None
                if profile is not None and index == 0:
                    spy = await py_spy_top(cluster.apps[0].process.pid, seconds, profile)
                if channel == "whatsapp":
                    latencies = await open_loop_whatsapp(balancer.url, rate, seconds, first_person, ids, scheduled,
                                                         stats)
                else:
                    latencies = await open_loop(balancer.url, rate, seconds, 720_000_001 + index * 1_000_000,
                                                820_000_001 + index * 10_000_000, stats=stats)
                spent = CpuMeter.delta(before, meter.snapshot())
                wall = time.monotonic() - started
                spent["load generator (Python, this script)"] = time.process_time() - bench_before
                connections = await sampler.stop()
                if spy is not None:
                    await spy.wait()
                drain_started = time.monotonic()
                await drained(database_url, timeout=90)  # no backlog carried into the next rate
                counters = await asyncio.to_thread(pg_counters, database_url)
                at = {"rate": rate, "updates": len(latencies), "p50": percentile(latencies, 50),
                      "p99": percentile(latencies, 99), "max": max(latencies), "retried": stats.get("retried", 0),
                      "cpu_spent": spent, "drain_seconds": time.monotonic() - drain_started - 2,
                      "connections": connections,
                      "sessions_per_second": (counters["sessions"] - counters_before["sessions"] - 2) / wall,
                      "commits_per_update": (counters["commits"] - counters_before["commits"]) / max(1, len(latencies))}
                if channel == "whatsapp":
                    people = {str(33_600_000_000 + first_person + i) for i in range(int(rate * seconds / len(SCRIPT)))}
                    at["replies"] = await reply_latencies(database_url, platform.arrivals(), scheduled, people)
                results.append(at)
        finally:
            balancer.stop()
            await cluster.stop()
    return results


async def drained(database_url: str, timeout: float = 120.0) -> None:
    """Until no outbound row is queued or being sent (then 2 s more: the recorders' last writes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, unsent = await database_counts(database_url)
        if not unsent.get("queued") and not unsent.get("sending"):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)


async def screen(database_url: str, redis_url: str, probes: int) -> dict:
    await asyncio.to_thread(reset_postgres, database_url)
    await asyncio.to_thread(reset_redis, redis_url)
    workdir = Path(tempfile.mkdtemp(prefix="allervers-processes-"))
    with Haproxy.bot_api(workdir) as bot_api:
        cluster = await Cluster(2, database_url, redis_url, workdir, bot_api).start()
        try:
            a, b = cluster.apps
            return await screen_latency(database_url, a.url, b.url, probes, 730_000_001, 830_000_001)
        finally:
            await cluster.stop()


def print_throughput(n: int, result: dict) -> None:
    spent = result["cpu_spent"]
    print(f"{n} process{'es' if n > 1 else ''}: {result['per_second']:.0f} updates/s ({result['updates']} in "
          f"{result['seconds']:.1f} s, p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, "
          f"errors {result['errors']}); app CPU {1000 * spent['app processes'] / result['updates']:.2f} ms/update, "
          f"machine busy {spent['machine (all jobs)'] / spent['wall']:.2f} of {os.cpu_count()} cores", flush=True)
    print(cpu_table(spent, result["updates"]), flush=True)
    print(f"    PostgreSQL commits: {result['commits']} ({result['commits'] / result['updates']:.3f} per update: "
          f"the intake's batches and the outbox's recorded outcomes); rollbacks {result.get('rollbacks', 0)} "
          f"({result.get('rollbacks', 0) / result['updates']:.3f} per update: a checkout's ping is one, a batch "
          f"that failed another)", flush=True)
    seen = result["connections"]
    print(f"    PostgreSQL connections opened: {result['sessions_opened']} "
          f"({result['sessions_opened'] / result['seconds']:.1f}/s); connected max {seen.get('connected_max')}, "
          f"mean {seen.get('connected_mean', 0):.1f}; busy at once max {seen.get('busy_max')}, "
          f"p90 {seen.get('busy_p90')}", flush=True)
    if result["throttled"]:
        stat = result["throttled"]
        print(f"    cgroups: {stat.get('nr_throttled', 0)} of {stat.get('nr_periods', 0)} periods throttled, "
              f"{stat.get('throttled_time', 0) / 1e9:.1f} s throttled in all", flush=True)
    ours = spent["machine (all jobs)"] - CpuMeter.others(spent)
    print(f"    this benchmark's components: {1000 * ours / result['updates']:.2f} ms of CPU per update -> "
          f"{os.cpu_count() * result['updates'] / ours:.0f} updates/s if they had the {os.cpu_count()} cores "
          f"to themselves", flush=True)


def _python_work(seconds: float, results) -> None:
    """Interpreter work of the kind a request does (JSON, dicts, hashing, sorting), counted."""
    import hashlib
    import json

    document = {"update_id": 1, "message": {"chat": {"id": 42}, "text": "x" * 60, "entities": [1, 2, 3]}}
    end, done = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for _ in range(100):
            json.loads(json.dumps(document))
            hashlib.sha256(b"x" * 256).digest()
            sorted(range(40), key=lambda value: -value)
        done += 100
    results.put(done)


def machine_scaling(seconds: float = 3.0) -> dict:
    """The machine's own 2-process ceiling, measured next to the app's runs: the same Python work in one
    process, then in two at once. On these shared 2-core VMs it moves from minute to minute
    (1.59x-2.20x seen within one minute on 12-04): a capacity ratio means something only beside it."""
    import multiprocessing

    context = multiprocessing.get_context("fork")

    def run(processes: int) -> float:
        results = context.Queue()
        workers = [context.Process(target=_python_work, args=(seconds, results)) for _ in range(processes)]
        for worker in workers:
            worker.start()
        done = sum(results.get() for _ in workers)
        for worker in workers:
            worker.join()
        return done / seconds

    one = run(1)
    two = run(2)
    return {"one": one, "two": two, "ratio": two / one}


def capacity_summary(rounds: list[dict], loads: list[int]) -> str:
    """Each round's runs side by side; a process count's capacity is its best updates/s over the connection
    counts (a closed loop measures a configuration's capacity only once it has enough load to saturate it),
    and the ratio is of the two capacities within the round (their runs alternated, so both saw the machine)."""
    def others(result: dict) -> float:
        return CpuMeter.others(result["cpu_spent"]) / result["cpu_spent"]["wall"]

    def app_ms(result: dict) -> float:
        return 1000 * result["cpu_spent"]["app processes"] / result["updates"]

    lines = ["round  processes  " + "  ".join(f"{c:>4} conn: upd/s (app ms, p99, other jobs)" for c in loads)
             + "  capacity"]
    ratios, ceilings = [], []
    for index, runs in enumerate(rounds, 1):
        best = {}
        for n in (1, 2):
            cells = []
            for c in loads:
                r = runs[n, c]
                cells.append(f"{r['per_second']:>14.0f} ({app_ms(r):.2f}, {r['p99'] * 1000:.0f} ms, {others(r):.2f})")
            best[n] = max((runs[n, c] for c in loads), key=lambda r: r["per_second"])
            lines.append(f"{index:>5}  {n:>9}  " + "  ".join(cells) + f"  {best[n]['per_second']:.0f}/s")
        ratios.append(best[2]["per_second"] / best[1]["per_second"])
        same = ", ".join(f"{runs[2, c]['per_second'] / runs[1, c]['per_second']:.2f}x at {c}" for c in loads)
        lines.append(f"       capacity 2 processes / 1: {ratios[-1]:.2f}x (same connections: {same})")
        machine = runs.get("machine")
        if machine:
            ceilings.append(statistics.mean(m["ratio"] for m in machine))
            lines.append(f"       the machine's own 2 / 1 (pure Python work, before and after the round): "
                         + " and ".join(f"{m['ratio']:.2f}x" for m in machine)
                         + f" -> the app's ratio is {ratios[-1] / ceilings[-1]:.0%} of it")
    if len(ratios) > 1:
        lines.append(f"capacity ratio over {len(ratios)} rounds: min {min(ratios):.2f}x, median "
                     f"{statistics.median(ratios):.2f}x, max {max(ratios):.2f}x")
        if ceilings:
            lines.append(f"the machine's own ratio over those rounds: min {min(ceilings):.2f}x, median "
                         f"{statistics.median(ceilings):.2f}x, max {max(ceilings):.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres-url", default=os.environ.get("ALLERVERS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--redis-url", default=os.environ.get("ALLERVERS_BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--only", choices=["throughput", "latency", "screen", "rss"], action="append")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", default="48,96",
                        help="wrk's connections (people posting at once), a comma-separated list: each process count "
                             "runs at each, and its capacity is its best (one process is saturated by 48; two are not)")
    parser.add_argument("--people-per-connection", type=int, default=10, help="people taking turns in the closed loop")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds (1 process, then 2, at each connection count), alternated")
    parser.add_argument("--per-person", type=int, default=10,
                        help="updates per person (the 5 of the script, then free texts), then a new person")
    parser.add_argument("--rates", default="200,100,50", help="open-loop rates across 3 processes")
    parser.add_argument("--channel", choices=["whatsapp", "telegram"], default="whatsapp",
                        help="the open loop's channel (Telegram: one bot, whose 30 sends/s 200 updates/s outrun)")
    parser.add_argument("--numbers", type=int, default=8, help="WhatsApp numbers the open loop's people spread over")
    parser.add_argument("--probes", type=int, default=100)
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the one-process run's app to this file")
    parser.add_argument("--cpu-limit", type=float, default=None,
                        help="each app process (and its children) in its own cgroup of this many cores, like a "
                             "Kubernetes resources.limits.cpu (cgroup v1 cpu controller, as root)")
    parser.add_argument("--pool", default=None, help="POOL_SIZE,MAX_OVERFLOW of each process's PostgreSQL pool "
                        "(ALLERVERS_DATABASE_POOL_SIZE / _MAX_OVERFLOW; default: the settings' defaults)")
    args = parser.parse_args()
    extra_env = {}
    if args.pool:
        size, overflow = args.pool.split(",")
        extra_env = {"ALLERVERS_DATABASE_POOL_SIZE": size, "ALLERVERS_DATABASE_MAX_OVERFLOW": overflow}
    if args.cpu_limit and not CpuLimit.available():
        sys.exit("--cpu-limit needs cgroup v1's cpu controller writable (/sys/fs/cgroup/cpu, as root)")
    only = set(args.only or ["throughput", "latency", "screen", "rss"])
    print(f"Allervers processes benchmark — {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    db, redis = args.postgres_url, args.redis_url
    if "throughput" in only or "latency" in only:
        import shutil

        missing = [tool for tool in ("haproxy", "wrk") if shutil.which(tool) is None]
        if missing:
            sys.exit(f"needs Debian's {' and '.join(missing)}: apt-get install {' '.join(missing)}")
    if "throughput" in only:
        loads = [int(c) for c in args.connections.split(",")]
        print(f"closed loop: wrk, {' and '.join(map(str, loads))} connections, {args.seconds:.0f} s; "
              f"{args.people_per_connection} people per connection take turns, {args.per_person} updates each (the "
              f"script's 5, then texts to the worker), then new people; haproxy round robin in front, haproxy as the "
              f"Bot API"
              + (f"; each app process limited to {args.cpu_limit} core (cgroup CFS quota)" if args.cpu_limit else "")
              + (f"; pool {args.pool}" if args.pool else ""), flush=True)
        rounds = []  # one per --repeat: {(processes, connections): result}
        for _ in range(args.repeat):
            runs = {"machine": [machine_scaling()]}
            for connections in loads:
                for n in (1, 2):  # alternated: both see the machine's other jobs alike
                    print(f"-- {n} process{'es' if n > 1 else ''}, {connections} connections", flush=True)
                    result = asyncio.run(throughput(n, db, redis, connections, args.seconds,
                                                    args.people_per_connection * connections, args.per_person,
                                                    args.profile if n == 1 else None, args.cpu_limit, extra_env))
                    runs[n, connections] = result
                    print_throughput(n, result)
            runs["machine"].append(machine_scaling())
            print("    the machine's own 2 / 1 (pure Python work): "
                  + " and ".join(f"{m['ratio']:.2f}x ({m['one']:.0f} and {m['two']:.0f} units/s)" for m in runs["machine"]),
                  flush=True)
            rounds.append(runs)
        print(capacity_summary(rounds, loads), flush=True)
        if args.profile is not None and args.profile.exists():
            print(profile_summary(args.profile), flush=True)
    if "latency" in only:
        rates = [float(rate) for rate in args.rates.split(",")]
        where = (f"WhatsApp, the people spread over {args.numbers} numbers (80 sends/s each)" if args.channel == "whatsapp"
                 else "Telegram, one bot (30 sends/s)")
        print(f"open loop across 3 processes: {where}; {args.seconds:.0f} s per rate, the outbox drained between rates"
              + (f"; pool {args.pool}" if args.pool else ""), flush=True)
        idle, *measured = asyncio.run(latency_at(rates, 3, db, redis, args.seconds, args.channel, args.numbers,
                                                 args.profile if "throughput" not in only else None, extra_env))
        print(f"3 processes idle (5 s before the load): {idle['idle_app_cores']:.3f} cores in all", flush=True)
        for at in measured:
            spent = at["cpu_spent"]
            print(f"3 processes at {at['rate']:.0f} updates/s offered: {at['updates']} updates; webhook answered p50 "
                  f"{at['p50'] * 1000:.0f} ms, p99 {at['p99'] * 1000:.0f} ms, max {at['max'] * 1000:.0f} ms, "
                  f"{at['retried']} posts retried; machine busy {spent['machine (all jobs)'] / spent['wall']:.2f} cores; "
                  f"drained {at['drain_seconds']:.1f} s after", flush=True)
            replies = at.get("replies")
            if replies:
                print(f"    reply at the platform (from the update's scheduled time): first reply p50 "
                      f"{replies['first_p50'] * 1000:.0f} ms, p99 {replies['first_p99'] * 1000:.0f} ms; every reply p99 "
                      f"{replies['all_p99'] * 1000:.0f} ms ({replies['replies']} replies, {replies['people']} people; "
                      f"{replies['unmatched']} not matched)", flush=True)
            seen = at["connections"]
            print(f"    PostgreSQL connections opened {at['sessions_per_second']:.1f}/s; connected max "
                  f"{seen.get('connected_max')}, busy at once max {seen.get('busy_max')}; "
                  f"{at['commits_per_update']:.2f} commits per update", flush=True)
            print(cpu_table(spent, at["updates"]), flush=True)
        if args.profile is not None and "throughput" not in only and args.profile.exists():
            print(profile_summary(args.profile), flush=True)
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
