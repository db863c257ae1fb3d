"""Opening hours edited as days and times, stored as an OSM `opening_hours` string.

The form has one row per day (Lundi..Dimanche), each with two time ranges (morning, afternoon),
and a choice for public holidays. `build` turns the rows into an expression ("Mo-Fr 09:00-12:00,
14:00-17:00; Sa 09:00-12:00; PH off"), checked by opening-hours-py; `rows_of` reads a simple
expression back into rows (anything richer is kept as the raw expression). Errors are in French
and name the day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DAYS = (("Mo", "Lundi"), ("Tu", "Mardi"), ("We", "Mercredi"), ("Th", "Jeudi"), ("Fr", "Vendredi"),
        ("Sa", "Samedi"), ("Su", "Dimanche"))
RANGES_PER_DAY = 2
HOLIDAYS_CLOSED = "off"  # "PH off": closed on French public holidays

_TIME = re.compile(r"^\s*(\d{1,2})\s*(?:[:hH.]\s*(\d{2})?)?\s*$")


@dataclass(slots=True)
class HoursForm:
    """What the admin typed: rows[day][range] = (opens, closes), texts as typed."""

    rows: list[list[tuple[str, str]]] = field(
        default_factory=lambda: [[("", "")] * RANGES_PER_DAY for _ in DAYS])
    holidays: str = HOLIDAYS_CLOSED
    raw: str = ""  # an expression typed directly (used when no day is filled)

    @classmethod
    def from_form(cls, form) -> "HoursForm":
        rows = [[(str(form.get(f"h{day}_o{part}") or "").strip(), str(form.get(f"h{day}_c{part}") or "").strip())
                 for part in range(RANGES_PER_DAY)] for day in range(len(DAYS))]
        return cls(rows=rows, holidays=str(form.get("jours_feries") or ""),
                   raw=str(form.get("horaires_osm") or "").strip()[:500])

    @property
    def empty(self) -> bool:
        return not any(opens or closes for day in self.rows for opens, closes in day)


def parse_time(text: str, closing: bool = False) -> str | None:
    """"9", "9h", "9h30", "09:30", "9.30" -> "09:30"; "24:00" only as a closing time; None if not a time."""
    match = _TIME.match(text or "")
    if not match:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not closing)):
        return None
    return f"{hours:02d}:{minutes:02d}"


def build(form: HoursForm) -> tuple[str, list[str]]:
    """(OSM expression, errors in French). An empty week gives "" (hours unknown)."""
    errors: list[str] = []
    specs: list[str] = []
    for (_, label), ranges in zip(DAYS, form.rows):
        parts = []
        for opens_text, closes_text in ranges:
            if not opens_text and not closes_text:
                continue
            if not opens_text or not closes_text:
                errors.append(f"{label} : indiquez l'heure d'ouverture et l'heure de fermeture.")
                continue
            opens, closes = parse_time(opens_text), parse_time(closes_text, closing=True)
            bad = [text for text, value in ((opens_text, opens), (closes_text, closes)) if value is None]
            if bad:
                errors.extend(f"{label} : « {text} » n'est pas une heure (exemple : 09:00)." for text in bad)
                continue
            if closes <= opens:
                errors.append(f"{label} : la fermeture ({closes}) doit venir après l'ouverture ({opens}).")
                continue
            parts.append((opens, closes))
        parts.sort()
        if len(parts) == 2 and parts[1][0] < parts[0][1]:
            errors.append(f"{label} : les deux plages horaires se chevauchent.")
        specs.append(",".join(f"{opens}-{closes}" for opens, closes in parts))
    if errors:
        return "", errors
    if not any(specs):
        if form.raw:
            return _checked(form.raw)
        return "", []
    groups: dict[str, list[int]] = {}
    for day, spec in enumerate(specs):
        if spec:
            groups.setdefault(spec, []).append(day)
    rules = [f"{_days(days)} {spec}" for spec, days in sorted(groups.items(), key=lambda item: item[1][0])]
    if form.holidays == HOLIDAYS_CLOSED:
        rules.append("PH off")
    return _checked("; ".join(rules))


def _days(days: list[int]) -> str:
    """[0, 1, 2, 3, 4, 6] -> "Mo-Fr,Su"."""
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    codes = [code for code, _ in DAYS]
    return ",".join(codes[run[0]] if len(run) == 1 else
                    (f"{codes[run[0]]},{codes[run[1]]}" if len(run) == 2 else f"{codes[run[0]]}-{codes[run[-1]]}")
                    for run in runs)


def _checked(expression: str) -> tuple[str, list[str]]:
    from opening_hours import validate

    try:
        valid = validate(expression)
    except BaseException:  # the Rust parser may panic on odd input
        valid = False
    if not valid:
        return "", ["Ces horaires ne sont pas au format OpenStreetMap : vérifiez l'expression (exemple : "
                    "« Mo-Fr 09:00-12:00,14:00-17:00; PH off »)."]
    return expression, []


_RULE = re.compile(r"^((?:Mo|Tu|We|Th|Fr|Sa|Su)(?:-(?:Mo|Tu|We|Th|Fr|Sa|Su))?"
                   r"(?:,(?:Mo|Tu|We|Th|Fr|Sa|Su)(?:-(?:Mo|Tu|We|Th|Fr|Sa|Su))?)*)\s+"
                   r"(\d{2}:\d{2}-\d{2}:\d{2}(?:,\d{2}:\d{2}-\d{2}:\d{2})?)$")


def rows_of(expression: str | None) -> HoursForm:
    """A stored expression -> the form. Simple weekly expressions fill the rows; anything else
    stays as the raw expression (the admin sees it and may replace it with rows)."""
    form = HoursForm(holidays="")
    expression = (expression or "").strip()
    if not expression:
        form.holidays = HOLIDAYS_CLOSED
        return form
    codes = [code for code, _ in DAYS]
    rows = [[("", "")] * RANGES_PER_DAY for _ in DAYS]
    for rule in (part.strip() for part in expression.split(";")):
        if not rule:
            continue
        if rule == "PH off":
            form.holidays = HOLIDAYS_CLOSED
            continue
        match = _RULE.match(rule)
        if not match:
            return HoursForm(holidays="", raw=expression)
        ranges = [tuple(item.split("-")) for item in match.group(2).split(",")]
        for group in match.group(1).split(","):
            first, _, last = group.partition("-")
            start, stop = codes.index(first), codes.index(last or first)
            if stop < start:
                return HoursForm(holidays="", raw=expression)
            for day in range(start, stop + 1):
                if any(rows[day][0]):
                    return HoursForm(holidays="", raw=expression)  # a day given twice: keep it as typed
                rows[day] = list(ranges) + [("", "")] * (RANGES_PER_DAY - len(ranges))
    form.rows = rows
    return form
