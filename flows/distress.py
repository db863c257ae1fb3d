"""Words of distress or danger, and messages too long for a flow's question. Pure functions.

The phrases live in flows/words/<lang>.yaml (`understand.distress.<kind>`), matched in every
language at once. The kind chooses the emergency numbers said with the offer of a human.
"""

from __future__ import annotations

from flows.inputs import normalise
from flows.phrases import phrases

LONG_MESSAGE = 280  # characters: more than a question's answer; a person should read it
# The more specific kinds first: "enfant en danger" is a child in danger before "en danger".
KINDS = ("suicide", "child", "violence", "street", "danger")


def distress_of(text: str | None) -> str | None:
    """The kind of distress or danger the text speaks of, or None."""
    if not text:
        return None
    norm = f" {normalise(text)[:2000]} "
    for kind in KINDS:
        if any(f" {phrase} " in norm for phrase in phrases(f"distress.{kind}")):
            return kind
    return None


def is_long(text: str | None) -> bool:
    return bool(text) and len(text) > LONG_MESSAGE
