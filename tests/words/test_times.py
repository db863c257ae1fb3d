"""Times said to the person: Paris time, in words, in their language."""

from __future__ import annotations

from datetime import datetime, timezone

from words.times import spoken_date, spoken_time

NOW = datetime(2026, 12, 2, 20, 0, tzinfo=timezone.utc)  # Wednesday 21 h in Paris


def at(day: int, hour: int, minute: int = 0, month: int = 12, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def test_spoken_time_in_each_language_paris_time():
    cases = {
        "fr": ["aujourd'hui à 9 h 30", "demain à 9 h 30", "samedi à 9 h", "le 1er janvier à 9 h"],
        "en": ["today at 9:30", "tomorrow at 9:30", "on Saturday at 9:00", "on 1 January at 9:00"],
        "ar": ["اليوم الساعة 9:30", "غدًا الساعة 9:30", "يوم السبت الساعة 9:00", "يوم 1 يناير الساعة 9:00"],
        "uk": ["сьогодні о 9:30", "завтра о 9:30", "субота, о 9:00", "1 січня о 9:00"],
    }
    for locale, expected in cases.items():
        said = [spoken_time(at(2, 8, 30), NOW, locale), spoken_time(at(3, 8, 30), NOW, locale),
                spoken_time(at(5, 8), NOW, locale), spoken_time(at(1, 8, month=1, year=2027), NOW, locale)]
        assert said == expected, locale


def test_spoken_date_and_an_unknown_language_falls_back_to_french():
    assert spoken_date(at(8, 13, 30)) == "mardi 8 décembre à 14 h 30"
    assert spoken_date(at(8, 13, 30), "en") == "Tuesday 8 December at 14:30"
    assert spoken_date(at(8, 13, 30), "de") == spoken_date(at(8, 13, 30), "fr")
