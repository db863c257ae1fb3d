"""A person on the web chat, driven through its real HTTP API (shared by the flow tests)."""

from __future__ import annotations

import itertools
import uuid

_ids = itertools.count(1)


class Person:
    """Posts to /chat/api/messages, waits for the bot (actions and deliveries included), reads
    /chat/api/history."""

    def __init__(self, client, drain_timeout: float = 60):
        self.client = client
        self.uid = uuid.uuid4().hex
        self.seen = 0
        self.drain_timeout = drain_timeout

    async def post(self, text=None, choice=None, location=None) -> dict:
        body = {"uid": self.uid, "client_id": f"client-{next(_ids):06d}"}
        if text is not None:
            body["text"] = text
        if choice is not None:
            body["choice"] = choice
        if location is not None:
            body["location"] = list(location)
        response = await self.client.post("/chat/api/messages", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def send(self, text=None, choice=None, location=None) -> list[dict]:
        """Send, wait for the bot, return the bot's new messages."""
        await self.post(text, choice, location)
        await self.client.app.state.rt.drain(timeout=self.drain_timeout)
        return await self.new()

    async def new(self) -> list[dict]:
        lines = await self.bot_lines()
        new, self.seen = lines[self.seen:], len(lines)
        return new

    async def bot_lines(self) -> list[dict]:
        history = (await self.client.get("/chat/api/history", params={"uid": self.uid})).json()["messages"]
        return [m for m in history if m["from"] == "bot"]

    async def last(self) -> dict:
        return (await self.bot_lines())[-1]


def values(message: dict) -> list[str]:
    return [choice[0] for choice in message["choices"]]


def text_of(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages)
