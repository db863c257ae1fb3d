"""Small writes shared by the inbound path and the handoff transitions (inside a caller's transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, event as sa_event, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from allervers.database import utcnow
from bots.base import OutboundMessage
from conversations.models import (
    BOT,
    CLOSED,
    INBOUND,
    OUTBOUND,
    QUEUED,
    RECEIVED,
    SENDING,
    Address,
    Contact,
    Conversation,
    Event,
    Message,
)


@dataclass
class Thread:
    """What the inbound path works on: one person, where they wrote from, their open conversation."""

    contact: Contact
    address: Address
    conversation: Conversation
    created: bool = False


@dataclass
class Pending:
    """Work to do after the transaction commits (never inside it)."""

    outbound: list[int] = field(default_factory=list)  # contacts with messages to deliver
    notify: list[tuple[str, dict]] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    # Contacts whose new rows may be claimed in the producing transaction and sent right after
    # commit (nothing older is waiting for them): contact id -> the rows, in order.
    direct: dict[int, list] = field(default_factory=dict)
    direct_to: dict[int, tuple] = field(default_factory=dict)  # contact id -> (address, organisation id)
    # After an erasure: the last message (channel, user id, account, text) and the files to remove.
    farewell: tuple[str, str, str | None, str] | None = None
    erase_contact_id: int | None = None
    files_to_delete: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls) -> "Pending":
        return cls()


def add_event(session: AsyncSession, conversation: Conversation, type_: str, data: dict | None = None,
              worker_id: int | None = None, pending: Pending | None = None) -> None:
    """Append a past-tense event. Events of a transaction are written together at commit
    (one multi-row INSERT: the event log is append-only, nobody needs their ids before)."""
    log_event(session, conversation.id, type_, data, worker_id)
    if pending is not None:
        pending.notify.append((f"org:{conversation.organisation_id}", {"event": type_, "conversation": conversation.id}))
        pending.notify.append((f"conversation:{conversation.id}", {"event": type_, "conversation": conversation.id}))


PENDING_EVENTS = "allervers_pending_events"


def log_event(session: AsyncSession, conversation_id: int, type_: str, data: dict | None = None,
              worker_id: int | None = None) -> None:
    """Queue an event row, written with the transaction's commit."""
    session.sync_session.info.setdefault(PENDING_EVENTS, []).append(
        {"conversation_id": conversation_id, "type": type_, "data": data or {}, "worker_id": worker_id,
         "created_at": utcnow()})


@sa_event.listens_for(Session, "before_commit")
def _write_pending_events(session: Session) -> None:
    rows = session.info.pop(PENDING_EVENTS, None)
    if rows:
        session.flush()
        session.execute(insert(Event), rows)


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending_events(session: Session) -> None:
    session.info.pop(PENDING_EVENTS, None)


async def queue_message(session: AsyncSession, thread: Thread, message: OutboundMessage, pending: Pending,
                        worker_id: int | None = None, flush: bool = False) -> Message:
    """An outbound message is a row before it is a network call (flushed with the transaction,
    or at once when the caller needs its id)."""
    payload: dict = {}
    if message.choices:
        payload["choices"] = [[c.value, c.title] for c in message.choices]
    if message.request_location:
        payload["request_location"] = True
    if message.attachment_path:
        payload["attachment_path"] = message.attachment_path
    if message.attachment is not None:
        payload["attachment"] = {"kind": message.attachment.kind, "content_type": message.attachment.content_type,
                                 "media_id": message.attachment.media_id}
    row = Message(
        conversation_id=thread.conversation.id,
        contact_id=thread.contact.id,
        channel=thread.address.channel,
        direction=OUTBOUND,
        kind="attachment" if (message.attachment_path or message.attachment) else "text",
        text=message.text,
        payload=payload,
        author_worker_id=worker_id,
        status=QUEUED,
        attempts=0,
        created_at=utcnow(),
    )
    direct = pending.direct.get(thread.contact.id)
    if direct is not None:
        row.status, row.attempts = SENDING, 1  # claimed now: one transaction less per update
        direct.append(row)
    session.add(row)
    if flush:
        await session.flush()
    if thread.contact.id not in pending.outbound:
        pending.outbound.append(thread.contact.id)
    pending.notify.append((f"conversation:{thread.conversation.id}", {"event": "message_queued",
                                                                     "conversation": thread.conversation.id}))
    return row


def _insert(session: AsyncSession):
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


async def insert_inbound(session: AsyncSession, thread: Thread, values: dict) -> int | None:
    """Insert an inbound message; None if (channel, external_id) was already stored (a retry)."""
    insert = _insert(session)
    statement = (
        insert(Message)
        .values(conversation_id=thread.conversation.id, contact_id=thread.contact.id, direction=INBOUND,
                status=RECEIVED, created_at=utcnow(), attempts=0, **values)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Message.id)
    )
    return (await session.execute(statement)).scalar()


async def find_thread(session: AsyncSession, channel: str, user_id: str) -> Thread | None:
    """The person behind (channel, user id) and their open conversation, in one query."""
    row = (
        await session.execute(
            select(Address, Contact, Conversation)
            .join(Contact, Contact.id == Address.contact_id)
            .outerjoin(Conversation, and_(Conversation.contact_id == Contact.id, Conversation.status != CLOSED))
            .where(Address.channel == channel, Address.external_id == user_id)
            .order_by(Conversation.id.desc()).limit(1)
        )
    ).first()
    if row is None:
        return None
    address, contact, conversation = row
    if conversation is None:
        conversation = await open_conversation(session, contact, address)
        return Thread(contact, address, conversation, created=True)
    return Thread(contact, address, conversation)


async def open_conversation(session: AsyncSession, contact: Contact, address: Address) -> Conversation:
    now = utcnow()
    conversation = Conversation(organisation_id=contact.organisation_id, contact_id=contact.id, address_id=address.id,
                                status=BOT, flow_state={}, summary={}, created_at=now, updated_at=now)
    session.add(conversation)
    await session.flush()
    return conversation


async def create_thread(session: AsyncSession, organisation_id: int, channel: str, user_id: str,
                        account: str | None, locale: str) -> Thread:
    now: datetime = utcnow()
    contact = Contact(organisation_id=organisation_id, locale=locale, created_at=now)
    session.add(contact)
    await session.flush()
    address = Address(contact_id=contact.id, channel=channel, external_id=user_id, account=account)
    session.add(address)
    await session.flush()
    conversation = await open_conversation(session, contact, address)
    return Thread(contact, address, conversation, created=True)


async def load_thread(session: AsyncSession, conversation_id: int) -> Thread | None:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    contact = await session.get(Contact, conversation.contact_id)
    address = await session.get(Address, conversation.address_id)
    return Thread(contact, address, conversation)
