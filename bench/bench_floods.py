"""Floods against one real server (uvicorn in a child process, SQLite, demo seed): prints figures.

    python bench/bench_floods.py                 # every scenario
    python bench/bench_floods.py --only body,login

Figures, each against the idle server measured in the same run:
- RSS growth of the server while a chunked 300 MiB body is sent to the WhatsApp webhook and to the
  web chat API (target <= 20 MB);
- bytes the server holds in temporary files while a chunked 265 MiB voice upload arrives;
- /healthz p99 while 16 MiB WebM notes made of 2.5 ms blocks are uploaded (target <= 50 ms);
- /healthz p99 under a login flood (32 concurrent wrong passwords), and the wall / CPU time the
  server spends on 200 wrong passwords in a row.
Not a test: nothing asserts (tests/hardening/ does).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hardening.server import Server, probe_healthz, send_chunked  # noqa: E402
from tests.hardening.webm import fragmented_webm  # noqa: E402
from tests.webchat import COOKIE  # noqa: E402

MIB = 1024 * 1024
EMAIL, PASSWORD = "camille@demo.allervers.fr", "allervers-demo"


async def chunks(total: int, size: int = 256 * 1024, prefix: bytes = b"", suffix: bytes = b""):
    if prefix:
        yield prefix
    piece = b"x" * size
    sent = 0
    while sent < total:
        yield piece
        sent += size
    if suffix:
        yield suffix


async def sample(fn, stop: asyncio.Event, interval: float = 0.01) -> list:
    values = []
    while not stop.is_set():
        values.append(fn())
        await asyncio.sleep(interval)
    values.append(fn())
    return values


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def idle_p99(server: Server, seconds: float = 2.0) -> tuple[float, float]:
    stop = asyncio.Event()
    task = asyncio.create_task(probe_healthz(server.url, stop))
    await asyncio.sleep(seconds)
    stop.set()
    latencies = await task
    return p(latencies, 0.5), p(latencies, 0.99)


def identity(server: Server) -> str:
    """A web chat identity issued by the server (POST /chat/api/identity): its Cookie header."""
    response = httpx.post(server.url + "/chat/api/identity", json={})
    response.raise_for_status()
    return f"{COOKIE}={response.cookies[COOKIE]}"


async def body_flood(server: Server, path: str, total: int) -> dict:
    before = server.rss()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(server.rss, stop))
    started = time.perf_counter()
    status, _, sent = await asyncio.to_thread(send_chunked, server.port, path, total,
                                              {"Content-Type": "application/json",
                                               "X-Hub-Signature-256": "sha256=" + "0" * 64,
                                               "Cookie": identity(server)})
    elapsed = time.perf_counter() - started
    stop.set()
    peak = max(await sampler)
    return {"path": path, "status": status, "sent_mib": sent / MIB, "rss_before_mib": before / MIB,
            "rss_growth_mib": (peak - before) / MIB, "seconds": elapsed}


def multipart(client_id: str, boundary: str = "benchboundary"):
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\n{client_id}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"v.webm\"\r\n"
            "Content-Type: audio/webm\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail, f"multipart/form-data; boundary={boundary}"


async def upload_flood(server: Server, total: int) -> dict:
    head, tail, content_type = multipart("client-bench-upload-1")
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(server.temp_bytes, stop))
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        try:
            response = await client.post("/chat/api/voice", content=chunks(total, prefix=head, suffix=tail),
                                         headers={"content-type": content_type, "cookie": identity(server)})
            status = response.status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
    stop.set()
    return {"status": status, "temp_peak_mib": max(await sampler) / MIB}


async def voice_flood(server: Server, notes: int, concurrency: int) -> dict:
    note = fragmented_webm(16 * MIB - 64 * 1024)
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_healthz(server.url, stop))
    statuses: dict = {}
    queue = list(range(notes))
    started = time.perf_counter()

    async def uploader(client, cookie: str):
        while queue:
            i = queue.pop()
            response = await client.post("/chat/api/voice", data={"client_id": f"client-{i:04d}"},
                                         files={"audio": ("v.webm", note, "audio/webm")}, headers={"cookie": cookie})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async with httpx.AsyncClient(base_url=server.url, timeout=300) as client:
        # One person per uploader (each under the "upload" limit of 10 per minute for few notes).
        cookies = [identity(server) for _ in range(concurrency)]
        await asyncio.gather(*(uploader(client, cookie) for cookie in cookies))
    elapsed = time.perf_counter() - started
    stop.set()
    latencies = await probe
    return {"notes": notes, "statuses": statuses, "seconds": elapsed, "healthz_p50_ms": p(latencies, 0.5),
            "healthz_p99_ms": p(latencies, 0.99), "healthz_max_ms": max(latencies)}


async def login_client(url: str) -> tuple[httpx.AsyncClient, str]:
    client = httpx.AsyncClient(base_url=url, timeout=60)
    page = await client.get("/inbox/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client, token


async def login_flood(server: Server, concurrency: int, seconds: float, addresses: int) -> dict:
    stop = asyncio.Event()
    probe = asyncio.create_task(probe_healthz(server.url, stop))
    statuses: dict = {}
    deadline = time.monotonic() + seconds

    async def attacker(n: int):
        client, token = await login_client(server.url)
        try:
            while time.monotonic() < deadline:
                response = await client.post("/inbox/login", data={"email": f"victim{n % 4}@demo.allervers.fr",
                                                                   "password": "wrong", "csrf_token": token},
                                             headers={"x-forwarded-for": f"10.0.0.{n % addresses}"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        finally:
            await client.aclose()

    await asyncio.gather(*(attacker(n) for n in range(concurrency)))
    stop.set()
    latencies = await probe
    return {"concurrency": concurrency, "addresses": addresses, "statuses": statuses, "healthz_p50_ms": p(latencies, 0.5),
            "healthz_p99_ms": p(latencies, 0.99)}


async def wrong_passwords(server: Server, count: int) -> dict:
    client, token = await login_client(server.url)
    statuses: dict = {}
    cpu, started = server.cpu(), time.perf_counter()
    try:
        for _ in range(count):
            response = await client.post("/inbox/login", data={"email": EMAIL, "password": "wrong",
                                                               "csrf_token": token})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    finally:
        await client.aclose()
    return {"count": count, "statuses": statuses, "wall_s": time.perf_counter() - started,
            "server_cpu_s": server.cpu() - cpu}


async def main(only: set[str]) -> None:
    with tempfile.TemporaryDirectory() as workdir, Server(Path(workdir)) as server:
        p50, p99 = await idle_p99(server)
        print(f"idle server: RSS {server.rss() / MIB:.0f} MiB, /healthz p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        if "body" in only:
            for path in ("/bots/whatsapp/webhook", "/chat/api/messages"):
                print("300 MiB chunked body:", await body_flood(server, path, 300 * MIB))
        if "upload" in only:
            print("265 MiB chunked voice upload:", await upload_flood(server, 265 * MIB))
        if "voice" in only:
            print("16 MiB WebM notes of 2.5 ms blocks:", await voice_flood(server, notes=8, concurrency=4))
        if "login" in only:
            print("login flood:", await login_flood(server, concurrency=32, seconds=5, addresses=1))
            print("login flood:", await login_flood(server, concurrency=32, seconds=5, addresses=32))
            print("wrong passwords in a row:", await wrong_passwords(server, 200))
        p50, p99 = await idle_p99(server)
        print(f"idle again: /healthz p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="body,upload,voice,login")
    asyncio.run(main(set(parser.parse_args().only.split(","))))
