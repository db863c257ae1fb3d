"""Rows for inbox tests and the lists benchmark: many conversations, long timelines (bulk INSERTs)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from conversations.models import Address, Contact, Conversation, Event, Message
from handoff.models import Organisation, Worker


async def organisation_id(rt, slug: str = "demo") -> int:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Organisation.id).where(Organisation.slug == slug))).scalar_one()


async def worker_id(rt, email: str) -> int:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Worker.id).where(Worker.email == email))).scalar_one()


async def seed_conversations(rt, org_id: int, count: int, *, status: str = "waiting", assignee_id: int | None = None,
                             channel: str = "telegram", messages_each: int = 3, start: int = 0,
                             names: list[str] | None = None, when: datetime | None = None,
                             team_id: int | None = None, locale: str = "fr") -> list[int]:
    """`count` conversations of `org_id` with their contact, address and a few messages. Returns their ids."""
    when = when or datetime.now(timezone.utc)
    async with rt.sessionmaker() as session, session.begin():
        contacts = (await session.execute(insert(Contact).returning(Contact.id, sort_by_parameter_order=True), [
            {"organisation_id": org_id, "locale": locale, "consent": True, "created_at": when}
            for _ in range(count)])).scalars().all()
        addresses = (await session.execute(insert(Address).returning(Address.id, sort_by_parameter_order=True), [
            {"contact_id": c, "channel": channel,
             "external_id": f"3361{start + i:07d}" if channel == "whatsapp" else f"{channel}-{start + i}"}
            for i, c in enumerate(contacts)])).scalars().all()
        conversations = (await session.execute(insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True), [
            {"organisation_id": org_id, "contact_id": c, "address_id": a, "status": status,
             "assignee_id": assignee_id, "team_id": team_id, "flow_state": {},
             "summary": {"answers": {"topic": "logement", **({"prenom": names[i % len(names)]} if names else {})}},
             "created_at": when, "updated_at": when + timedelta(seconds=i),
             "closed_at": when + timedelta(seconds=i) if status == "closed" else None,
             "outcome": "Question répondue" if status == "closed" else None}
            for i, (c, a) in enumerate(zip(contacts, addresses))])).scalars().all()
        if messages_each:
            await session.execute(insert(Message), [
                {"conversation_id": v, "contact_id": c, "channel": channel, "direction": "in" if k % 2 == 0 else "out",
                 "kind": "text", "text": f"message {k}", "payload": {}, "status": "received" if k % 2 == 0 else "sent",
                 "attempts": 0, "created_at": when + timedelta(seconds=k)}
                for v, c in zip(conversations, contacts) for k in range(messages_each)])
        if status in ("waiting", "assigned", "closed"):
            await session.execute(insert(Event), [
                {"conversation_id": v, "type": "handoff_requested", "data": {}, "created_at": when}
                for v in conversations])
    return list(conversations)


async def seed_timeline(rt, conversation_id: int, count: int, *, handoff_at: int | None = None) -> list[int]:
    """`count` messages in one conversation, one second apart; a handoff event after message
    `handoff_at` when given. Returns the message ids, oldest first."""
    async with rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
        address = await session.get(Address, conversation.address_id)
    base = datetime.now(timezone.utc) + timedelta(seconds=1)  # after what the conversation holds
    async with rt.sessionmaker() as session, session.begin():
        ids = (await session.execute(insert(Message).returning(Message.id, sort_by_parameter_order=True), [
            {"conversation_id": conversation_id, "contact_id": conversation.contact_id, "channel": address.channel,
             "direction": "in" if k % 2 == 0 else "out", "kind": "text", "text": f"ligne {k:04d}", "payload": {},
             "status": "received" if k % 2 == 0 else "sent", "attempts": 0,
             "created_at": base + timedelta(seconds=k)} for k in range(count)])).scalars().all()
        if handoff_at is not None:
            await session.execute(insert(Event), [{"conversation_id": conversation_id, "type": "handoff_requested",
                                                   "data": {}, "created_at": base + timedelta(seconds=handoff_at, milliseconds=500)}])
    return sorted(ids)
