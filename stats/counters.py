"""The dashboard's own counters, real queries over the stored conversations and events.

Counted over [start, end) (UTC instants of the Paris days chosen): contacts by channel (people who
had a conversation that began in the range), needs asked (the places flow's `need` answers), flows
completed (`flow_ended`), estimates shown (rights results that found something: count, monthly
total), places shown by need (searches that showed places), handoffs (requests by reason, then how
they were routed), time to first human reply (from `handoff_requested` to the first
`worker_replied` after it, per conversation: median and 90th percentile, nearest rank), outcomes
(`conversation_closed`, by outcome key: never the worker's free-text detail) and follow-up answers.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter

from sqlalchemy import func, select

from conversations.models import Address, Conversation, Event
from followups.models import ANSWERED, SCHEDULED, SENT, SKIPPED, Followup
from stats.registry import THRESHOLD, Query, Row, register

CHANNELS = {"telegram": "Telegram", "whatsapp": "WhatsApp", "webchat": "Discussion sur le site"}
FLOWS = {"welcome": "Accueil", "menu": "Menu", "places": "Trouver de l'aide près de chez soi",
         "rights": "Connaître ses droits", "talk": "Parler à une personne", "media": "Fichier envoyé"}
REASONS = {"command": "A écrit « humain »", "free_text": "L'a demandé avec ses mots", "followup_help":
           "Suivi : « J'ai besoin d'aide »", "stuck": "A demandé une personne au milieu d'un parcours",
           "talk": "Parcours « Parler à une personne »", "places": "Après une recherche de lieux",
           "rights": "Après une estimation de droits", "media": "A envoyé un fichier ou un message vocal"}
# flows/distress.py's kinds, and "long" (a long story typed at a question): what the dashboard says.
DISTRESS = {"suicide": "Idées suicidaires", "child": "Enfant en danger", "violence": "Violences",
            "street": "À la rue, sans abri", "danger": "Danger", "long": "Longue histoire écrite à une question"}
RULES = {"continuity": "Même personne que la dernière fois", "territory": "Équipe du territoire",
         "routing": "Personne disponible"}
ANSWERS = {"yes": "✅ Oui, ça a marché", "not_yet": "⏳ Pas encore", "help": "🙋 J'ai besoin d'aide"}


def _events(q: Query, *types: str):
    return (select(Event.conversation_id, Event.type, Event.data, Event.created_at)
            .join(Conversation, Conversation.id == Event.conversation_id)
            .where(q.scope(Conversation), Event.type.in_(types), Event.created_at >= q.start, Event.created_at < q.end))


async def _answers(q: Query, key: str) -> list[dict]:
    rows = await q.session.execute(_events(q, "answer_saved").where(Event.data["key"].as_string() == key))
    return [(data or {}).get("value") for _, _, data, _ in rows.all()]


def _counted(counter: Counter, labels: dict | None = None) -> list[Row]:
    return [Row((labels or {}).get(key, key), n) for key, n in counter.most_common()]


async def contacts_by_channel(q: Query) -> list[Row]:
    rows = await q.session.execute(
        select(Address.channel, func.count(func.distinct(Conversation.contact_id)))
        .join(Address, Address.id == Conversation.address_id)
        .where(q.scope(Conversation), Conversation.created_at >= q.start, Conversation.created_at < q.end)
        .group_by(Address.channel))
    return sorted((Row(CHANNELS.get(channel, channel), n) for channel, n in rows.all()), key=lambda r: -r.value)


def need_label(value) -> str:
    """A known need's label, never what was typed ("Autre" for anything else)."""
    from directory.needs import UnknownNeed, resolve_need

    try:
        need = resolve_need(value) if isinstance(value, str) else None
    except (UnknownNeed, ValueError):
        need = None
    return need.label if need else "Autre"


async def needs_asked(q: Query) -> list[Row]:
    return _counted(Counter(need_label(value) for value in await _answers(q, "need")))


async def flows_completed(q: Query) -> list[Row]:
    rows = await q.session.execute(_events(q, "flow_ended"))
    counted = Counter(str((data or {}).get("flow") or "?") for _, _, data, _ in rows.all())
    counted.pop("menu", None)
    counted.pop("welcome", None)
    return _counted(counted, FLOWS)


async def estimates_shown(q: Query) -> list[Row]:
    values = [v for v in await _answers(q, "rights_result") if isinstance(v, dict) and v.get("ok")]
    found = [v for v in values if v.get("found")]
    totals = [float(v.get("monthly_total") or 0) for v in found]
    return [Row("Estimations faites", len(values)), Row("Estimations avec au moins une aide", len(found)),
            Row("Total mensuel estimé (toutes personnes)", round(sum(totals)) if len(found) >= THRESHOLD else None,
                "euros")]


async def places_by_need(q: Query) -> list[Row]:
    return _counted(Counter(need_label(value.get("need")) for value in await _answers(q, "places_result")
                            if isinstance(value, dict) and value.get("found")))


async def handoffs(q: Query) -> list[Row]:
    rows = (await q.session.execute(_events(q, "handoff_requested", "conversation_assigned", "conversation_queued",
                                            "conversation_escalated"))).all()
    reasons = Counter(str((d or {}).get("reason")) for _, t, d, _ in rows if t == "handoff_requested")
    result = [Row(f"Demandes : {REASONS.get(k, 'autre raison')}", n) for k, n in reasons.most_common()]
    routed = Counter(str((d or {}).get("rule") or (d or {}).get("by")) for _, t, d, _ in rows
                     if t == "conversation_assigned")
    result.append(Row("Confiées à une personne nommée", sum(routed.values())))
    result.append(Row("Mises en attente d'une équipe", sum(1 for _, t, _, _ in rows if t == "conversation_queued")))
    result.append(Row("Proposées à l'équipe suivante (attente trop longue)",
                      sum(1 for _, t, _, _ in rows if t == "conversation_escalated")))
    return result


async def distress_noticed(q: Query) -> list[Row]:
    """Messages where the bot noticed distress or danger and offered a person at once, by kind (the
    words typed are never stored with the event)."""
    rows = await q.session.execute(_events(q, "distress_noticed"))
    return _counted(Counter(str((data or {}).get("kind")) for _, _, data, _ in rows.all()), DISTRESS)


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


async def first_reply_minutes(q: Query) -> list[float]:
    """Per conversation whose first handoff request in the range got a worker's reply: the minutes between."""
    rows = (await q.session.execute(
        select(Event.conversation_id, Event.type, Event.created_at)
        .join(Conversation, Conversation.id == Event.conversation_id)
        .where(q.scope(Conversation), Event.type.in_(("handoff_requested", "worker_replied")),
               Event.created_at >= q.start)
        .order_by(Event.conversation_id, Event.created_at, Event.id))).all()
    asked: dict[int, object] = {}
    replied: dict[int, float] = {}
    for conversation_id, type_, at in rows:
        if type_ == "handoff_requested":
            if conversation_id not in asked and at < q.end:
                asked[conversation_id] = at
        elif conversation_id in asked and conversation_id not in replied:
            replied[conversation_id] = (at - asked[conversation_id]).total_seconds() / 60
    return list(replied.values()), len(asked)


async def first_reply(q: Query) -> list[Row]:
    minutes, asked = await first_reply_minutes(q)
    enough = len(minutes) >= THRESHOLD
    return [Row("Demandes d'une personne", asked), Row("Avec une réponse", len(minutes)),
            Row("Médiane", statistics.median(minutes) if enough else None, "minutes"),
            Row("9 demandes sur 10 en moins de", nearest_rank(minutes, 90) if enough else None, "minutes")]


async def outcomes(q: Query) -> list[Row]:
    from handoff.inbox import OUTCOMES
    from handoff.inbox_view import words

    by_label = {label: label for label in OUTCOMES.values()} | words()["reasons"]  # a worker's, or the app's
    rows = await q.session.execute(_events(q, "conversation_closed"))
    counted: Counter = Counter()
    for _, _, data, _ in rows.all():
        label = str((data or {}).get("outcome") or "").split(" — ", 1)[0]
        counted[by_label.get(label, "Autre")] += 1
    return _counted(counted)


async def followup_answers(q: Query) -> list[Row]:
    rows = (await q.session.execute(
        select(Followup.status, Followup.answer, func.count())
        .join(Conversation, Conversation.id == Followup.conversation_id)
        .where(q.scope(Conversation), Followup.created_at >= q.start, Followup.created_at < q.end)
        .group_by(Followup.status, Followup.answer))).all()
    by_status = Counter()
    answers = Counter()
    for status, answer, n in rows:
        by_status[status] += n
        if status == ANSWERED:
            answers[answer] += n
    result = [Row("Suivis prévus", sum(n for s, n in by_status.items() if s != "cancelled")),
              Row("Envoyés", by_status[SENT] + by_status[ANSWERED]),
              Row("Non envoyés (stop)", by_status[SKIPPED]), Row("En attente d'envoi", by_status[SCHEDULED])]
    result += [Row(f"Réponse : {ANSWERS[key]}", answers[key]) for key in ANSWERS]
    return result


register("contacts_by_channel", "Personnes par canal", contacts_by_channel, order=10)
register("needs_asked", "Besoins demandés", needs_asked, order=20)
register("flows_completed", "Parcours terminés", flows_completed, order=30)
register("estimates_shown", "Estimations de droits montrées", estimates_shown, order=40, chart=False)
register("places_by_need", "Recherches de lieux avec résultats, par besoin", places_by_need, order=50)
register("handoffs", "Mises en relation avec une personne", handoffs, order=60)
register("distress_noticed", "Détresse ou danger repérés par le robot", distress_noticed, order=65,
         description="Une personne a été proposée tout de suite, avec les numéros d'urgence utiles.")
register("first_reply", "Temps avant la première réponse d'une personne", first_reply, order=70, chart=False,
         description="Depuis la demande jusqu'au premier message d'une personne de l'équipe.")
register("outcomes", "Résultats des conversations terminées", outcomes, order=80)
register("followup_answers", "Messages « Ça a marché ? »", followup_answers, order=90)
