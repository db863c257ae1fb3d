"""Appointments agreed with a person and follow-up messages, each a row the scheduler claims once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, UTCDateTime, utcnow

# Appointment statuses; its reminder's statuses.
PLANNED, CANCELLED = "planned", "cancelled"
# Reminder / follow-up statuses: waiting for their time, sent (the outbox row is queued in the same
# transaction), skipped (stop, too late), none (no reminder possible), answered (follow-ups only).
SCHEDULED, SENT, SKIPPED, NONE, ANSWERED = "scheduled", "sent", "skipped", "none", "answered"

# The person's answers to "Ça a marché ?" (button values are "fu:<id>:<answer>").
ANSWERS = ("yes", "not_yet", "help")
# Outcomes of handoff/inbox.py OUTCOMES that imply a next step: a follow-up may be offered.
NEXT_STEP_OUTCOMES = ("oriented", "claim_started", "appointment")


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (Index("ix_appointments_reminder", "reminder_status", "remind_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    place_name: Mapped[str] = mapped_column(String(200), default="")
    place_address: Mapped[str] = mapped_column(String(300), default="")
    place_id: Mapped[str | None] = mapped_column(String(200), nullable=True)  # a directory place shown
    map_link: Mapped[str] = mapped_column(String(600), default="")
    status: Mapped[str] = mapped_column(String(12), default=PLANNED)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reminder_status: Mapped[str] = mapped_column(String(12), default=SCHEDULED)
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Followup(Base):
    __tablename__ = "followups"
    __table_args__ = (Index("ix_followups_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))  # the closing outcome's key (NEXT_STEP_OUTCOMES)
    days: Mapped[int] = mapped_column(default=7)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(12), default=SCHEDULED)
    agreed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answer: Mapped[str | None] = mapped_column(String(12), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
