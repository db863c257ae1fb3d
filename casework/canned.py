"""Canned answers: search (an organisation's approved ones, by title or text), variables filled from
the conversation, the demo organisation's starter library (casework/data/canned_demo.yaml).

Variables: {prénom} (the person's first name, when an answer gave it), {lieu} (their commune or the
place they chose), {date} (today, Paris time), {conseiller} (the worker's first name). A variable
without a value stays as it is, visible in the reply box for the worker to edit: nothing is sent
blank, and nothing is sent at all until the worker presses « Envoyer »."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from casework.models import APPROVED, CannedAnswer

PARIS = ZoneInfo("Europe/Paris")
DEMO_LIBRARY = Path(__file__).parent / "data" / "canned_demo.yaml"
VARIABLE = re.compile(r"\{([^{}\s]{1,30})\}")
KNOWN = ("prénom", "lieu", "date", "conseiller")
MAX_RESULTS = 20
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
          "novembre", "décembre")
# Answers that may hold the person's first name, or where they are (the flows' keys).
NAME_KEYS = ("first_name", "prenom", "prénom", "name")
PLACE_KEYS = ("commune", "place", "city", "lieu")


def spoken_date(day: date) -> str:
    """« mardi 1 décembre 2026 »"""
    return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def _value(answer) -> str | None:
    if isinstance(answer, dict):
        answer = answer.get("label") or answer.get("name") or answer.get("nom")
    if isinstance(answer, str) and answer.strip():
        return answer.strip()[:80]
    return None


def values_for(summary: dict | None, worker_first_name: str, now: datetime | None = None) -> dict[str, str]:
    """The variables' values for one conversation (only those known)."""
    answers = (summary or {}).get("answers") or {}
    found = {"date": spoken_date((now or utcnow()).astimezone(PARIS).date()), "conseiller": worker_first_name}
    for key in NAME_KEYS:
        if (value := _value(answers.get(key))) is not None:
            found["prénom"] = value
            break
    for key in PLACE_KEYS:
        if (value := _value(answers.get(key))) is not None:
            found["lieu"] = value
            break
    return found


def fill(text: str, values: dict[str, str]) -> str:
    """Replace the known variables; leave the others as they are ({prénom} stays {prénom})."""
    return VARIABLE.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def missing(text: str) -> list[str]:
    """Variables still in the text (for the worker to fill in)."""
    return list(dict.fromkeys(VARIABLE.findall(text)))


def _escape_like(query: str) -> str:
    return query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(session: AsyncSession, organisation_id: int, query: str, limit: int = MAX_RESULTS) -> list[CannedAnswer]:
    """The organisation's approved answers whose title or text holds every word of the query
    (case-insensitive), titles matching first. An empty query: all of them, by title."""
    statement = select(CannedAnswer).where(CannedAnswer.organisation_id == organisation_id,
                                           CannedAnswer.status == APPROVED)
    words = [w for w in query.lower().split() if w][:8]
    for word in words:
        pattern = f"%{_escape_like(word)}%"
        statement = statement.where(or_(func.lower(CannedAnswer.title).like(pattern, escape="\\"),
                                        func.lower(CannedAnswer.text).like(pattern, escape="\\")))
    rows = list((await session.execute(statement.order_by(CannedAnswer.title).limit(200))).scalars())
    if words:
        rows.sort(key=lambda row: (not all(w in row.title.lower() for w in words), row.title.lower()))
    return rows[:limit]


def demo_library() -> list[dict]:
    with DEMO_LIBRARY.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["answers"]


async def seed_library(session: AsyncSession, organisation_id: int) -> int:
    """The starter answers, once (an organisation that has any canned answer gets none)."""
    if (await session.execute(select(CannedAnswer.id).where(
            CannedAnswer.organisation_id == organisation_id).limit(1))).first():
        return 0
    entries = demo_library()
    for entry in entries:
        checked = entry.get("checked_on")
        session.add(CannedAnswer(organisation_id=organisation_id, title=entry["title"], text=entry["text"].strip(),
                                 source_url=entry.get("source_url", ""), status=APPROVED,
                                 checked_on=checked if isinstance(checked, date) else None))
    return len(entries)
