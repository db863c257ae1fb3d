"""Weekly hours as stored for teams and schedules: the form's checks, is_open with Paris time and
French public holidays."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from handoff.hours import HoursError, describe, french_holidays, from_form, is_open

HOURS = {"mon": [["09:00", "12:30"], ["13:30", "17:00"]]}


def test_from_form_reads_two_ranges_and_refuses_bad_ones():
    assert from_form({"mon_1_start": "13:30", "mon_1_end": "17:00", "mon_0_start": "09:00", "mon_0_end": "12:30"}) == HOURS
    assert from_form({}) == {}
    for bad in ({"tue_0_start": "09:00"}, {"tue_0_start": "9h", "tue_0_end": "10:00"},
                {"tue_0_start": "10:00", "tue_0_end": "09:00"},
                {"tue_0_start": "09:00", "tue_0_end": "12:00", "tue_1_start": "11:00", "tue_1_end": "13:00"}):
        with pytest.raises(HoursError, match="Mardi"):
            from_form(bad)
    assert describe(HOURS) == "lundi 09 h 00–12 h 30, 13 h 30–17 h 00"


def test_is_open_in_paris_time_and_closed_on_public_holidays():
    monday = datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc)  # 10:30 in Paris (UTC+1)
    assert is_open(HOURS, monday)
    assert not is_open(HOURS, monday.replace(hour=11, minute=45))  # 12:45 Paris: lunch
    assert not is_open(HOURS, datetime(2026, 12, 8, 9, 30, tzinfo=timezone.utc))  # Tuesday: no hours
    pentecost_monday = datetime(2026, 5, 25, 8, 0, tzinfo=timezone.utc)  # 10:00 Paris (UTC+2)
    assert not is_open(HOURS, pentecost_monday)
    assert is_open(HOURS, pentecost_monday, closed_on_holidays=False)
    assert is_open({}, pentecost_monday)  # no hours set: always open
    names = dict(french_holidays(2026))
    assert len(names) == 11 and any("Pentecôte" in name for name in names.values())
