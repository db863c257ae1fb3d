"""A person on the web chat, driven through its real HTTP API (shared by the flow tests)."""

from __future__ import annotations

import itertools

from sqlalchemy import select

_ids = itertools.count(1)
COOKIE = "allervers_chat"


async def new_identity(client, legacy_uid: str | None = None) -> tuple[str, dict]:
    """POST /chat/api/identity as a fresh browser (no cookie): (the identity cookie, the answer).
    The cookie is taken out of the client's jar, so that several people can share one client."""
    body = {"legacy_uid": legacy_uid} if legacy_uid is not None else {}
    response = await client.post("/chat/api/identity", json=body, headers={"Cookie": ""})
    assert response.status_code == 200, response.text
    token = response.cookies.get(COOKIE)
    assert token, "no identity cookie issued"
    client.cookies.delete(COOKIE)
    return token, response.json()


async def external_id_of(client, token: str) -> str:
    """The Address.external_id the server maps this identity cookie to (read in the database)."""
    from conversations.webchat_identity import WebchatIdentity, _hash

    async with client.app.state.rt.sessionmaker() as session:
        return (await session.execute(select(WebchatIdentity.external_id).where(
            WebchatIdentity.token_hash == _hash(token)))).scalar_one()


class Person:
    """Posts to /chat/api/messages, waits for the bot (actions and deliveries included), reads
    /chat/api/history. Its identity is the cookie the server issues (asked for on first use, or
    at once with `await Person.joined(client)`); `uid` is the external id the server maps it to."""

    def __init__(self, client, drain_timeout: float = 60, token: str | None = None):
        self.client = client
        self.token = token
        self.uid: str | None = None
        self.seen = 0
        self.drain_timeout = drain_timeout

    @classmethod
    async def joined(cls, client, **options) -> "Person":
        person = cls(client, **options)
        await person.join()
        return person

    async def join(self) -> "Person":
        if self.token is None:
            self.token, _ = await new_identity(self.client)
        if self.uid is None:
            self.uid = await external_id_of(self.client, self.token)
        return self

    @property
    def headers(self) -> dict:
        return {"Cookie": f"{COOKIE}={self.token}"}

    async def post(self, text=None, choice=None, location=None) -> dict:
        await self.join()
        body = {"client_id": f"client-{next(_ids):06d}"}
        if text is not None:
            body["text"] = text
        if choice is not None:
            body["choice"] = choice
        if location is not None:
            body["location"] = list(location)
        response = await self.client.post("/chat/api/messages", json=body, headers=self.headers)
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

    async def history(self) -> list[dict]:
        await self.join()
        response = await self.client.get("/chat/api/history", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    async def bot_lines(self) -> list[dict]:
        return [m for m in await self.history() if m["from"] == "bot"]

    async def last(self) -> dict:
        return (await self.bot_lines())[-1]


def values(message: dict) -> list[str]:
    return [choice[0] for choice in message["choices"]]


def text_of(messages: list[dict]) -> str:
    return "\n".join(m["text"] for m in messages)
