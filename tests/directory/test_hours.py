from datetime import date, datetime

import pytest

from directory.hours import PARIS, UNKNOWN_TEXT, describe, public_holiday

WEEKDAYS = "Mo-Fr 09:00-12:00,14:00-17:00; PH off"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def test_open_now_until():
    status = describe(WEEKDAYS, at("2026-11-23 10:00"))  # a Monday
    assert status.open_now is True and status.text == "ouvert jusqu'à 12 h"


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
    assert status.open_now is True and status.text == "ouvert jusqu'à demain 2 h"
    after_midnight = describe("Fr-Sa 20:00-02:00", at("2026-11-28 01:00"))
    assert after_midnight.open_now is True and after_midnight.text == "ouvert jusqu'à 2 h"


def test_always_open_and_midnight():
    assert describe("24/7", at("2026-11-23 03:00")).text == "ouvert 24 h/24"
    assert describe("Mo-Su 18:00-24:00", at("2026-11-23 20:00")).text == "ouvert jusqu'à minuit"


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


# -- in four languages, with fixed clocks across the week ----------------------------------------

CASES = {  # expression, moment (Paris): fr, en, ar, uk
    "open until": ("Mo-Fr 09:00-17:00", "2026-11-25 10:00", "ouvert jusqu'à 17 h", "open until 17:00",
                   "مفتوح حتى 17:00", "відчинено до 17:00"),
    "opens tomorrow": ("Mo-Fr 09:30-17:00", "2026-11-24 18:00", "fermé — ouvre demain à 9 h 30",
                       "closed — opens tomorrow at 9:30", "مغلق — يفتح غدًا الساعة 9:30",
                       "зачинено — відчиняється завтра о 9:30"),
    "always": ("24/7", "2026-11-29 03:00", "ouvert 24 h/24", "open 24/7", "مفتوح 24/24 ساعة", "відчинено цілодобово"),
    "opens monday": ("Mo 14:00-18:00", "2026-11-27 19:00", "fermé — ouvre lundi à 14 h",
                     "closed — opens on Monday at 14:00", "مغلق — يفتح يوم الاثنين الساعة 14:00",
                     "зачинено — відчиняється у понеділок о 14:00"),
    "unknown": ("", "2026-11-25 10:00", "horaires non connus", "opening hours not known", "مواعيد العمل غير معروفة",
                "години роботи невідомі"),
    "until midnight": ("Mo-Su 18:00-24:00", "2026-11-28 23:30", "ouvert jusqu'à minuit", "open until midnight",
                       "مفتوح حتى منتصف الليل", "відчинено до опівночі"),
    "past midnight": ("Sa 22:00-03:00", "2026-11-28 23:00", "ouvert jusqu'à demain 3 h", "open until 3:00 tomorrow",
                      "مفتوح حتى الغد الساعة 3:00", "відчинено до 3:00 завтра"),
    "holiday": ("Mo-Fr 09:00-17:00; PH off", "2026-12-25 10:00", "fermé (jour férié : Noël) — ouvre lundi à 9 h",
                "closed (public holiday: Christmas Day) — opens on Monday at 9:00",
                "مغلق (عطلة رسمية: Noël) — يفتح يوم الاثنين الساعة 9:00",
                "зачинено (святковий день: Різдво Христове) — відчиняється у понеділок о 9:00"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("index, locale", enumerate(["fr", "en", "ar", "uk"]))
def test_hours_in_words_in_each_language(case, index, locale):
    expression, moment, *texts = CASES[case]
    assert describe(expression, at(moment), locale).text == texts[index]


def test_every_day_of_the_week_is_said_in_words():
    # A place open on one day only, asked the day before at noon: "demain"; two days before: the day's name.
    days = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
    names = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
    for offset, (day, name) in enumerate(zip(days, names)):
        two_before = datetime(2026, 11, 21 + offset, 12, 0, tzinfo=PARIS)  # Sa 21 Nov 2026 + offset
        opens = describe(f"{day} 10:00-11:00", two_before).text
        assert opens == f"fermé — ouvre {name} à 10 h", (day, opens)


def test_utc_times_are_said_in_paris_time():
    from datetime import timezone

    moment = datetime(2026, 7, 1, 7, 0, tzinfo=timezone.utc)  # 9:00 in Paris (summer time)
    assert describe("Mo-Su 09:00-10:30", moment).text == "ouvert jusqu'à 10 h 30"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=120), st.sampled_from(["fr", "en", "ar", "uk", None, "xx"]),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_any_expression_any_language_any_moment_never_raises(expression, locale, moment):
    status = describe(expression, moment, locale)
    assert isinstance(status.text, str) and status.text and status.open_now in (True, False, None)
