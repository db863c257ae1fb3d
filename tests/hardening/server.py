"""A real server for the flood tests and bench/bench_floods.py: uvicorn in a child process (its
RSS, CPU time and temporary files are its own), configured by ALLERVERS_* variables, and a /healthz
probe in another child process (so that the load generator never delays it)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m uvicorn --factory allervers.app:create_app` on loopback, configured by ALLERVERS_*."""

    def __init__(self, workdir: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = workdir / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "ALLERVERS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/bench.db",
                    "ALLERVERS_MEDIA_DIR": str(workdir / "media"), "ALLERVERS_RIGHTS_BACKEND": "off",
                    "ALLERVERS_DIRECTORY_AUTOLOAD": "false", "ALLERVERS_SEED_DEMO": "true",
                    "ALLERVERS_SECRET_KEY": "bench-secret-key", "ALLERVERS_WHATSAPP_APP_SECRET": "bench",
                    "ALLERVERS_WHATSAPP_ACCESS_TOKEN": "bench", "ALLERVERS_WHATSAPP_PHONE_NUMBER_ID": "1",
                    "ALLERVERS_WHATSAPP_GRAPH_API_BASE": "http://127.0.0.1:9",
                    "ALLERVERS_TELEGRAM_BOT_TOKEN": "123456:FLOODS-fake-token", "ALLERVERS_TELEGRAM_WEBHOOK_SECRET": "floods",
                    "ALLERVERS_TELEGRAM_API_BASE": "http://127.0.0.1:9", "TMPDIR": str(self.tmp),
                    **env}

    def __enter__(self) -> "Server":
        for _ in range(3):  # a port taken meanwhile by someone else: another one
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "allervers.app:create_app", "--host", "127.0.0.1",
                 "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
                cwd=ROOT, env=self.env)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                        self.ps = psutil.Process(self.process.pid)
                        return self
                except httpx.HTTPError:
                    time.sleep(0.2)
            if self.process.poll() is None:
                self.process.kill()
                break
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def temp_bytes(self) -> int:
        """Bytes in the files the server holds open under its TMPDIR (deleted ones included)."""
        total = 0
        fd_dir = f"/proc/{self.process.pid}/fd"
        for name in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{name}")
                if target.startswith(str(self.tmp)):
                    total += os.stat(f"{fd_dir}/{name}").st_size
            except OSError:
                pass
        return total

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return times.user + times.system


PROBE = """
import http.client, json, sys, threading, time
host, port, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
connection, latencies = http.client.HTTPConnection(host, port, timeout=60), []
while not stop.is_set():
    started = time.perf_counter()
    connection.request("GET", "/healthz")
    connection.getresponse().read()
    latencies.append((time.perf_counter() - started) * 1000)
    time.sleep(interval)
print(json.dumps(latencies))
"""


async def probe_healthz(url: str, stop: asyncio.Event, interval: float = 0.01) -> list[float]:
    """Latencies (ms) of GET /healthz, one at a time every `interval`, until `stop`: measured by a
    child process of its own, so that the load generator here never delays the probe."""
    host, port = url.removeprefix("http://").split(":")
    probe = await asyncio.create_subprocess_exec(sys.executable, "-c", PROBE, host, port, str(interval),
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    await stop.wait()
    out, _ = await probe.communicate(b"")
    return json.loads(out)




def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.99 * len(values)))] if values else float("nan")


def send_chunked(port: int, path: str, total: int, headers: dict | None = None, chunk: int = 256 * 1024,
                 prefix: bytes = b"", suffix: bytes = b"") -> tuple[int, bytes, int]:
    """POST a chunked body of about `total` bytes on a raw socket, reading the answer as soon as the
    server gives it (even mid-body). (status, response body, bytes of body sent)."""
    import select

    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    sock.sendall((head + "\r\n").encode())
    def parts():
        if prefix:
            yield prefix
        piece = b"x" * chunk
        for _ in range(0, total, chunk):
            yield piece
        if suffix:
            yield suffix

    sent, finished = 0, True
    try:
        for part in parts():
            if select.select([sock], [], [], 0)[0]:  # the server answered (or closed): stop sending
                finished = False
                break
            sock.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
            sent += len(part)
        if finished:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    return (*read_response(sock), sent)


def send_declared(port: int, path: str, length: int, headers: dict | None = None) -> tuple[int, bytes]:
    """Only the headers of a request declaring a `length`-byte body: the server must answer now."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    sock.sendall((head + "\r\n").encode() + b"x" * 1024)
    return read_response(sock)


def read_response(sock) -> tuple[int, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        match = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        length = int(match[0].split(b":")[1]) if match else 0
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                break
            body += more
    except (ConnectionResetError, TimeoutError):
        head, body = data.partition(b"\r\n\r\n")[0], b""
    finally:
        sock.close()
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else 0
    return status, body


class Sampler:
    """Calls `fn` every `interval` in a thread while the block runs: .values, .peak."""

    def __init__(self, fn, interval: float = 0.01):
        import threading

        self.fn, self.interval, self.values = fn, interval, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.values.append(self.fn())
            time.sleep(self.interval)
        self.values.append(self.fn())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    @property
    def peak(self):
        return max(self.values)
