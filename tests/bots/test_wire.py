"""bots/wire.py: a WhatsApp send leaves in one socket write, after its on_the_wire hook, over a
real loopback server that records what it receives and when."""

from __future__ import annotations

import asyncio
import json

from bots.base import OutboundMessage, on_the_wire
from bots.whatsapp import WhatsAppChannel


class GraphServer:
    """Answers each /messages POST with a message id; keeps every chunk received (one connection)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.requests = 0

    async def __aenter__(self) -> "GraphServer":
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            self.chunks.append(chunk)
            buffer += chunk
            head, separator, rest = buffer.partition(b"\r\n\r\n")
            if not separator:
                continue
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(rest) < length:
                continue
            buffer = rest[length:]
            self.requests += 1
            body = json.dumps({"messages": [{"id": f"wamid.OUT.{self.requests}"}]}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()


async def test_a_send_is_one_write_after_its_hook_and_the_connection_is_kept():
    async with GraphServer() as graph:
        channel = WhatsAppChannel(app_secret="x", verify_token="v", access_token="t", graph_base=graph.url,
                                  phone_number_id="1001")
        seen_at_hook: list[int] = []

        async def hook() -> None:
            await asyncio.sleep(0.05)  # whatever was written by now has reached the server
            seen_at_hook.append(len(graph.chunks))

        try:
            for n in range(3):
                token = on_the_wire.set(hook)
                try:
                    result = await channel.send("33600000001", OutboundMessage(text=f"Bonjour {n}"))
                finally:
                    on_the_wire.reset(token)
                assert result.platform_message_id == f"wamid.OUT.{n + 1}"
                await asyncio.sleep(0.05)
                assert len(graph.chunks) == n + 1  # headers and body arrived together
                request = graph.chunks[n]
                assert request.startswith(b"POST /1001/messages HTTP/1.1") and f"Bonjour {n}".encode() in request
            assert seen_at_hook == [0, 1, 2]  # the hook ran before any byte of its request left
        finally:
            await channel.close()
