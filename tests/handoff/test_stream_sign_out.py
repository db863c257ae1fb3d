"""An open live stream of the inbox ends when its session ends: a logout on this device closes it at
once (a `signed_out` event, which the page's sse-close turns into a closed EventSource); a logout on
another device of the same worker leaves it open. Through a real server on loopback (the stream is
read as it comes, which an in-process client cannot do)."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import LiveServer, csrf_of, login

EMAIL, PASSWORD = "camille@demo.allervers.fr", "allervers-demo"


async def signed_in(url: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=url, timeout=10)
    assert (await login(client, EMAIL, PASSWORD)).status_code == 303
    return client


async def log_out(client: httpx.AsyncClient) -> None:
    csrf = csrf_of((await client.get("/inbox")).text)
    assert (await client.post("/inbox/logout", data={"csrf_token": csrf})).status_code == 303


async def test_the_stream_ends_at_its_own_logout_not_at_another_devices(settings_for):
    with LiveServer(settings_for()) as server:
        phone, laptop = await signed_in(server.url), await signed_in(server.url)
        try:
            lines: list[str] = []
            ended = asyncio.Event()

            async def listen() -> None:
                async with phone.stream("GET", "/inbox/stream", timeout=httpx.Timeout(10, read=60)) as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        lines.append(line)
                ended.set()

            task = asyncio.create_task(listen())
            deadline = time.monotonic() + 10
            while ": connected" not in lines and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert ": connected" in lines

            await log_out(laptop)  # the other device: this stream goes on
            await asyncio.sleep(0.5)
            assert not ended.is_set() and "event: signed_out" not in lines

            began = time.monotonic()
            await log_out(phone)  # its own session: the stream says so and ends
            await asyncio.wait_for(ended.wait(), timeout=5)
            assert time.monotonic() - began < 2.0
            assert "event: signed_out" in lines
            await task
            # Opened again with the dead cookie: refused.
            assert (await phone.get("/inbox/stream")).status_code == 401
        finally:
            await phone.aclose()
            await laptop.aclose()
