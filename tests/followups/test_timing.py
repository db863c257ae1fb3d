"""When reminders and follow-ups go out (pure functions, a table of cases; Paris time)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from followups.timing import Quiet, allowed, followup_time, next_allowed, reminder_time, spoken_date
from handoff.hours import PARIS

Q = Quiet()


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


@pytest.mark.parametrize("at, expected", [
    (paris(2027, 1, 6, 11, 0), paris(2027, 1, 6, 11, 0)),     # a Wednesday morning: now
    (paris(2027, 1, 6, 8, 59), paris(2027, 1, 6, 10, 0)),     # before 9 h: the same day, at the send hour
    (paris(2027, 1, 6, 20, 0), paris(2027, 1, 7, 10, 0)),     # 20 h: quiet, the next day
    (paris(2027, 1, 9, 21, 0), paris(2027, 1, 11, 10, 0)),    # Saturday night: not Sunday, Monday
    (paris(2027, 1, 10, 12, 0), paris(2027, 1, 11, 10, 0)),   # Sunday noon
    (paris(2026, 12, 31, 22, 0), paris(2027, 1, 2, 10, 0)),   # New Year's Day is a public holiday
    (paris(2027, 3, 28, 15, 0), paris(2027, 3, 30, 10, 0)),   # Easter Sunday, then Easter Monday
])
def test_next_allowed(at, expected):
    assert next_allowed(at, Q) == expected.astimezone(timezone.utc)
    assert allowed(next_allowed(at, Q), Q)


@pytest.mark.parametrize("starts, now, expected", [
    (paris(2027, 1, 7, 14, 30), paris(2027, 1, 1, 9, 0), paris(2027, 1, 6, 10, 0)),    # the day before at 10 h
    (paris(2027, 1, 11, 9, 0), paris(2027, 1, 1, 9, 0), paris(2027, 1, 9, 10, 0)),     # Monday: Saturday
    (paris(2027, 3, 30, 9, 0), paris(2027, 3, 1, 9, 0), paris(2027, 3, 27, 10, 0)),    # after Easter Sun+Mon
    (paris(2027, 1, 7, 14, 30), paris(2027, 1, 6, 15, 0), paris(2027, 1, 6, 15, 0)),   # noted late: at once
    (paris(2027, 1, 7, 9, 30), paris(2027, 1, 6, 22, 0), None),                         # next allowed is too late
    (paris(2027, 1, 6, 16, 0), paris(2027, 1, 6, 15, 0), None),                         # in an hour: no reminder
])
def test_reminder_time(starts, now, expected):
    found = reminder_time(starts.astimezone(timezone.utc), now.astimezone(timezone.utc), Q)
    assert found == (expected.astimezone(timezone.utc) if expected else None)


def test_followup_time_and_words():
    assert followup_time(paris(2027, 1, 4, 16, 0), 7, Q) == paris(2027, 1, 11, 10, 0).astimezone(timezone.utc)
    assert followup_time(paris(2027, 1, 3, 16, 0), 7, Q) == paris(2027, 1, 11, 10, 0).astimezone(timezone.utc)
    assert spoken_date(paris(2027, 1, 7, 14, 30)) == "jeudi 7 janvier à 14 h 30"
    assert spoken_date(paris(2027, 1, 7, 9, 0)) == "jeudi 7 janvier à 9 h"
    evening = Quiet(start=21, end=8, send_hour=9)
    assert allowed(paris(2027, 1, 6, 20, 30), evening) and not allowed(paris(2027, 1, 6, 20, 30), Q)
