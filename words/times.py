"""Times and dates as the person reads them: Paris time, in words, in the person's language.

"demain à 9 h 30", "tomorrow at 9:30", "غدًا الساعة 9:30"; day and month names come from CLDR
(Babel), the phrases from words/words/<language>.yaml.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date

from words.catalogue import language_of, room

PARIS = ZoneInfo("Europe/Paris")
WORDS = room(__file__)


def clock(local: datetime, locale: str | None = "fr") -> str:
    """"9 h", "9 h 30" (French); "9:00", "9:30" elsewhere."""
    if local.minute:
        return WORDS.text("time.hour_minute", locale, hour=local.hour, minute=f"{local.minute:02d}")
    return WORDS.text("time.hour", locale, hour=local.hour)


def spoken_time(when: datetime, now: datetime, locale: str | None = "fr") -> str:
    """"aujourd'hui à 14 h", "demain à 9 h 30", "lundi à 9 h", "le 2 janvier à 9 h" (a week or more
    ahead), Paris time, in `locale`."""
    language = language_of(locale)
    local, today = when.astimezone(PARIS), now.astimezone(PARIS).date()
    time = clock(local, language)
    ahead = (local.date() - today).days
    if ahead <= 0:
        return WORDS.text("time.today", language, time=time)
    if ahead == 1:
        return WORDS.text("time.tomorrow", language, time=time)
    if ahead < 7:
        return WORDS.text("time.weekday", language, day=format_date(local.date(), "EEEE", locale=language),
                          time=time)
    pattern = WORDS.text("time.date_pattern_first_day" if local.day == 1 else "time.date_pattern", language)
    return WORDS.text("time.date", language, date=format_date(local.date(), pattern, locale=language), time=time)


def spoken_date(at: datetime, locale: str | None = "fr") -> str:
    """"mardi 8 décembre à 14 h 30", "Tuesday 8 December at 14:30" (Paris time)."""
    language = language_of(locale)
    local = at.astimezone(PARIS)
    day = format_date(local.date(), WORDS.text("time.full_date_pattern", language), locale=language)
    return WORDS.text("time.full", language, date=day, time=clock(local, language))
