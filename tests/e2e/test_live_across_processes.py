"""Live updates across processes: two app processes share PostgreSQL and Redis.

Process A and process B are real subprocesses (`python -m uvicorn --factory allervers.app:create_app`,
configured by ALLERVERS_* environment variables), started at the same time: both run the migrations
and the demo seed at start-up, and must not collide. The worker listens on B's inbox stream while
the person writes to A's web chat API, and the person listens on A's web chat stream while the
worker replies on B.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL, csrf_of, free_port, reset_postgres, reset_redis

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL),
                       reason="needs PostgreSQL and Redis shared by two processes: set both "
                              "ALLERVERS_TEST_POSTGRES_URL and ALLERVERS_TEST_REDIS_URL"),
]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0
EVENT_TIMEOUT = 10.0


class AppProcess:
    """One app process under uvicorn on a loopback port; its output goes to a log file."""

    def __init__(self, name: str, env: dict, workdir: Path):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "allervers.app:create_app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"process {self.name} exited ({self.process.returncode}):\n{self.log()}")
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()


@pytest.fixture
def two_processes(tmp_path):
    reset_postgres(POSTGRES_URL)
    reset_redis(REDIS_URL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLERVERS_")}
    env.update({
        "ALLERVERS_DATABASE_URL": POSTGRES_URL,
        "ALLERVERS_REDIS_URL": REDIS_URL,
        "ALLERVERS_SECRET_KEY": "shared-test-secret",  # one deployment: both processes share it
        "ALLERVERS_RIGHTS_BACKEND": "off",
        "ALLERVERS_DIRECTORY_AUTOLOAD": "false",
        "ALLERVERS_MEDIA_DIR": str(tmp_path / "media"),
        "ALLERVERS_DELIVERY_BASE_BACKOFF": "0.05",
        # the tests bring many new web chat people from one address (127.0.0.1)
        "ALLERVERS_RATE_LIMITS": '{"webchat_identity_new": "10000/minute"}',
        "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    })
    # Started together on purpose: migrations and the demo seed must take turns, not collide.
    processes = [AppProcess("a", env, tmp_path), AppProcess("b", env, tmp_path)]
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not all(p.ready() for p in processes):
            if time.monotonic() > deadline:
                raise AssertionError("the app processes did not start:\n" + "\n".join(p.log() for p in processes))
            time.sleep(0.2)
        yield processes
    finally:
        for process in processes:
            process.stop()


class EventStream:
    """A text/event-stream read in the background: events (name, data) and comments, in order."""

    def __init__(self, client: httpx.AsyncClient, url: str):
        self.client, self.url = client, url
        self.events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.status: int | None = None
        self.seen: list[str] = []  # every event's data, for privacy checks

    async def _read(self) -> None:
        async with self.client.stream("GET", self.url, timeout=httpx.Timeout(10, read=None)) as response:
            self.status = response.status_code
            if response.status_code != 200:
                self.connected.set()
                return
            event, data = "message", []
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    if line.strip() == ": connected":  # sent once the server has subscribed
                        self.connected.set()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "":
                    if data:
                        self.seen.append("\n".join(data))
                        await self.events.put((event, "\n".join(data)))
                    event, data = "message", []

    async def next(self, wanted, timeout: float = EVENT_TIMEOUT) -> tuple[str, str]:
        """The next event for which wanted(name, data) is true (others are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching event on {self.url} within {timeout} s")
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except asyncio.TimeoutError:
                raise AssertionError(f"no matching event on {self.url} within {timeout} s") from None
            if wanted(*event):
                return event


@asynccontextmanager
async def listening(client: httpx.AsyncClient, url: str):
    stream = EventStream(client, url)
    task = asyncio.create_task(stream._read())
    try:
        await asyncio.wait_for(stream.connected.wait(), 15)
        assert stream.status == 200, f"{url} answered {stream.status}"
        yield stream
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass


async def say(client: httpx.AsyncClient, **body) -> None:
    """The person's browser writes (its identity cookie is in the client's jar)."""
    response = await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, **body})
    assert response.status_code == 200 and response.json()["ok"], response.text


async def test_live_updates_cross_processes_through_redis(two_processes):
    a, b = two_processes
    timeout = httpx.Timeout(15)
    async with httpx.AsyncClient(base_url=a.url, timeout=timeout) as person, \
            httpx.AsyncClient(base_url=b.url, timeout=timeout) as worker:
        assert (await person.post("/chat/api/identity", json={})).status_code == 200  # the cookie, from A
        # Both processes seeded the same database once: exactly one demo worker can log in, on B.
        login_page = await worker.get("/inbox/login")
        response = await worker.post("/inbox/login", data={"email": "camille@demo.allervers.fr",
                                                           "password": "allervers-demo",
                                                           "csrf_token": csrf_of(login_page.text)})
        assert response.status_code == 303, response.text

        # The person (on A) reaches Camille; the worker sees the lists change live on B.
        async with listening(worker, "/inbox/stream") as lists:
            for body in ({"text": "/start"}, {"choice": "oui"}, {"choice": "parler"}, {"choice": "logement"}):
                await say(person, **body)
            event, data = await lists.next(lambda e, d: e == "lists" and d == "conversation_assigned")
        inbox = await worker.get("/inbox")
        conversation_id = int(inbox.text.split('data-conversation="')[1].split('"')[0])

        # A → B: the worker is on the conversation page of B; the person writes to A.
        async with listening(worker, f"/inbox/stream?conversation={conversation_id}") as stream:
            started = time.monotonic()
            await say(person, text="J'ai une question sur mon bail")
            event, data = await stream.next(lambda e, d: e == "timeline")
            a_to_b = time.monotonic() - started
            assert data == str(conversation_id)
            await asyncio.sleep(0.3)  # let the other events of this message arrive
            # The inbox stream carries ids and event names only, never what the person wrote.
            assert stream.seen and not any("bail" in seen for seen in stream.seen), stream.seen
        page = await worker.get(f"/inbox/conversations/{conversation_id}")
        assert "J'ai une question sur mon bail" in html.unescape(page.text)

        # B → A: the person's web chat stream is on A; the worker replies on B.
        async with listening(person, "/chat/api/stream") as chat:
            started = time.monotonic()
            reply = await worker.post(f"/inbox/conversations/{conversation_id}/reply",
                                      data={"text": "Bonjour, je regarde votre bail.",
                                            "csrf_token": csrf_of(page.text)})
            assert reply.status_code == 303, reply.text
            event, data = await chat.next(lambda e, d: "je regarde votre bail" in d)
            b_to_a = time.monotonic() - started
        shown = json.loads(data)
        assert event == "message" and shown["from"] == "bot"
        assert shown["text"] == "Bonjour, je regarde votre bail.\n— Camille"
        print(f"live across processes: A -> B {a_to_b * 1000:.0f} ms, B -> A {b_to_a * 1000:.0f} ms")
        # Nothing went wrong in either process.
        for process in (a, b):
            assert "Traceback" not in process.log(), process.log()
