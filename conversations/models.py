"""Contacts and their channel addresses, conversations, messages and the append-only event log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, JSONType, UTCDateTime, utcnow

# Conversation statuses. Only conversations.receive and handoff.transitions write them.
BOT, WAITING, ASSIGNED, CLOSED = "bot", "waiting", "assigned", "closed"
OPEN_STATUSES = (BOT, WAITING, ASSIGNED)

# Message directions and statuses.
INBOUND, OUTBOUND = "in", "out"
RECEIVED, QUEUED, SENDING, SENT, DELIVERED, READ, FAILED = (
    "received", "queued", "sending", "sent", "delivered", "read", "failed",
)
# A WhatsApp campaign send a crash left in doubt, until a status webhook confirms it or it is known
# never to have reached Meta (conversations/confirmations.py).
AWAITING = "awaiting"


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="fr")
    # None: not asked yet; True: agreed to keep answers; False: refused (talk to a human only).
    consent: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # "stop": no message is sent to this person any more, until they write again and restart.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Address(Base):
    """Where a contact is reached: channel + platform id (telegram chat id, phone, web chat uuid)."""

    __tablename__ = "addresses"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(128))
    # The platform account that received it (WhatsApp phone number id, bot id); used to answer.
    account: Mapped[str | None] = mapped_column(String(64), nullable=True)

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.external_id}"


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_org_status", "organisation_id", "status"),
                      # the inbox's history of closed conversations (migration 0010_inbox_push)
                      Index("ix_conversations_org_status_closed", "organisation_id", "status", "closed_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    address_id: Mapped[int] = mapped_column(ForeignKey("addresses.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12), default=BOT)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    # The flow engine's state (flow id, revision, step, answers), pinned to a flow revision.
    flow_state: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Structured summary shown to the worker (answers, estimates, places shown).
    summary: Mapped[dict] = mapped_column(JSONType, default=dict)
    outcome: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Platform retries of the same update are no-ops.
        UniqueConstraint("channel", "external_id", name="uq_messages_channel_external_id"),
        Index("ix_messages_outbox", "status", "direction"),
        # the inbox lists: each conversation's latest message (migration 0010_inbox_push)
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(3))
    # Inbound: the platform's update id (dedupe key). Outbound: null.
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Outbound: the platform's message id once sent (delivery statuses refer to it).
    platform_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="text")  # text, choice, location, attachment
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    author_worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Inbound: set once the bot (or the relay to the worker) has handled it.
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Event(Base):
    """Append-only log of what happened, named in the past tense (message_received, ...)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Media(Base):
    """A stored file (voice note, image, document) attached to a message. Personal data."""

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ErasureTombstone(Base):
    """What is left of an erased person: a keyed hash of one of their recent inbound messages'
    (channel, platform message id), so that a platform retrying that update after the erasure gets
    a duplicate — nobody created again, nobody welcomed again. Nothing personal, no id in clear;
    kept for the platforms' retry window (conversations/tombstones.py)."""

    __tablename__ = "erasure_tombstones"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
