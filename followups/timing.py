"""When reminders and follow-ups go out: at a decent hour, Paris time, never in quiet hours.

Quiet: from `quiet_start` to `quiet_end` (20 h - 9 h), Sundays and French public holidays
(`handoff.hours.is_holiday`, the `holidays` package). Pure functions of their arguments (the clock
is passed in), so tests need no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from handoff.hours import PARIS, is_holiday
from words import times as words_times

# A reminder is useless when the appointment is closer than this.
MIN_NOTICE = timedelta(hours=2)


@dataclass(frozen=True)
class Quiet:
    start: int = 20  # hour (Paris) from which nothing is sent
    end: int = 9  # hour (Paris) from which sending is allowed again
    send_hour: int = 10  # the preferred hour

    @classmethod
    def of(cls, settings) -> "Quiet":
        return cls(settings.followups_quiet_start, settings.followups_quiet_end, settings.followups_send_hour)


def quiet_day(day: date) -> bool:
    return day.weekday() == 6 or is_holiday(day)


def allowed(at: datetime, quiet: Quiet) -> bool:
    local = at.astimezone(PARIS)
    return not quiet_day(local.date()) and quiet.end <= local.hour < quiet.start


def at_hour(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), PARIS).astimezone(timezone.utc)


def next_allowed(at: datetime, quiet: Quiet) -> datetime:
    """`at` if sending is allowed then, else the next moment it is (the start of the next open day)."""
    local = at.astimezone(PARIS)
    for _ in range(30):
        if allowed(local, quiet):
            return local.astimezone(timezone.utc)
        day = local.date() if local.hour < quiet.end and not quiet_day(local.date()) else local.date() + timedelta(days=1)
        while quiet_day(day):
            day += timedelta(days=1)
        hour = quiet.send_hour if quiet.end <= quiet.send_hour < quiet.start else quiet.end
        local = datetime.combine(day, time(hour, 0), PARIS)
    return local.astimezone(timezone.utc)


def reminder_time(starts_at: datetime, now: datetime, quiet: Quiet) -> datetime | None:
    """The day before at the send hour (the open day before, when that one is a Sunday or a holiday);
    when that moment is past, the next allowed moment if it still leaves MIN_NOTICE; else None."""
    day = starts_at.astimezone(PARIS).date() - timedelta(days=1)
    for _ in range(4):
        if not quiet_day(day):
            break
        day -= timedelta(days=1)
    when = at_hour(day, quiet.send_hour)
    if when < now:
        when = next_allowed(now, quiet)
    if when > starts_at - MIN_NOTICE:
        return None
    return when


def followup_time(closed_at: datetime, days: int, quiet: Quiet) -> datetime:
    """N days after, at the send hour, moved to the next allowed moment."""
    day = closed_at.astimezone(PARIS).date() + timedelta(days=days)
    return next_allowed(at_hour(day, quiet.send_hour), quiet)


def spoken_date(at: datetime, locale: str | None = "fr") -> str:
    """« mardi 8 décembre à 14 h 30 » (Paris time, in the person's language: words.times)."""
    return words_times.spoken_date(at, locale)


def parse_local(day: str, hour: str) -> datetime:
    """A date (YYYY-MM-DD) and a time (HH:MM) typed in Paris time -> aware UTC. ValueError if invalid."""
    if len(day) > 10 or len(hour) > 5:
        raise ValueError("too long")
    parsed_day = date.fromisoformat(day)
    parsed_time = time.fromisoformat(hour)
    return datetime.combine(parsed_day, parsed_time, PARIS).astimezone(timezone.utc)
