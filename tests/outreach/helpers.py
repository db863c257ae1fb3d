"""Shared steps of the outreach tests: Telegram updates, a web chat person arriving with ?src=, a source."""

from __future__ import annotations

import itertools
import json
import re

from tests.admin.helpers import as_admin  # noqa: F401
from tests.webchat import Person

SECRET = "outreach-secret"
BOT_USERNAME = "allervers_test_bot"
_update_ids = itertools.count(5_000_001)


def telegram_settings(settings_for, fake, **overrides):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET, telegram_api_base=fake.base_url,
                        telegram_bot_username=BOT_USERNAME, campaign_quiet_enabled=False, campaign_tick_seconds=0.1,
                        **overrides)


def update(chat_id: int, text: str | None = None, callback: str | None = None) -> dict:
    update_id = next(_update_ids)
    user = {"id": chat_id, "is_bot": False, "first_name": "Alex", "language_code": "fr"}
    chat = {"id": chat_id, "type": "private", "first_name": "Alex"}
    if callback is not None:
        return {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": user, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1763800000, "chat": chat, "text": "…"}}}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1763800000, "chat": chat,
                                                "from": user, "text": text}}


async def telegram(client, chat_id: int, text: str | None = None, callback: str | None = None):
    response = await client.post("/bots/telegram/webhook", content=json.dumps(update(chat_id, text, callback)),
                                 headers={"Content-Type": "application/json",
                                          "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert response.status_code == 200, response.text
    await client.app.state.rt.drain(timeout=30)
    return response


class SourcePerson(Person):
    """A web chat person whose page was opened from /chat?src=<code> (the page sends it along)."""

    def __init__(self, client, src: str | None, **options):
        super().__init__(client, **options)
        self.src = src

    async def post(self, text=None, choice=None, location=None) -> dict:
        await self.join()
        from tests.webchat import _ids

        body = {"client_id": f"client-{next(_ids):06d}"}
        if self.src:
            body["src"] = self.src
        if text is not None:
            body["text"] = text
        if choice is not None:
            body["choice"] = choice
        response = await self.client.post("/chat/api/messages", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


async def create_source(client, csrf: str, **fields) -> tuple[int, str]:
    data = {"name": "Flyer marché", "kind": "flyer", "csrf_token": csrf, **fields}
    created = await client.post("/admin/sources", data=data)
    assert created.status_code == 303, created.text
    source_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = await client.get(f"/admin/sources/{source_id}")
    code = re.search(r"<code>([A-Z0-9]{8})</code>", page.text).group(1)
    return source_id, code


async def seed_audience(sessionmaker, organisation_id: int, count: int, first_chat: int,
                        channel: str = "telegram") -> list[int]:
    """`count` Telegram people who agreed to the service and to news, their conversation closed
    (what a campaign's audience looks like after months of use), written in a few statements:
    the speed test and the benchmark need thousands. Returns the chat ids (on WhatsApp: the numbers,
as ints, of the people's wa_id)."""
    from sqlalchemy import insert

    from kernel.database import utcnow
    from conversations.models import Address, Contact, Conversation
    from outreach.models import NEWS, Consent

    now = utcnow()
    chats = [first_chat + i for i in range(count)]
    async with sessionmaker() as session, session.begin():
        for start in range(0, count, 1000):
            part = chats[start:start + 1000]
            contact_ids = (await session.execute(
                insert(Contact).returning(Contact.id, sort_by_parameter_order=True),
                [{"organisation_id": organisation_id, "locale": "fr", "consent": True, "consent_at": now,
                  "last_inbound_at": now, "created_at": now} for _ in part])).scalars().all()
            address_ids = (await session.execute(
                insert(Address).returning(Address.id, sort_by_parameter_order=True),
                [{"contact_id": cid, "channel": channel, "external_id": str(chat)}
                 for cid, chat in zip(contact_ids, part)])).scalars().all()
            await session.execute(insert(Conversation), [
                {"organisation_id": organisation_id, "contact_id": cid, "address_id": aid, "status": "closed",
                 "flow_state": {}, "summary": {}, "created_at": now, "updated_at": now, "closed_at": now}
                for cid, aid in zip(contact_ids, address_ids)])
            await session.execute(insert(Consent), [
                {"contact_id": cid, "purpose": NEWS, "asked_at": now, "granted_at": now, "text_version": "news-2026-12"}
                for cid in contact_ids])
    return chats
