"""What the inbox pages show, computed apart from the routes: times in Paris words, the summary's
answers in the flows' words, the timeline in pages, the lists with their search.

The words come from handoff/inbox_labels.yaml and the flows' own button labels (no French here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from markupsafe import Markup
from sqlalchemy import and_, func, or_, select

from conversations.models import ASSIGNED, CLOSED, WAITING, Address, Contact, Conversation, Event, Message
from words.catalogue import direction, language_of, own_name

PARIS = ZoneInfo("Europe/Paris")
PAGE_SIZE = 50  # messages per page of a timeline
LIST_LIMIT = 50  # cards shown per list (the search narrows the rest)
HISTORY_LIMIT = 50  # closed conversations shown per page of the history
CHANNELS = ("telegram", "whatsapp", "webchat")
VIEWS = ("all", "waiting", "mine", "team", "closed")
HIDDEN_EVENTS = {"message_received", "message_sent", "worker_replied", "flow_started", "flow_ended",
                 "action_requested"}
NAME_KEYS = ("prenom", "first_name", "prénom")


@lru_cache(maxsize=1)
def words() -> dict:
    with open(Path(__file__).with_name("inbox_labels.yaml"), encoding="utf-8") as file:
        return yaml.safe_load(file)


# Times ----------------------------------------------------------------------------------------
def paris_time(value: datetime | None, now: datetime | None = None) -> str:
    """« aujourd'hui 14 h 05 », « hier 9 h 30 », « 3 déc. 14 h 05 », « 3 déc. 2025 14 h 05 »."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # an ISO 8601 instant kept in JSON (a summary block's computed_at)
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    local = value.astimezone(PARIS)
    today = (now or datetime.now(timezone.utc)).astimezone(PARIS).date()
    clock = f"{local.hour} h {local.minute:02d}"
    w = words()
    if local.date() == today:
        return f"{w['today']} {clock}"
    if local.date() == today - timedelta(days=1):
        return f"{w['yesterday']} {clock}"
    day = f"{local.day} {w['months'][local.month - 1]}"
    if local.year != today.year:
        day += f" {local.year}"
    return f"{day} {clock}"


def paris_iso(value: datetime | None) -> str:
    """For <time datetime="...">: the instant in ISO 8601 (UTC)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def paris_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a Paris calendar day starts and ends at."""
    start = datetime.combine(day, time(0), tzinfo=PARIS)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=PARIS)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def install_filters(env) -> None:
    """Jinja filters of the inbox (installed once on the app's environment)."""
    if "paris" in env.filters:
        return
    env.filters["paris"] = paris_time
    env.filters["paris_iso"] = paris_iso
    env.filters["channel_label"] = lambda code: words()["channels"].get(code or "", code or "")
    env.filters["language_label"] = lambda code: words()["languages"].get((code or "fr").split("-")[0], code or "")
    env.filters["language_badge"] = language_badge
    env.filters["reason_label"] = reason_label


def reason_label(code: str | None) -> str:
    """A reason the app stored (a conversation's outcome, a message's error) in the inbox's words."""
    return words()["reasons"].get(code or "", code or "")


def language_badge(code: str | None) -> Markup:
    """The person's language by its own name, marked up so that screen readers read it in that
    language: "🌐 English" (the globe hidden from them). A French name in `title` for workers."""
    language = language_of(code)
    return Markup('<span aria-hidden="true">🌐</span> <span lang="{}" dir="{}">{}</span>').format(
        language, direction(language), own_name(language))


# The summary ----------------------------------------------------------------------------------
_engine_labels: dict[int, tuple[object, dict]] = {}


def choice_labels(engine) -> dict[str, dict[str, str]]:
    """answer key -> {button value: button label}, from the engine's flows (cached per engine)."""
    cached = _engine_labels.get(id(engine))
    if cached is not None and cached[0] is engine:
        return cached[1]
    labels: dict[str, dict[str, str]] = {}
    for flow in getattr(engine, "flows", {}).values():
        for step in flow.steps.values():
            if step.save and step.buttons:
                target = labels.setdefault(step.save, {})
                for button in step.buttons:
                    label = button.label if isinstance(button.label, str) else (
                        button.label.get("fr") if isinstance(button.label, dict) else str(button.label))
                    target.setdefault(button.value, label)
    if len(_engine_labels) > 64:
        _engine_labels.clear()
    _engine_labels[id(engine)] = (engine, labels)
    return labels


def readable_value(value, choices: dict[str, str] | None) -> str:
    if isinstance(value, dict):
        return str(value.get("label") or value.get("name") or "…")
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, list):
        return ", ".join(readable_value(v, choices) for v in value)
    if choices and str(value) in choices:
        return choices[str(value)]
    return "" if value is None else str(value)


def answer_rows(engine, summary: dict) -> list[tuple[str, str]]:
    """The answers of the summary a block does not already show, as (label, value) in French."""
    answers = (summary or {}).get("answers") or {}
    w = words()
    covered = set(w.get("hidden", []))
    for block in (summary or {}).values():
        if isinstance(block, dict) and block.get("covers"):
            covered.update(block["covers"])
    labels = choice_labels(engine)
    rows = []
    for key, value in answers.items():
        if key in covered:
            continue
        label = w["answers"].get(key) or key.replace("_", " ").capitalize()
        rows.append((label, readable_value(value, labels.get(key))))
    return rows


def first_name_of(summary: dict | None) -> str | None:
    answers = (summary or {}).get("answers") or {}
    for key in NAME_KEYS:
        value = answers.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


# The timeline, in pages -----------------------------------------------------------------------
@dataclass
class TimelinePage:
    items: list[dict]
    older_cursor: int | None  # the id of the first message shown, when older ones exist
    since: int | None  # the first message id of the live region (its refreshes keep it)


def _merge(messages, events) -> list[dict]:
    items = [{"at": m.created_at, "kind": "message", "message": m} for m in messages]
    items += [{"at": e.created_at, "kind": "event", "event": e} for e in events if e.type not in HIDDEN_EVENTS]
    items.sort(key=lambda item: (item["at"] or datetime.min.replace(tzinfo=timezone.utc),
                                 0 if item["kind"] == "message" else 1))
    return items


async def handoff_start(session, conversation_id: int) -> datetime | None:
    """When the person first asked for a human in this conversation (the worker's part starts)."""
    return (await session.execute(select(func.min(Event.created_at)).where(
        Event.conversation_id == conversation_id, Event.type == "handoff_requested"))).scalar()


async def latest_page(session, conversation_id: int, since: int | None = None,
                      page_size: int = PAGE_SIZE) -> TimelinePage:
    """The live region: every message from `since` on; without it, the worker's part (from the
    handoff on), at most `page_size` messages. Earlier messages (the bot's transcript) are loaded on
    demand with `older_page`."""
    if since is None:
        newest = (await session.execute(select(Message.id).where(Message.conversation_id == conversation_id)
                                        .order_by(Message.id.desc()).limit(page_size))).scalars().all()
        start_at = await handoff_start(session, conversation_id)
        ids = list(newest)
        if start_at is not None and ids:
            # the worker's part starts at the message that asked for a person (the last one before the handoff)
            asked = (await session.execute(select(func.max(Message.id)).where(
                Message.conversation_id == conversation_id, Message.created_at <= start_at))).scalar()
            if asked is not None and asked >= min(ids):
                # a voice note, a file or a position sent just before (the media flow asks "pass it on?")
                # belongs to the worker's part too
                shared = (await session.execute(select(func.min(Message.id)).where(
                    Message.conversation_id == conversation_id, Message.id.in_([i for i in ids if i < asked][:6]),
                    Message.direction == "in", Message.kind.in_(("attachment", "location"))))).scalar()
                start = shared if shared is not None else asked
                ids = [i for i in ids if i >= start]
        since = min(ids) if ids else None
    if since is None:
        messages = []
    else:
        messages = (await session.execute(select(Message).where(
            Message.conversation_id == conversation_id, Message.id >= since).order_by(Message.id))).scalars().all()
    first_at = messages[0].created_at if messages else None
    older = None
    if since is not None:
        older = (await session.execute(select(Message.id).where(
            Message.conversation_id == conversation_id, Message.id < since).limit(1))).scalar()
    event_query = select(Event).where(Event.conversation_id == conversation_id)
    if first_at is not None and older is not None:
        event_query = event_query.where(Event.created_at >= first_at)
    events = (await session.execute(event_query.order_by(Event.id))).scalars().all()
    return TimelinePage(_merge(messages, events), since if older is not None else None, since)


async def older_page(session, conversation_id: int, before: int, page_size: int = PAGE_SIZE) -> TimelinePage:
    """The `page_size` messages before message `before`, with the events of their time."""
    anchor_at = (await session.execute(select(Message.created_at).where(
        Message.conversation_id == conversation_id, Message.id == before))).scalar()
    if anchor_at is None:
        return TimelinePage([], None, None)
    messages = list(reversed((await session.execute(select(Message).where(
        Message.conversation_id == conversation_id, Message.id < before)
        .order_by(Message.id.desc()).limit(page_size))).scalars().all()))
    if not messages:
        return TimelinePage([], None, None)
    more = (await session.execute(select(Message.id).where(
        Message.conversation_id == conversation_id, Message.id < messages[0].id).limit(1))).scalar()
    conditions = [Event.conversation_id == conversation_id, Event.created_at < anchor_at]
    if more is not None:
        conditions.append(Event.created_at >= messages[0].created_at)
    events = (await session.execute(select(Event).where(*conditions).order_by(Event.id))).scalars().all()
    return TimelinePage(_merge(messages, events), messages[0].id if more is not None else None, None)


# The lists and their search -------------------------------------------------------------------
@dataclass
class Search:
    q: str = ""
    channel: str = ""
    day: date | None = None
    view: str = "all"
    page: int = 0

    @property
    def active(self) -> bool:
        return bool(self.q or self.channel or self.day)

    def number(self) -> str | None:
        """The digits of a search made only of a number (a phone, a conversation number)."""
        compact = re.sub(r"[\s.+\-()]|n°", "", self.q.strip().lower())
        return compact if re.fullmatch(r"[0-9]+", compact) else None  # ASCII digits only ("²".isdigit())


def phone_pattern(digits: str) -> str:
    """A French number as typed (06 12 34 56 78, +33 6...) -> the digits WhatsApp ids hold."""
    if digits.startswith("00"):
        digits = digits[2:]
    if len(digits) == 10 and digits.startswith("0"):
        digits = "33" + digits[1:]
    return digits


def _filters(search: Search) -> list:
    conditions = []
    if search.channel:
        conditions.append(Address.channel == search.channel)
    if search.day is not None:
        start, end = paris_day_bounds(search.day)
        # a conversation active that day: begun by its end, still going (or closed) after its start
        conditions.append(Conversation.created_at < end)
        conditions.append(Conversation.updated_at >= start)
    number = search.number()
    if number:
        matches = []
        if len(number) <= 9:
            matches.append(Conversation.id == int(number))
        if len(number) >= 4:
            matches.append(Address.external_id.like(f"%{phone_pattern(number)}%"))
        conditions.append(or_(*matches))
    return conditions


def _name_filter(search: Search) -> list:
    """A first name (from the answers), when the search is not a number."""
    q = search.q.strip()
    if not q or search.number():
        return []
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [or_(*(Conversation.summary["answers"][key].as_string().ilike(f"{escaped}%", escape="\\")
                  for key in NAME_KEYS))]


def _columns(last_at):
    """The few columns a card shows (no ORM objects: 1,000 rows stay cheap)."""
    answers = Conversation.summary["answers"]
    return (Conversation.id.label("id"), Conversation.status.label("status"),
            Conversation.assignee_id.label("assignee_id"), Conversation.team_id.label("team_id"),
            Conversation.outcome.label("outcome"), answers["topic"].as_string().label("topic"),
            answers["prenom"].as_string().label("prenom"), answers["first_name"].as_string().label("first_name"),
            Address.channel.label("channel"), Contact.locale.label("locale"), last_at.label("last_at"))


async def open_rows(session, organisation_id: int, search: Search):
    """The open conversations of an organisation (waiting or assigned), the latest active first."""
    # the latest message of each, one index lookup per conversation (ix_messages_conversation_created)
    last_at = (select(func.max(Message.created_at)).where(Message.conversation_id == Conversation.id)
               .correlate(Conversation).scalar_subquery())
    query = (select(*_columns(last_at))
             .join(Address, Address.id == Conversation.address_id)
             .join(Contact, Contact.id == Conversation.contact_id)
             .where(Conversation.organisation_id == organisation_id,
                    Conversation.status.in_((WAITING, ASSIGNED)), *_filters(search), *_name_filter(search))
             .order_by(Conversation.updated_at.desc()))
    return (await session.execute(query)).all()


async def closed_rows(session, organisation_id: int, search: Search):
    """The history: closed conversations, the latest first, one page of HISTORY_LIMIT (+1: is there more)."""
    query = (select(*_columns(Conversation.closed_at))
             .join(Address, Address.id == Conversation.address_id)
             .join(Contact, Contact.id == Conversation.contact_id)
             .where(Conversation.organisation_id == organisation_id, Conversation.status == CLOSED,
                    *_filters(search), *_name_filter(search))
             .order_by(Conversation.closed_at.desc(), Conversation.id.desc())
             .offset(search.page * HISTORY_LIMIT).limit(HISTORY_LIMIT + 1))
    return (await session.execute(query)).all()


__all__ = ["paris_time", "install_filters", "answer_rows", "latest_page", "older_page", "Search",
           "open_rows", "closed_rows", "CHANNELS", "VIEWS", "and_", "or_"]
