from datetime import date, datetime

import pytest

from directory.hours import PARIS, UNKNOWN_TEXT, describe, public_holiday

WEEKDAYS = "Mo-Fr 09:00-12:00,14:00-17:00; PH off"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def test_open_now_until():
    status = describe(WEEKDAYS, at("2026-11-23 10:00"))  # a Monday
    assert status.open_now is True and status.text == "ouvert maintenant (jusqu'à 12 h)"


def test_lunch_break_reopens_today():
    assert describe(WEEKDAYS, at("2026-11-23 12:30")).text == "fermé — ouvre aujourd'hui à 14 h"


def test_evening_opens_tomorrow():
    status = describe(WEEKDAYS, at("2026-11-23 18:00"))
    assert status.open_now is False and status.text == "fermé — ouvre demain à 9 h"


def test_closed_today_opens_monday_with_minutes():
    status = describe("Mo 09:30-12:00", at("2026-11-21 10:00"))  # a Saturday
    assert status.text == "fermé — ouvre lundi à 9 h 30"


def test_closed_on_public_holidays():
    christmas = describe(WEEKDAYS, at("2026-12-25 10:00"))  # a Friday
    assert christmas.open_now is False
    assert christmas.text == "fermé (jour férié : Noël) — ouvre lundi à 9 h"
    labour_day = describe(WEEKDAYS, at("2026-05-01 10:00"))
    assert labour_day.open_now is False and "jour férié" in labour_day.text


def test_public_holiday_without_a_rule_is_to_be_checked():
    status = describe("Mo-Fr 09:00-17:00", at("2026-12-25 10:00"))
    assert status.open_now is None and "à vérifier" in status.text


def test_open_past_midnight():
    status = describe("Fr-Sa 20:00-02:00", at("2026-11-27 23:00"))  # Friday night
    assert status.open_now is True and status.text == "ouvert maintenant (jusqu'à demain 2 h)"
    after_midnight = describe("Fr-Sa 20:00-02:00", at("2026-11-28 01:00"))
    assert after_midnight.open_now is True and after_midnight.text == "ouvert maintenant (jusqu'à 2 h)"


def test_always_open_and_midnight():
    assert describe("24/7", at("2026-11-23 03:00")).text == "ouvert 24 h/24"
    assert describe("Mo-Su 18:00-24:00", at("2026-11-23 20:00")).text == "ouvert maintenant (jusqu'à minuit)"


def test_next_opening_more_than_a_week_away():
    assert describe("Mo 10:00-12:00", at("2026-11-23 13:00")).text == "fermé — ouvre le lundi 30 novembre à 10 h"


@pytest.mark.parametrize("expression", [None, "", "   ", "blah", "lundi 9h-12h", "Mo-Fr 25:00-26:00", "Mo-Fr 09:00-", "\x00", "Mo" * 500])
def test_unparseable_never_crashes(expression):
    status = describe(expression, at("2026-11-23 10:00"))
    assert status.text == UNKNOWN_TEXT and status.open_now is None


def test_unknown_state():
    assert describe("Mo-Fr unknown", at("2026-11-23 10:00")).open_now is None


def test_naive_times_are_paris_time():
    assert describe(WEEKDAYS, datetime(2026, 11, 23, 10, 0)).open_now is True


def test_holiday_calendars_agree_for_2026():
    """opening-hours-py evaluates PH; the holidays package names them: both must agree."""
    from opening_hours import OpeningHours

    oh = OpeningHours("Mo-Su 08:00-20:00; PH off", timezone=PARIS, country="FR")
    for day in [date(2026, 1, 1), date(2026, 4, 6), date(2026, 5, 1), date(2026, 5, 8), date(2026, 5, 14),
                date(2026, 5, 25), date(2026, 7, 14), date(2026, 8, 15), date(2026, 11, 1), date(2026, 11, 11),
                date(2026, 12, 25)]:
        assert public_holiday(day), day
        assert oh.is_closed(datetime(day.year, day.month, day.day, 12, tzinfo=PARIS)), day
    assert public_holiday(date(2026, 11, 23)) is None
