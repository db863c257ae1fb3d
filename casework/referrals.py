"""Outside referrals: a partner picked from the directory (searched by name; the data·inclusion
structure and service ids kept on the row), a summary the person agreed to share (prefilled from
the conversation's summary, edited by the worker), copied or sent by e-mail (a mailto: link).

The Referral row keeps ids and the partner's name only; the shared summary is in the timeline's
event (personal data: it goes with the conversation)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.audit import record
from casework import texts
from casework.models import RECORDED, TO_PARTNER, Referral
from conversations.models import Conversation
from conversations.store import Pending, add_event
from directory.models import ORIGIN_ORGANISATION, PlaceOverride, Service, Structure, owner_source
from handoff.models import Organisation, Worker

MAX_PARTNERS = 10
METHODS = ("copy", "email")


@dataclass
class Partner:
    structure_id: str
    name: str
    commune: str
    email: str
    phone: str
    services: list[tuple[str, str, str]]  # (service id, name, e-mail)


def _escape_like(query: str) -> str:
    return query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible(slug: str):
    """Shared places, and the organisation's own (not another organisation's)."""
    return or_(Structure.origin != ORIGIN_ORGANISATION, Structure.source == owner_source(slug))


async def search_partners(session: AsyncSession, organisation: Organisation, query: str) -> list[Partner]:
    query = " ".join(query.split())[:100]
    if len(query) < 2:
        return []
    hidden = select(PlaceOverride.place_id).where(PlaceOverride.organisation_id == organisation.id)
    pattern = f"%{_escape_like(query.lower())}%"
    rows = (await session.execute(select(Structure).where(
        _visible(organisation.slug), Structure.id.not_in(hidden),
        or_(func.lower(Structure.nom).like(pattern, escape="\\"), func.lower(Structure.commune).like(pattern, escape="\\")))
        .order_by(Structure.nom).limit(MAX_PARTNERS))).scalars().all()
    services: dict[str, list] = {}
    if rows:
        for service in (await session.execute(select(Service.id, Service.nom, Service.courriel, Service.structure_id)
                                               .where(Service.structure_id.in_([r.id for r in rows]))
                                               .order_by(Service.nom))).all():
            services.setdefault(service.structure_id, []).append((service.id, service.nom, service.courriel or ""))
    return [Partner(r.id, r.nom, r.commune or "", r.courriel or "", r.telephone or "", services.get(r.id, [])[:8])
            for r in rows]


async def partner(session: AsyncSession, organisation: Organisation, structure_id: str,
                  service_id: str | None) -> tuple[Structure, Service | None] | None:
    """The structure (and service) if this organisation may see it; None otherwise."""
    structure = await session.get(Structure, structure_id)
    if structure is None or (structure.origin == ORIGIN_ORGANISATION
                             and structure.source != owner_source(organisation.slug)):
        return None
    if (await session.execute(select(PlaceOverride.id).where(
            PlaceOverride.organisation_id == organisation.id, PlaceOverride.place_id == structure_id,
            PlaceOverride.hidden.is_(True)))).first():
        return None
    service = None
    if service_id:
        service = await session.get(Service, service_id)
        if service is None or service.structure_id != structure.id:
            return None
    return structure, service


def prefilled_summary(conversation: Conversation) -> str:
    """The conversation's answers as plain lines (« - Commune : Rezé »), French labels from
    casework/data/texts.yaml, the flows' own bookkeeping left out; the worker edits it."""
    labels, skip = texts.texts().get("summary_labels", {}), set(texts.texts().get("summary_skip", []))
    order = {key: position for position, key in enumerate(labels)}  # PostgreSQL's JSONB keeps no order
    answers = (conversation.summary or {}).get("answers") or {}
    lines = []
    for key, value in sorted(answers.items(), key=lambda item: (order.get(item[0], len(order)), item[0])):
        if key in skip:
            continue
        shown = value.get("label") if isinstance(value, dict) else value
        if isinstance(shown, list):
            shown = ", ".join(str(item) for item in shown)
        if shown in (None, "", {}):
            continue
        lines.append(f"- {labels.get(key, key.replace('_', ' ').capitalize())} : {shown}")
    return "\n".join(lines)


def mailto(address: str, subject: str, body: str) -> str:
    return f"mailto:{quote(address, safe='@')}?subject={quote(subject)}&body={quote(body)}"


async def record_referral(session: AsyncSession, conversation: Conversation, worker: Worker, structure: Structure,
                          service: Service | None, summary: str, method: str, pending: Pending) -> Referral:
    name = structure.nom + (f" — {service.nom}" if service else "")
    referral = Referral(organisation_id=conversation.organisation_id, conversation_id=conversation.id,
                        kind=TO_PARTNER, status=RECORDED, structure_id=structure.id,
                        service_id=service.id if service else None, partner_name=name[:300], method=method,
                        worker_id=worker.id)
    session.add(referral)
    await session.flush()
    add_event(session, conversation, "referral_recorded",
              {"label": texts.label("referral_recorded", partner=name, method=texts.method(method)),
               "referral_id": referral.id, "structure_id": structure.id,
               "service_id": service.id if service else None, "method": method, "summary": summary,
               "worker": worker.first_name, "agreed": True}, worker_id=worker.id, pending=pending)
    record(session, organisation_id=conversation.organisation_id, actor_id=worker.id, action="referral.recorded",
           target_type="conversation", target_id=conversation.id,
           details={"referral_id": referral.id, "structure_id": structure.id, "method": method})
    return referral
