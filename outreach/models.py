"""Outreach tables: sources (flyers, partners, places...), which contact came through which source,
consents per purpose, campaigns and their recipients (one row per person, with its own state)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, JSONType, UTCDateTime, utcnow

SOURCE_KINDS = ("flyer", "partner", "france_services", "place", "social")
NEWS = "news"  # the purpose "recevoir des nouvelles de temps en temps"

# Campaign statuses.
DRAFT, SCHEDULED, SENDING, PAUSED, CANCELLED, DONE = "draft", "scheduled", "sending", "paused", "cancelled", "done"
# Recipient states: waiting for its turn, its outbox row written, left out when its turn came.
R_PENDING, R_QUEUED, R_SKIPPED = "pending", "queued", "skipped"


class Source(Base):
    __tablename__ = "outreach_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20), default="flyer")
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    # A commune (INSEE code) or a département code the source is about.
    territory_code: Mapped[str | None] = mapped_column(String(8), nullable=True)
    territory_label: Mapped[str] = mapped_column(String(120), default="")
    # Where the conversation starts: a flow id and, for the places flow, a need.
    start_flow: Mapped[str | None] = mapped_column(String(60), nullable=True)
    start_need: Mapped[str | None] = mapped_column(String(60), nullable=True)
    # The flyer's three lines (plain French, shown under the organisation's name).
    flyer_lines: Mapped[list] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContactSource(Base):
    """A conversation that began (or went on) through a source: the first one and every later one."""

    __tablename__ = "contact_sources"
    __table_args__ = (UniqueConstraint("conversation_id", "source_id", name="uq_contact_sources_conversation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("outreach_sources.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    first: Mapped[bool] = mapped_column(default=False)  # the person's first source
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class Consent(Base):
    """A consent to one purpose: asked (asked_at), granted (granted_at, with the version of the text
    the person saw), withdrawn (withdrawn_at). A person is in a campaign only while granted."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("contact_id", "purpose", name="uq_consents_contact_purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    asked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    text_version: Mapped[str] = mapped_column(String(20), default="")
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(12), default=DRAFT, index=True)
    # {"source_ids": [...], "territory": "44", "topic": "logement", "language": "fr", "inactive_days": 30}
    audience: Mapped[dict] = mapped_column(JSONType, default=dict)
    # {"telegram": {"text", "buttons": [[value, label]]}, "whatsapp": {"template", "params": [...]},
    #  "webchat": {"text"}}
    messages: Mapped[dict] = mapped_column(JSONType, default=dict)
    reminder_text: Mapped[str] = mapped_column(Text, default="")
    reminder_after_hours: Mapped[int] = mapped_column(Integer, default=0)  # 0: no reminder
    reminder_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CampaignRecipient(Base):
    """One person of a campaign. `state` moves pending -> queued (its outbox row written, in the
    same transaction) or skipped (stopped, consent withdrawn, no address): a crash leaves each
    recipient either before or after that transaction, never both, never neither."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id", name="uq_campaign_recipients_contact"),
        Index("ix_campaign_recipients_state", "campaign_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(10), default=R_PENDING)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(40), default="")
    reminder_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"),
                                                            nullable=True)
    reminder_state: Mapped[str] = mapped_column(String(10), default="")  # "" | pending | queued | skipped
