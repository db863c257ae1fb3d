"""Organisations, teams, territories and the workers who answer people."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, JSONType, UTCDateTime, utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # When a human answers, in plain words ("du lundi au vendredi, 9 h - 17 h").
    opening_hours_text: Mapped[str] = mapped_column(String(200), default="du lundi au vendredi, de 9 h à 17 h")
    # WhatsApp: the phone number id this organisation answers from, and its template names.
    whatsapp_phone_number_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    whatsapp_templates: Mapped[dict] = mapped_column(JSONType, default=dict)
    # Set in the admin console. retention_days None: the deployment's setting applies.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    default_language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    # When the team answers: {"mon": [["09:00", "12:30"], ["13:30", "17:00"]], ...} (days mon..sun,
    # local time, at most two ranges a day); empty: no hours set. Read by routing (handoff/hours.py).
    opening_hours: Mapped[dict] = mapped_column(JSONType, default=dict, server_default="{}")
    # Closed on French public holidays (the `holidays` package).
    closed_on_holidays: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # Said to a person who writes outside the hours (plain French); empty: the default text.
    out_of_hours_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A conversation waiting longer than this (minutes of the team's open hours) is offered to the
    # next team and flagged to team leads (handoff/escalation.py); 0: never.
    escalate_after_minutes: Mapped[int] = mapped_column(Integer, default=30, server_default="30")


class Territory(Base):
    """A département or commune a team covers (INSEE codes)."""

    __tablename__ = "territories"

    id: Mapped[int] = mapped_column(primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(8))
    # "commune" (INSEE code) or "departement" (its number: "44", "2A", "971").
    kind: Mapped[str] = mapped_column(String(12), default="commune", server_default="commune")
    label: Mapped[str] = mapped_column(String(120), default="")


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(String(80))
    job_title: Mapped[str] = mapped_column(String(120), default="travailleuse sociale")
    structure: Mapped[str] = mapped_column(String(200), default="")
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Presence: online while the inbox is open or the worker says so.
    is_online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # A team lead also sees the conversations of their team in the inbox.
    is_team_lead: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # What the worker offers: language codes ("fr", "en", ...) and topics (free words: "logement").
    languages: Mapped[list] = mapped_column(JSONType, default=lambda: ["fr"], server_default='["fr"]')
    topics: Mapped[list] = mapped_column(JSONType, default=list, server_default="[]")
    # When the worker is usually there: same shape as Team.opening_hours.
    schedule: Mapped[dict] = mapped_column(JSONType, default=dict, server_default="{}")
    # Invited (no password yet, not active) until the invitation link is used; deactivated by an admin.
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    @property
    def state(self) -> str:
        """"active", "invited" (has not used the link yet) or "deactivated"."""
        if self.is_active:
            return "active"
        return "deactivated" if self.deactivated_at is not None else "invited"


class WorkerInvitation(Base):
    """A one-time link: an invitation (first password) or a password reset. Only the SHA-256 of the
    token is stored; it expires, and is used once (`used_at`)."""

    __tablename__ = "worker_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(12), default="invite")  # "invite" | "reset"
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
