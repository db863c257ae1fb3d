"""A registry of counters: each room adds its figures to the dashboard with one call.

    from stats.registry import register, Row

    async def by_source(q: Query) -> list[Row]:
        rows = await q.session.execute(...)        # q.organisation_id, q.worker_id, q.start, q.end
        return [Row(label, count) for label, count in rows]

    register("contacts_by_source", "Personnes par source", by_source, order=15)

A counter returns rows of (label, value). `kind` says what a value is: "count" (people,
conversations: any count under 5 is shown as "< 5" in the page, its charts and the CSV),
"minutes" or "euros" (an aggregate, given only when computed over at least 5 items — the counter
checks it and says so in its label). Labels are fixed words (a channel, a need, an outcome), never
names or free text. `q.worker_id` is set on a worker's own page: count only their conversations
(`q.scope(Conversation)` adds the right WHERE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Awaitable, Callable

THRESHOLD = 5
SUPPRESSED = "< 5"


@dataclass
class Row:
    label: str
    value: float | int | None
    kind: str = "count"  # count | minutes | euros

    @property
    def shown(self) -> str:
        return shown(self.value, self.kind)

    @property
    def suppressed(self) -> bool:
        return self.kind == "count" and (self.value or 0) < THRESHOLD


def shown(value, kind: str = "count") -> str:
    if value is None:
        return "—"
    if kind == "count":
        return SUPPRESSED if value < THRESHOLD else f"{int(value):,}".replace(",", "\u202f")
    if kind == "euros":
        return f"{value:,.0f} €".replace(",", "\u202f")
    if kind == "minutes":
        return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h".replace(".", ",")
    return str(value)


@dataclass
class Query:
    session: object  # AsyncSession
    organisation_id: int
    worker_id: int | None
    start: datetime
    end: datetime

    def scope(self, conversation_model):
        """The WHERE of the conversations counted: the organisation's (a worker's own page: theirs)."""
        clause = conversation_model.organisation_id == self.organisation_id
        if self.worker_id is not None:
            clause = clause & (conversation_model.assignee_id == self.worker_id)
        return clause


@dataclass
class Counter:
    key: str
    title: str
    compute: Callable[[Query], Awaitable[list[Row]]]
    description: str = ""
    order: int = 100
    chart: bool = True


@dataclass
class Registry:
    counters: dict[str, Counter] = field(default_factory=dict)

    def register(self, key: str, title: str, compute: Callable[[Query], Awaitable[list[Row]]], *,
                 description: str = "", order: int = 100, chart: bool = True) -> Counter:
        counter = Counter(key, title, compute, description, order, chart)
        self.counters[key] = counter
        return counter

    def ordered(self) -> list[Counter]:
        return sorted(self.counters.values(), key=lambda c: (c.order, c.key))


REGISTRY = Registry()


def register(key: str, title: str, compute: Callable[[Query], Awaitable[list[Row]]], *, description: str = "",
             order: int = 100, chart: bool = True) -> Counter:
    """Add (or replace) a counter of the dashboard. One call per counter, at import of its room."""
    return REGISTRY.register(key, title, compute, description=description, order=order, chart=chart)
