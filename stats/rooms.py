"""The dashboard's figures that other rooms keep: people by source and campaign reach (outreach/),
referrals (casework/). Organisation-wide figures: a worker's own page leaves them out."""

from __future__ import annotations

from casework.stats import referral_counts
from outreach.stats import campaign_reach, contacts_by_source
from stats.registry import Query, Row, register

SOURCE_KINDS_SHOWN = 30  # one row per source; the rest in "Autres sources"
REACH = [("recipients", "Personnes visées"), ("sent", "Envoyés"), ("delivered", "Reçus"), ("read", "Lus"),
         ("replied", "Ont répondu"), ("stopped", "Ont dit stop"), ("failed", "Non remis"),
         ("skipped", "Écartés (stop, injoignable)")]
REFERRALS = [("organisation", "Vers une autre structure (accord donné)"), ("partner", "Orientations vers un partenaire"),
             ("organisation_asked", "Transferts en attente de réponse"),
             ("organisation_declined", "Transferts refusés par la personne")]


async def by_source(q: Query) -> list[Row]:
    if q.worker_id is not None:
        return []
    people: dict[str, int] = {}
    for row in await contacts_by_source(q.session, q.organisation_id, q.start, q.end):
        people[row["name"]] = people.get(row["name"], 0) + row["contacts"]
    ordered = sorted(people.items(), key=lambda item: (-item[1], item[0]))
    rows = [Row(name, count) for name, count in ordered[:SOURCE_KINDS_SHOWN]]
    if len(ordered) > SOURCE_KINDS_SHOWN:
        rows.append(Row("Autres sources", sum(count for _, count in ordered[SOURCE_KINDS_SHOWN:])))
    return rows


async def reach(q: Query) -> list[Row]:
    if q.worker_id is not None:
        return []
    counts = await campaign_reach(q.session, q.organisation_id, q.start, q.end)
    return [Row(label, counts.get(key, 0)) for key, label in REACH] if counts.get("recipients") else []


async def referrals(q: Query) -> list[Row]:
    if q.worker_id is not None:
        return []
    counts = await referral_counts(q.session, q.organisation_id, q.start, q.end)
    return [Row(label, counts.get(key, 0)) for key, label in REFERRALS]


register("contacts_by_source", "Personnes venues par une source (flyer, partenaire…)", by_source, order=15)
register("campaign_reach", "Campagnes : ce qu'elles ont atteint", reach, order=95)
register("referrals", "Transferts et orientations", referrals, order=85)
