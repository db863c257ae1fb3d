"""Benefits: rounding steps, periods, links and display order from `benefits.yaml`; their words
(name, one-line description, note, reasons at zero) from the catalogue `rights/words/` in each
language (French source; the others keep the French name in brackets: "Help with rent (Aide au
logement: APL, ALS or ALF)"), so that wording changes never touch code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from words.catalogue import room

WORDS = room(__file__)
_FILE = Path(__file__).with_name("benefits.yaml")


@dataclass(frozen=True)
class BenefitText:
    id: str
    label: str
    description: str
    step: float
    period: str  # "mois" or "an"
    link: str
    note: str | None
    rank: int

    def label_in(self, locale: str | None) -> str:
        return WORDS.text(f"benefits.{self.id}.label", locale)

    def description_in(self, locale: str | None) -> str:
        return WORDS.text(f"benefits.{self.id}.description", locale)

    def note_in(self, locale: str | None) -> str | None:
        key = f"benefits.{self.id}.note"
        return WORDS.text(key, locale) if key in WORDS.keys() else None

    def rounded(self, amount: float) -> float:
        """Floor to the benefit's step (10 € for RSA, housing aid...; 1 € for PPA...)."""
        if self.step >= 1:
            return float(math.floor(amount / self.step + 1e-9) * self.step)
        return math.floor(amount * 100 + 1e-6) / 100


@cache
def _load() -> tuple[dict[str, BenefitText], dict[str, str]]:
    data = yaml.safe_load(_FILE.read_text(encoding="utf-8"))
    texts = {}
    keys = set(WORDS.keys())
    for rank, entry in enumerate(data["benefits"]):
        benefit = entry["id"]
        texts[benefit] = BenefitText(
            id=benefit,
            label=WORDS.text(f"benefits.{benefit}.label"),
            description=WORDS.text(f"benefits.{benefit}.description"),
            step=float(entry["step"]),
            period=entry["period"],
            link=entry["link"],
            note=WORDS.text(f"benefits.{benefit}.note") if f"benefits.{benefit}.note" in keys else None,
            rank=rank,
        )
    reasons = {key.removeprefix("reasons."): WORDS.text(key) for key in keys if key.startswith("reasons.")}
    return texts, reasons


def benefit_texts() -> dict[str, BenefitText]:
    """All benefits, keyed by id, in display order."""
    return _load()[0]


def benefit_ids() -> list[str]:
    return list(_load()[0])


def reason(key: str, locale: str | None = "fr") -> str:
    """A short reason for a benefit at zero (keys under `reasons:` in rights/words/)."""
    reasons = _load()[1]
    return WORDS.text(f"reasons.{key if key in reasons else 'unknown'}", locale)
