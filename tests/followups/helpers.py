"""Shared steps: a person on the fake Telegram reaches Camille; the worker's forms through real routes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select

from conversations.models import Conversation
from handoff.hours import PARIS
from tests.conftest import csrf_of, eventually, login

SECRET = "s3cret-token"
WORKER_EMAIL = "camille@demo.allervers.fr"
ADMIN_EMAIL = "admin@demo.allervers.fr"
PASSWORD = "allervers-demo"


def update(update_id: int, chat_id: int, text: str | None = None, callback: str | None = None) -> dict:
    user = {"id": chat_id, "is_bot": False, "first_name": "Alex", "language_code": "fr"}
    chat = {"id": chat_id, "type": "private", "first_name": "Alex"}
    if callback is not None:
        return {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": user, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1763800000, "chat": chat, "text": "…"}}}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1763800000, "chat": chat,
                                                "from": user, "text": text}}


async def post_update(client, body: dict):
    response = await client.post("/bots/telegram/webhook", content=json.dumps(body), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert response.status_code == 200, response.text
    return response


async def person_reaches_camille(client, fake, chat_id: int, first_update: int = 1) -> int:
    """/start, consent, "parler", "logement": the conversation is assigned to Camille. Returns its id."""
    n = first_update
    await post_update(client, update(n, chat_id, "/start"))
    await eventually(lambda: any("Êtes-vous d'accord" in t for t in fake.sent_texts(chat_id)))
    await post_update(client, update(n + 1, chat_id, callback="oui"))
    await eventually(lambda: any("Que voulez-vous faire" in t for t in fake.sent_texts(chat_id)))
    await post_update(client, update(n + 2, chat_id, callback="parler"))
    await eventually(lambda: any("C'est à quel sujet" in t for t in fake.sent_texts(chat_id)))
    await post_update(client, update(n + 3, chat_id, callback="logement"))
    await eventually(lambda: any("Camille" in t for t in fake.sent_texts(chat_id)))
    rt = client.app.state.rt
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Conversation.id).order_by(Conversation.id.desc()))).scalar()


async def as_worker(client, email: str = WORKER_EMAIL) -> str:
    response = await login(client, email, PASSWORD)
    assert response.status_code == 303
    return csrf_of((await client.get("/inbox")).text)


def next_week_day(days: int = 9) -> datetime:
    """A weekday afternoon (Paris) some days ahead, not a Sunday/holiday nor the day after one."""
    from followups.timing import quiet_day

    day = datetime.now(PARIS).date() + timedelta(days=days)
    while quiet_day(day) or quiet_day(day - timedelta(days=1)):
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 14, 30, tzinfo=PARIS)
