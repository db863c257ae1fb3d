"""OSM opening_hours -> short plain French ("ouvert maintenant (jusqu'à 17 h)", "fermé — ouvre demain à 9 h").

Parsing and evaluation: opening-hours-py, in Europe/Paris time, with its French public holiday
calendar for the `PH` rule. The `holidays` package names today's holiday and flags expressions
without a `PH` rule on a public holiday ("jour férié : horaires à vérifier"), since most places
close then. Never raises: an unreadable expression gives "horaires non connus".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
UNKNOWN_TEXT = "horaires non connus"
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
LOOKAHEAD = timedelta(days=14)


@dataclass(frozen=True, slots=True)
class HoursStatus:
    text: str
    open_now: bool | None  # None: unknown


@lru_cache(maxsize=4096)
def _parse(expression: str):
    from opening_hours import OpeningHours

    try:
        return OpeningHours(expression, timezone=PARIS, country="FR", auto_country=False, auto_timezone=False)
    except BaseException:  # the Rust parser raises its own errors (and may panic on odd input)
        return None


@lru_cache(maxsize=8)
def _holidays(year: int) -> dict:
    import holidays

    return dict(holidays.France(years=year, language="fr"))


def public_holiday(day: date) -> str | None:
    """Name of the French public holiday on `day` ("Noël"), or None."""
    return _holidays(day.year).get(day)


def clock(moment: datetime) -> str:
    """9:00 -> "9 h", 9:30 -> "9 h 30", 0:00 -> "minuit"."""
    if moment.hour == 0 and moment.minute == 0:
        return "minuit"
    return f"{moment.hour} h" if moment.minute == 0 else f"{moment.hour} h {moment.minute:02d}"


def _when(moment: datetime, now: datetime) -> str:
    days = (moment.date() - now.date()).days
    if days == 0:
        return f"aujourd'hui à {clock(moment)}"
    if days == 1:
        return f"demain à {clock(moment)}"
    if days < 7:
        return f"{WEEKDAYS[moment.weekday()]} à {clock(moment)}"
    return f"le {WEEKDAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} à {clock(moment)}"


_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def describe(expression: str | None, now: datetime | None = None) -> HoursStatus:
    """Opening status at `now` (default: current time in Paris) as short plain French."""
    try:
        return _describe(expression, now)
    except Exception:  # never let a strange expression break an answer
        return HoursStatus(UNKNOWN_TEXT, None)


def _describe(expression: str | None, now: datetime | None) -> HoursStatus:
    if not expression or not expression.strip():
        return HoursStatus(UNKNOWN_TEXT, None)
    hours = _parse(expression.strip())
    if hours is None:
        return HoursStatus(UNKNOWN_TEXT, None)
    now = (now or datetime.now(PARIS)).astimezone(PARIS) if (now is None or now.tzinfo) else now.replace(tzinfo=PARIS)
    from opening_hours import State

    state, _comment = hours.state(now)
    holiday = public_holiday(now.date())
    has_holiday_rule = "PH" in expression

    if state == State.OPEN:
        if holiday and not has_holiday_rule:
            return HoursStatus(f"jour férié ({holiday}) : horaires à vérifier", None)
        until = hours.next_change(now)
        if until is None:
            return HoursStatus("ouvert 24 h/24", True)
        if until - now > timedelta(days=2):
            return HoursStatus("ouvert maintenant", True)
        day = "" if until.date() == now.date() or (until.hour == 0 and until.minute == 0 and (until.date() - now.date()).days == 1) else "demain "
        return HoursStatus(f"ouvert maintenant (jusqu'à {day}{clock(until)})", True)

    if state == State.UNKNOWN:
        return HoursStatus("horaires à vérifier", None)

    opens = _next_opening(hours, now)
    closed = f"fermé (jour férié : {holiday})" if holiday else "fermé"
    if opens is None:
        return HoursStatus(f"{closed} en ce moment", False)
    return HoursStatus(f"{closed} — ouvre {_when(opens, now)}", False)


def _next_opening(hours, now: datetime) -> datetime | None:
    from opening_hours import State

    for start, _end, state, _comment in hours.intervals(now, now + LOOKAHEAD):
        if state == State.OPEN:
            return start.astimezone(PARIS) if start.tzinfo else start.replace(tzinfo=PARIS)
    return None
