"""National emergency numbers, and whether a need (or a message) calls for them first."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from words.catalogue import room

WORDS = room(__file__)


@dataclass(frozen=True, slots=True)
class EmergencyNumber:
    number: str
    how: str = "appel"  # "appel" or "SMS"

    @property
    def label(self) -> str:
        """What the number is for, in plain French (label_in for another language)."""
        return self.label_in("fr")

    def label_in(self, locale: str | None) -> str:
        return WORDS.text(f"emergency.labels.{self.number}", locale)

    def to_dict(self) -> dict:
        return {"number": self.number, "label": self.label, "how": self.how}

    @property
    def text(self) -> str:
        return self.text_in("fr")

    def text_in(self, locale: str | None) -> str:
        """"115 — hébergement d'urgence, pour dormir ce soir" (with "(par SMS)" for 114)."""
        key = "emergency.line_sms" if self.how == "SMS" else "emergency.line"
        return WORDS.text(key, locale, number=self.number, label=self.label_in(locale))

    @property
    def url(self) -> str:
        """tel:115 (sms:114 for the text-only number)."""
        return f"{'sms' if self.how == 'SMS' else 'tel'}:{self.number}"

    def link_title(self, locale: str | None) -> str:
        return WORDS.text("emergency.call", locale, number=self.number)


EMERGENCY_NUMBERS: tuple[EmergencyNumber, ...] = (
    EmergencyNumber("115"),
    EmergencyNumber("3919"),
    EmergencyNumber("119"),
    EmergencyNumber("15"),
    EmergencyNumber("17"),
    EmergencyNumber("112"),
    EmergencyNumber("114", "SMS"),
)
BY_NUMBER = {entry.number: entry for entry in EMERGENCY_NUMBERS}

# Most relevant numbers first for each emergency need; the others follow.
FIRST_FOR_NEED = {
    "dormir-ce-soir": ("115",),
    "violences": ("3919", "17", "119"),
    "famille--surmonter-conflits-separation-violence": ("3919", "17", "119"),
    "logement-hebergement--rechercher-une-solution-dhebergement-temporaire": ("115",),
}

_EMERGENCY_WORDS = re.compile(
    r"\b(a la rue|dehors ce soir|dormir dehors|dors dehors|sans abri|sdf|pas de toit|nulle part ou dormir"
    r"|violence|violences|violent|frappe|frapper|battu|battue|coups|menace|menaces|danger|agresse|agression"
    r"|viol|suicide|me tuer|mourir)\b"
)


def _plain(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def is_emergency(need: str | None = None, text: str | None = None) -> bool:
    """True for an emergency need (no place to sleep tonight, violence, danger) or a message
    that says so ("je dors dehors", "il me frappe")."""
    from directory.needs import UnknownNeed, resolve_need

    if need:
        try:
            resolved = resolve_need(need)
        except UnknownNeed:
            resolved = None
        if resolved is not None and resolved.emergency:
            return True
    return bool(text and _EMERGENCY_WORDS.search(_plain(text)))


def numbers_for(need: str | None = None) -> list[EmergencyNumber]:
    """All national numbers, the most relevant to `need` first."""
    first = [BY_NUMBER[number] for number in FIRST_FOR_NEED.get(need or "", ())]
    return first + [entry for entry in EMERGENCY_NUMBERS if entry not in first]
