"""Understanding what a person typed: normalising, numbers, yes/no, button titles. Pure functions."""

from __future__ import annotations

import re
import unicodedata

from rapidfuzz import fuzz, process

from flows.numbers import digits


def normalise(text: str) -> str:
    """Lower case, no accents, punctuation as spaces, single spaces: 'Rezé !' -> 'reze'."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^\w/]+", " ", text)
    return " ".join(text.split())


_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def parse_number(text: str) -> float | None:
    """'1 200 €', '1200,50', '500e', '-3' -> a number; None when there is none or several."""
    compact = re.sub(r"(?<=\d)[\s\u202f\u00a0.](?=\d{3}\b)", "", digits(text.strip()))
    found = _NUMBER.findall(compact)
    if len(found) != 1:
        return None
    return float(found[0].replace(",", "."))


def parse_numbers(text: str) -> list[float] | None:
    """'3, 7 et 12' -> [3, 7, 12]; None when there is no number. Decimals use a comma or a dot."""
    text = digits(text)
    found = re.findall(r"\d+(?:[.,]\d+)?(?=\D|$)", text.replace(", ", " ").replace(" ,", " "))
    if not found:
        return None
    return [float(n.replace(",", ".")) for n in found]


def parse_yes_no(text: str) -> bool | None:
    """Yes or no, in any of the four languages (flows/words/*.yaml `understand.yes` / `.no`)."""
    from flows.phrases import phrases

    norm = normalise(strip_emoji(text))
    if norm in phrases("yes") or norm.replace(" ", "") in phrases("yes"):
        return True
    if norm in phrases("no"):
        return False
    return None


def strip_emoji(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c)[0] in "LNZP" or c in "'-").strip()


def match_choice(text: str, choices: list[tuple[str, str]],
                 aliases: list[tuple[str, str]] = ()) -> str | None:
    """The value of the choice a person meant: its number, its value, or its title (typos tolerated).
    `aliases` are more (value, title) pairs matched by title only (a label in another language)."""
    norm = normalise(text)
    if not norm or not choices:
        return None
    if norm.isdigit() and 1 <= int(norm) <= len(choices):
        return choices[int(norm) - 1][0]
    titles = {normalise(strip_emoji(title)): value for value, title in [*aliases, *choices]}
    values = {normalise(value): value for value, _ in choices}
    if norm in titles:
        return titles[norm]
    if norm in values:
        return values[norm]
    best = process.extractOne(norm, list(titles), scorer=fuzz.WRatio, score_cutoff=86)
    if best is not None:
        return titles[best[0]]
    return None
