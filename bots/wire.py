"""An httpx transport whose HTTP/1.1 requests leave in one socket write, headers and body together.

httpcore writes a request's headers, then its body: two system calls per request. A send is the
outbox's hot path (every reply, every campaign message), and a write is not cheap (on loopback the
kernel runs the receiving side inside the sender's call). The network stream here keeps what is
written until the answer is read, then sends it in one write: with HTTP/1.1 (no `Expect:
100-continue`) a request is complete before its answer is read, so nothing else changes — a
connection that fails still fails on that request (at the write, or the read that follows), the
timeouts are the same, and the `on_the_wire` hook (bots.base: an httpcore trace before the body)
still runs before the body leaves (before any byte of the request does, now).
"""

from __future__ import annotations

import ssl
import urllib.request
from typing import Any

import httpcore
import httpx


class _OneWriteStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._timeout: float | None = None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._pending.append(buffer)
        self._timeout = timeout

    async def _flush(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            await self._stream.write(data, self._timeout)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush()
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._pending = []  # a request not followed by its read was abandoned
        await self._stream.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return _OneWriteStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _OneWriteBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options=None) -> httpcore.AsyncNetworkStream:
        return _OneWriteStream(await self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options=None) -> httpcore.AsyncNetworkStream:
        return _OneWriteStream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class OneWriteTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (HTTP/1.1, keep-alive, TLS verified as httpx does, SSL_CERT_FILE
    included) over _OneWriteBackend; without a proxy (one_write_client keeps httpx's own then)."""

    def __init__(self, limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)) -> None:
        super().__init__(limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=True), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            http1=True, http2=False, network_backend=_OneWriteBackend())


def one_write_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """An AsyncClient for a platform's API: keep-alive, one write per request (see the module);
    httpx's own transport when the environment names a proxy (HTTPS_PROXY...), which it honours."""
    if any(key in ("http", "https", "all") for key in urllib.request.getproxies()):
        return httpx.AsyncClient(timeout=timeout)
    return httpx.AsyncClient(timeout=timeout, transport=OneWriteTransport())
