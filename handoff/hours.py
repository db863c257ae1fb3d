"""Weekly hours as days and times (teams' opening hours, workers' schedules) and French public holidays.

Stored as {"mon": [["09:00", "12:30"], ["13:30", "17:00"]], ...}: days mon..sun, local time
(Europe/Paris), at most two ranges a day, each start before its end. Routing reads them with
`is_open` / `next_opening` / `spoken_time`; the console edits them with `from_form` / `form_values`
(admin/teams.py, admin/people.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from words import times as words_times

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = {"mon": "lundi", "tue": "mardi", "wed": "mercredi", "thu": "jeudi", "fri": "vendredi",
             "sat": "samedi", "sun": "dimanche"}
RANGES_PER_DAY = 2
PARIS = ZoneInfo("Europe/Paris")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class HoursError(ValueError):
    """Hours that cannot be stored; the message is French and names the day."""


def from_form(form) -> dict:
    """Read fields `<day>_<n>_start` / `<day>_<n>_end` (n = 0, 1) into the stored shape.
    An empty pair is no range; half a pair, a bad time or a start not before its end is an error."""
    hours: dict[str, list[list[str]]] = {}
    for day in DAYS:
        ranges = []
        for index in range(RANGES_PER_DAY):
            start = (form.get(f"{day}_{index}_start") or "").strip()
            end = (form.get(f"{day}_{index}_end") or "").strip()
            if not start and not end:
                continue
            if not (_TIME.match(start) and _TIME.match(end)):
                raise HoursError(f"{DAY_NAMES[day].capitalize()} : indiquez une heure de début et de fin (HH:MM).")
            if start >= end:
                raise HoursError(f"{DAY_NAMES[day].capitalize()} : l'heure de fin doit venir après l'heure de début.")
            ranges.append([start, end])
        ranges.sort()
        for first, second in zip(ranges, ranges[1:]):
            if second[0] < first[1]:
                raise HoursError(f"{DAY_NAMES[day].capitalize()} : les deux plages se chevauchent.")
        if ranges:
            hours[day] = ranges
    return hours


def form_values(hours: dict | None) -> list[dict]:
    """One row per day for the form: {"day", "name", "ranges": [[start, end], [start, end]]}."""
    rows = []
    for day in DAYS:
        ranges = [list(r) for r in (hours or {}).get(day, [])][:RANGES_PER_DAY]
        ranges += [["", ""]] * (RANGES_PER_DAY - len(ranges))
        rows.append({"day": day, "name": DAY_NAMES[day], "ranges": ranges})
    return rows


def describe(hours: dict | None) -> str:
    """Plain French: "lundi 09:00-12:30, 13:30-17:00 ; mardi ..." ("" when no hours are set)."""
    parts = []
    for day in DAYS:
        ranges = (hours or {}).get(day)
        if ranges:
            parts.append(DAY_NAMES[day] + " " + ", ".join(f"{a.replace(':', ' h ')}–{b.replace(':', ' h ')}"
                                                         for a, b in ranges))
    return " ; ".join(parts)


def french_holidays(year: int) -> list[tuple[date, str]]:
    """The French public holidays of a year (metropolitan France), with their French names."""
    return sorted(holidays.France(years=year, language="fr").items())


LOOK_AHEAD_DAYS = 14


@lru_cache(maxsize=8)
def _holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.France(years=year))


def is_holiday(day: date) -> bool:
    return day in _holidays(day.year)


def is_open(hours: dict | None, at: datetime, closed_on_holidays: bool = True) -> bool:
    """Whether `at` (aware datetime) falls in the hours, Paris time. No hours set: always open."""
    if not hours:
        return True
    local = at.astimezone(PARIS)
    if closed_on_holidays and is_holiday(local.date()):
        return False
    now = local.strftime("%H:%M")
    return any(start <= now < end for start, end in hours.get(DAYS[local.weekday()], []))


def _at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def opened_at(hours: dict | None, at: datetime, closed_on_holidays: bool = True) -> datetime | None:
    """When the range `at` falls in began (Paris time); None when closed or when no hours are set."""
    if not hours or not is_open(hours, at, closed_on_holidays):
        return None
    local = at.astimezone(PARIS)
    now = local.strftime("%H:%M")
    start = max(s for s, e in hours.get(DAYS[local.weekday()], []) if s <= now < e)
    return _at(local.date(), start)


def next_opening(hours: dict | None, at: datetime, closed_on_holidays: bool = True) -> datetime | None:
    """The next time the hours open after `at` (`at` itself when open now); None when no hours are
    set (always open) or none within two weeks."""
    if not hours:
        return None
    local = at.astimezone(PARIS)
    if is_open(hours, local, closed_on_holidays):
        return local
    for offset in range(LOOK_AHEAD_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        if closed_on_holidays and is_holiday(day):
            continue
        for start, _end in sorted(hours.get(DAYS[day.weekday()], [])):
            opening = _at(day, start)
            if opening > local:
                return opening
    return None


def spoken_time(when: datetime, now: datetime, locale: str | None = "fr") -> str:
    """Paris time, in words and in the person's language: "aujourd'hui à 14 h", "demain à 9 h 30",
    "lundi à 9 h", "le 2 janvier à 9 h" (a week or more ahead); see words.times."""
    return words_times.spoken_time(when, now, locale)
