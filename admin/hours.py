"""Weekly hours and French public holidays: one implementation, in handoff/hours.py (routing reads
them too); the console keeps importing them from here."""

from handoff.hours import (  # noqa: F401
    DAY_NAMES,
    DAYS,
    PARIS,
    RANGES_PER_DAY,
    HoursError,
    describe,
    form_values,
    french_holidays,
    from_form,
    is_open,
    next_opening,
    opened_at,
    spoken_time,
)
