"""Canned answers (a vetted library per organisation) and referrals (to another organisation of the
deployment, or to an outside partner from the directory).

A referral row holds no personal data (no note, no summary): those travel in the conversation's
events and flow state, which go with the person on erasure. The row stays for the statistics
(`casework.stats.referral_counts`)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, UTCDateTime, utcnow

PROPOSED, APPROVED, ARCHIVED = "proposed", "approved", "archived"
STATUSES = (PROPOSED, APPROVED, ARCHIVED)

# Referral kinds and states.
TO_ORGANISATION, TO_PARTNER = "organisation", "partner"
KINDS = (TO_ORGANISATION, TO_PARTNER)
ASKED, ACCEPTED, DECLINED, RECORDED = "asked", "accepted", "declined", "recorded"
WITHDRAWN = "withdrawn"  # still asked when the conversation closed: the question lapsed


class CannedAnswer(Base):
    __tablename__ = "canned_answers"
    __table_args__ = (Index("ix_canned_answers_org_status", "organisation_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    # Plain French with variables: {prénom}, {lieu}, {date}, {conseiller} (casework.canned.fill).
    text: Mapped[str] = mapped_column(Text)
    source_url: Mapped[str] = mapped_column(String(500), default="")
    checked_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(12), default=PROPOSED)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Referral(Base):
    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_org_created", "organisation_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The organisation that referred (its statistics count the row).
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"),
                                                        nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "organisation" | "partner"
    status: Mapped[str] = mapped_column(String(12))  # asked / accepted / declined (organisation); recorded
    to_organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"),
                                                           nullable=True)
    # The partner, as the directory knows it (data·inclusion ids; no foreign key: an import may drop it).
    structure_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    service_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    partner_name: Mapped[str] = mapped_column(String(300), default="")
    method: Mapped[str] = mapped_column(String(12), default="")  # "copy" | "email" (partner)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
