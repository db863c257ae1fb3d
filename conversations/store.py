"""Small writes shared by the inbound path and the handoff transitions (inside a caller's transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, event as sa_event, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kernel.database import insert_for, one_of, utcnow
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
    new_contact: bool = False  # a person never seen before (their first message): the welcome says the languages
    # For a button press: the conversation's newest outbound rows (platform id, payload), newest
    # first, read once (recent_outbound) for its label and for the old-question check.
    recent: list[tuple[str | None, dict]] | None = None
    # WhatsApp: whether the person had outbound rows still to send when found (find_threads; None:
    # not looked at), which window.held_messages then reads.
    unsent: bool | None = None


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
        # RETURNING makes SQLAlchemy write them as one multi-row INSERT ("insertmanyvalues", as
        # insert_inbound_many): without it asyncpg's executemany runs the statement once per row
        session.execute(insert(Event.__table__).returning(Event.__table__.c.id), rows).all()


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending_events(session: Session) -> None:
    session.info.pop(PENDING_EVENTS, None)
    session.info.pop(TRANSACTION_MEMO, None)


TRANSACTION_MEMO = "allervers_transaction_memo"


def transaction_memo(session: AsyncSession) -> dict:
    """A dict that lives as long as the session's transaction (what a batch looks up once)."""
    return session.sync_session.info.setdefault(TRANSACTION_MEMO, {})


@sa_event.listens_for(Session, "after_commit")
def _forget_transaction_memo(session: Session) -> None:
    session.info.pop(TRANSACTION_MEMO, None)


async def queue_message(session: AsyncSession, thread: Thread, message: OutboundMessage, pending: Pending,
                        worker_id: int | None = None, flush: bool = False) -> Message:
    """An outbound message is a row before it is a network call (flushed with the transaction,
    or at once when the caller needs its id)."""
    payload: dict = {"locale": message.locale or "fr"}  # the language of the text (the web chat's lang and dir)
    if message.choices:
        payload["choices"] = [[c.value, c.title] for c in message.choices]
    if message.request_location:
        payload["request_location"] = True
    if message.attachment_path:
        payload["attachment_path"] = message.attachment_path
    if message.attachment is not None:
        payload["attachment"] = {"kind": message.attachment.kind, "content_type": message.attachment.content_type,
                                 "media_id": message.attachment.media_id}
    if message.links:  # read back by conversations/deliver.py (payload "links", "venue")
        payload["links"] = [[link.title, link.url] for link in message.links]
    if message.venue is not None:
        venue = message.venue
        payload["venue"] = {"latitude": venue.latitude, "longitude": venue.longitude, "title": venue.title,
                            "address": venue.address}
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


async def insert_inbound_many(session: AsyncSession, rows: list[tuple[Thread, dict]]) -> dict[tuple[str, str], int]:
    """Insert inbound messages in one statement (SQLAlchemy's "insertmanyvalues": one cached
    statement whatever the number of rows); returns {(channel, external id): new id}. A message
    whose (channel, external_id) is already stored (a platform retry) is skipped, so absent here."""
    insert = insert_for(session)
    now = utcnow()
    statement = (
        insert(Message.__table__)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Message.id, Message.channel, Message.external_id)
    )
    params = [dict(conversation_id=thread.conversation.id, contact_id=thread.contact.id, direction=INBOUND,
                   status=RECEIVED, created_at=now, attempts=0, **values) for thread, values in rows]
    result = await session.execute(statement, params)
    return {(channel, external_id): id_ for id_, channel, external_id in result.all()}


async def find_threads(session: AsyncSession, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Thread]:
    """The people behind (channel, user id) keys and their open conversations, in one query.
    Someone known without an open conversation gets a new one (written in one flush)."""
    by_channel: dict[str, list[str]] = {}
    for channel, user_id in keys:
        by_channel.setdefault(channel, []).append(user_id)
    from conversations.window import unsent_column

    rows = (
        await session.execute(
            select(Address, Contact, Conversation, unsent_column(Contact.id, Address.channel))
            .join(Contact, Contact.id == Address.contact_id)
            .outerjoin(Conversation, and_(Conversation.contact_id == Contact.id, Conversation.status != CLOSED))
            .where(or_(*(and_(Address.channel == channel, one_of(session, Address.external_id, user_ids))
                         for channel, user_ids in by_channel.items())))
            .order_by(Conversation.id)
        )
    ).all()
    threads: dict[tuple[str, str], Thread] = {}
    for address, contact, conversation, unsent in rows:  # the newest open conversation wins
        threads[(address.channel, address.external_id)] = Thread(contact, address, conversation, unsent=bool(unsent))
    unopened = [thread for thread in threads.values() if thread.conversation is None]
    for thread in unopened:
        thread.conversation = _new_conversation(thread.contact, thread.address)
        thread.created = True
        session.add(thread.conversation)
    if unopened:
        await session.flush()
    return threads


def _new_conversation(contact: Contact, address: Address) -> Conversation:
    return Conversation(**_conversation_values(contact, address, utcnow()))


def _conversation_values(contact: Contact, address: Address, now: datetime) -> dict:
    """A person's new conversation, with the bot."""
    return dict(organisation_id=contact.organisation_id, contact_id=contact.id, address_id=address.id,
                status=BOT, flow_state={}, summary={}, created_at=now, updated_at=now)


@dataclass
class NewPerson:
    organisation_id: int
    channel: str
    user_id: str
    account: str | None
    locale: str


async def create_threads(session: AsyncSession, people: list[NewPerson]) -> dict[tuple[str, str], Thread]:
    """Contacts, addresses and conversations for people never seen: three INSERTs, whatever their
    number, each an ORM bulk INSERT … RETURNING (the rows come back as the session's objects, in
    the order given, without a unit-of-work flush apiece)."""
    now: datetime = utcnow()
    contacts = await _insert_returning(session, Contact, [
        dict(organisation_id=p.organisation_id, locale=p.locale, created_at=now) for p in people])
    addresses = await _insert_returning(session, Address, [
        dict(contact_id=contact.id, channel=p.channel, external_id=p.user_id, account=p.account)
        for p, contact in zip(people, contacts)])
    conversations = await _insert_returning(session, Conversation, [
        _conversation_values(contact, address, now) for contact, address in zip(contacts, addresses)])
    return {(p.channel, p.user_id): Thread(contact, address, conversation, created=True, new_contact=True)
            for p, contact, address, conversation in zip(people, contacts, addresses, conversations)}


async def _insert_returning(session: AsyncSession, model, rows: list[dict]) -> list:
    statement = insert(model).returning(model, sort_by_parameter_order=True)
    return list((await session.scalars(statement, rows)).all())


RECENT_OUTBOUND = 50  # outbound rows a button press is looked up in (its question, its label)
LABEL_LOOKBACK = 20  # of which the ones whose buttons give the label


async def recent_outbound(session: AsyncSession, conversation_ids) -> dict[int, list[tuple[str | None, dict]]]:
    """The newest RECENT_OUTBOUND outbound rows of each conversation (platform id, payload), newest
    first: one query for every button press of a batch (was two per press: the label, then the
    old-question check, each reading the same rows)."""
    ids = sorted(set(conversation_ids))
    if not ids:
        return {}
    ranked = (select(Message.conversation_id, Message.platform_message_id, Message.payload,
                     func.row_number().over(partition_by=Message.conversation_id,
                                            order_by=Message.id.desc()).label("rank"))
              .where(one_of(session, Message.conversation_id, ids), Message.direction == OUTBOUND).subquery())
    rows = await session.execute(select(ranked.c.conversation_id, ranked.c.platform_message_id, ranked.c.payload)
                                 .where(ranked.c.rank <= RECENT_OUTBOUND)
                                 .order_by(ranked.c.conversation_id, ranked.c.rank))
    found: dict[int, list[tuple[str | None, dict]]] = {conversation_id: [] for conversation_id in ids}
    for conversation_id, platform_id, payload in rows:
        found[conversation_id].append((platform_id, payload or {}))
    return found


def label_in(recent: list[tuple[str | None, dict]], value: str) -> str | None:
    """The label of the button whose value is `value`, from the newest of the recent rows offering it."""
    for _, payload in recent[:LABEL_LOOKBACK]:
        for choice in payload.get("choices") or ():
            if len(choice) == 2 and choice[0] == value:
                return str(choice[1])
    return None


async def load_thread(session: AsyncSession, conversation_id: int) -> Thread | None:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None:
        return None
    contact = await session.get(Contact, conversation.contact_id)
    address = await session.get(Address, conversation.address_id)
    return Thread(contact, address, conversation)
