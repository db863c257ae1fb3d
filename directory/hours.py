"""OSM opening_hours -> a few plain words in the person's language ("ouvert jusqu'à 17 h",
"fermé — ouvre demain à 9 h 30", "ouvert 24 h/24", "horaires non connus").

Parsing and evaluation: opening-hours-py, in Europe/Paris time (never UTC), with its French public
holiday calendar for the `PH` rule. The `holidays` package names today's holiday (in French,
English or Ukrainian; French otherwise) and flags expressions without a `PH` rule on a public
holiday ("jour férié : horaires à vérifier"), since most places close then. Day names come from
Babel (CLDR); the words and the way a time is written ("9 h 30", "9:30") from directory/words/.
Never raises: an unreadable expression gives "horaires non connus".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from words.catalogue import language_of, room

WORDS = room(__file__)
PARIS = ZoneInfo("Europe/Paris")
UNKNOWN_TEXT = WORDS.text("hours.unknown")  # French; describe(..., locale=) for the others
LOOKAHEAD = timedelta(days=14)
_HOLIDAY_LANGUAGES = {"fr": "fr", "en": "en_US", "uk": "uk"}  # what the holidays package offers for France


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


@lru_cache(maxsize=32)
def _holidays(year: int, language: str = "fr") -> dict:
    import holidays

    return dict(holidays.France(years=year, language=_HOLIDAY_LANGUAGES.get(language, "fr")))


def public_holiday(day: date, locale: str | None = "fr") -> str | None:
    """Name of the French public holiday on `day` ("Noël", "Christmas Day"), or None."""
    return _holidays(day.year, language_of(locale)).get(day)


def clock(moment: datetime, locale: str | None = "fr") -> str:
    """9:00 -> "9 h", 9:30 -> "9 h 30", 0:00 -> "minuit" (French); "9:00", "9:30", "midnight" (English)."""
    if moment.hour == 0 and moment.minute == 0:
        return WORDS.text("hours.midnight", locale)
    if moment.minute == 0:
        return WORDS.text("hours.time_h", locale, hour=moment.hour)
    return WORDS.text("hours.time_hm", locale, hour=moment.hour, minute=f"{moment.minute:02d}")


def weekday(day: date, locale: str | None = "fr") -> str:
    """The day's name as the sentence needs it ("lundi", "Monday", "у понеділок")."""
    return WORDS.raw("hours.weekdays", locale)[day.weekday()]


def _when(moment: datetime, now: datetime, locale: str | None) -> str:
    days = (moment.date() - now.date()).days
    time = clock(moment, locale)
    if days == 0:
        return WORDS.text("hours.today_at", locale, time=time)
    if days == 1:
        return WORDS.text("hours.tomorrow_at", locale, time=time)
    if days < 7:
        return WORDS.text("hours.weekday_at", locale, weekday=weekday(moment.date(), locale), time=time)
    from babel.dates import format_date

    return WORDS.text("hours.date_at", locale, weekday=weekday(moment.date(), locale),
                      date=format_date(moment.date(), "d MMMM", locale=language_of(locale)), time=time)


def describe(expression: str | None, now: datetime | None = None, locale: str | None = "fr") -> HoursStatus:
    """Opening status at `now` (default: current time in Paris) in a few plain words of `locale`."""
    try:
        return _describe(expression, now, locale)
    except Exception:  # never let a strange expression break an answer
        return HoursStatus(WORDS.text("hours.unknown", locale), None)


def _describe(expression: str | None, now: datetime | None, locale: str | None) -> HoursStatus:
    unknown = HoursStatus(WORDS.text("hours.unknown", locale), None)
    if not expression or not expression.strip():
        return unknown
    hours = _parse(expression.strip())
    if hours is None:
        return unknown
    now = (now or datetime.now(PARIS)).astimezone(PARIS) if (now is None or now.tzinfo) else now.replace(tzinfo=PARIS)
    from opening_hours import State

    state, _comment = hours.state(now)
    holiday = public_holiday(now.date(), locale)
    has_holiday_rule = "PH" in expression

    if state == State.OPEN:
        if holiday and not has_holiday_rule:
            return HoursStatus(WORDS.text("hours.holiday_check", locale, holiday=holiday), None)
        until = hours.next_change(now)
        if until is None:
            return HoursStatus(WORDS.text("hours.always", locale), True)
        until = until.astimezone(PARIS) if until.tzinfo else until.replace(tzinfo=PARIS)
        if until - now > timedelta(days=2):
            return HoursStatus(WORDS.text("hours.open_now", locale), True)
        days = (until.date() - now.date()).days
        if days == 0 or (days == 1 and until.hour == 0 and until.minute == 0):  # "jusqu'à minuit"
            return HoursStatus(WORDS.text("hours.open_until", locale, time=clock(until, locale)), True)
        return HoursStatus(WORDS.text("hours.open_until_tomorrow", locale, time=clock(until, locale)), True)

    if state == State.UNKNOWN:
        return HoursStatus(WORDS.text("hours.check", locale), None)

    opens = _next_opening(hours, now)
    closed = (WORDS.text("hours.closed_holiday", locale, holiday=holiday) if holiday
              else WORDS.text("hours.closed", locale))
    if opens is None:
        return HoursStatus(WORDS.text("hours.closed_now", locale, closed=closed), False)
    return HoursStatus(WORDS.text("hours.closed_opens", locale, closed=closed, when=_when(opens, now, locale)), False)


def _next_opening(hours, now: datetime) -> datetime | None:
    from opening_hours import State

    for start, _end, state, _comment in hours.intervals(now, now + LOOKAHEAD):
        if state == State.OPEN:
            return start.astimezone(PARIS) if start.tzinfo else start.replace(tzinfo=PARIS)
    return None
