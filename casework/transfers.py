"""Transfer to another organisation of the deployment, with the person's agreement.

1. A worker asks (`ask`): a Referral row (kind "organisation", status "asked"), the question sent
   to the person with two buttons (through the outbox, like every message), the worker's note kept
   in the conversation's flow state (it goes with the person on erasure), an event in the timeline.
2. The person answers (`answer`, called by conversations.receive.handle while a human has the
   conversation, when a question is pending): "✅ Oui" moves the conversation
   (`handoff.transitions.move_to_organisation`: the other organisation's routing, the person told
   who answers), audited in both organisations; "❌ Non" keeps it, the worker sees it. Anything
   else is relayed to the worker as usual and the question stays open.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from admin.audit import record
from kernel.database import utcnow
from bots.base import Choice, OutboundMessage
from casework import texts
from words.catalogue import language_of
from casework.models import ACCEPTED, ASKED, DECLINED, TO_ORGANISATION, WITHDRAWN, Referral
from conversations.store import Pending, Thread, add_event, queue_message
from handoff import transitions
from handoff.models import Organisation, Worker

STATE_KEY = "casework_transfer"
YES, NO = "casework_transfer_yes", "casework_transfer_no"
BUTTONS = (YES, NO)


async def ask(session: AsyncSession, thread: Thread, worker: Worker, target: Organisation, note: str,
              pending: Pending) -> Referral:
    conversation = thread.conversation
    referral = Referral(organisation_id=conversation.organisation_id, conversation_id=conversation.id,
                        kind=TO_ORGANISATION, status=ASKED, to_organisation_id=target.id,
                        partner_name=target.name[:300], worker_id=worker.id)
    session.add(referral)
    await session.flush()
    conversation.flow_state = {**(conversation.flow_state or {}),
                               STATE_KEY: {"referral_id": referral.id, "note": note, "worker": worker.first_name,
                                           "worker_id": worker.id}}
    add_event(session, conversation, "transfer_asked",
              {"label": texts.label("transfer_asked", organisation=target.name), "referral_id": referral.id,
               "to_organisation_id": target.id, "note": note, "worker": worker.first_name},
              worker_id=worker.id, pending=pending)
    locale = language_of(thread.contact.locale)
    await queue_message(session, thread, OutboundMessage(
        texts.person("transfer_question", locale, worker=worker.first_name, organisation=target.name),
        (Choice(YES, texts.person("button_yes", locale)), Choice(NO, texts.person("button_no", locale))),
        locale=locale), pending)
    record(session, organisation_id=conversation.organisation_id, actor_id=worker.id, action="transfer.asked",
           target_type="conversation", target_id=conversation.id,
           details={"referral_id": referral.id, "to_organisation_id": target.id})
    return referral


def _answer_of(inbound) -> bool | None:
    if inbound.choice in (YES, NO):
        return inbound.choice == YES
    if inbound.choice is None and inbound.text:
        from flows.inputs import parse_yes_no

        return parse_yes_no(inbound.text)
    return None


async def answer(rt, session: AsyncSession, thread: Thread, inbound, pending: Pending) -> bool:
    """The person's answer to a pending transfer question. True: handled (nothing else to do)."""
    conversation = thread.conversation
    locale = language_of(thread.contact.locale)
    pending_transfer = (conversation.flow_state or {}).get(STATE_KEY)
    if not isinstance(pending_transfer, dict):
        if inbound.choice in (YES, NO):  # an old button, already answered: say so, never a code to the worker
            await queue_message(session, thread, OutboundMessage(texts.person("transfer_moved_on", locale),
                                                                 locale=locale), pending)
            return True
        return False
    yes = _answer_of(inbound)
    if yes is None:
        return False  # a message of its own: relayed to the worker; the question stays open
    state = dict(conversation.flow_state)
    state.pop(STATE_KEY, None)
    conversation.flow_state = state
    referral = await session.get(Referral, pending_transfer.get("referral_id") or 0)
    target = await session.get(Organisation, referral.to_organisation_id) if referral and referral.to_organisation_id else None
    if referral is None or referral.status != ASKED or target is None or referral.conversation_id != conversation.id:
        return False
    referral.answered_at = utcnow()
    worker_id = pending_transfer.get("worker_id")
    from_organisation_id = conversation.organisation_id
    if not yes:
        referral.status = DECLINED
        add_event(session, conversation, "transfer_declined",
                  {"label": texts.label("transfer_declined"), "referral_id": referral.id}, pending=pending)
        await queue_message(session, thread, OutboundMessage(texts.person(
            "transfer_declined", locale, worker=pending_transfer.get("worker") or texts.person("someone", locale)),
            locale=locale), pending)
        record(session, organisation_id=from_organisation_id, actor_id=None, action="transfer.declined",
               target_type="conversation", target_id=conversation.id, details={"referral_id": referral.id})
        if conversation.assignee_id:
            pending.notify.append((f"worker:{conversation.assignee_id}", {"event": "transfer_declined",
                                                                          "conversation": conversation.id}))
        return True
    referral.status = ACCEPTED
    source = await session.get(Organisation, from_organisation_id)
    await queue_message(session, thread, OutboundMessage(
        texts.person("transfer_accepted", locale, organisation=target.name), locale=locale), pending)
    record(session, organisation_id=from_organisation_id, actor_id=None, action="transfer.accepted",
           target_type="conversation", target_id=conversation.id,
           details={"referral_id": referral.id, "to_organisation_id": target.id})
    await transitions.move_to_organisation(
        session, thread, target, pending, label=texts.label("transfer_accepted", organisation=target.name),
        presence_seconds=rt.settings.routing_presence_seconds)
    add_event(session, conversation, "transfer_received",
              {"label": texts.label("transfer_received", organisation=source.name if source else "?")
               + (texts.label("transfer_note", worker=pending_transfer.get("worker") or "",
                              note=pending_transfer["note"]) if pending_transfer.get("note") else ""),
               "note": pending_transfer.get("note") or "", "worker": pending_transfer.get("worker") or "",
               "from_organisation_id": from_organisation_id}, pending=pending)
    record(session, organisation_id=target.id, actor_id=None, action="transfer.received",
           target_type="conversation", target_id=conversation.id, details={"from_organisation_id": from_organisation_id})
    if worker_id:
        pending.notify.append((f"worker:{worker_id}", {"event": "transfer_accepted", "conversation": conversation.id}))
    return True


async def withdraw_pending(session: AsyncSession, thread: Thread, pending: Pending) -> None:
    """The conversation closes while a transfer question waits: the question lapses (the referral is
    "withdrawn", the timeline says so); a later press of its buttons is answered as an old question."""
    conversation = thread.conversation
    asked = (conversation.flow_state or {}).get(STATE_KEY)
    if not isinstance(asked, dict):
        return
    state = dict(conversation.flow_state)
    state.pop(STATE_KEY, None)
    conversation.flow_state = state
    referral = await session.get(Referral, asked.get("referral_id") or 0)
    if referral is None or referral.status != ASKED or referral.conversation_id != conversation.id:
        return
    referral.status = WITHDRAWN
    referral.answered_at = utcnow()
    add_event(session, conversation, "transfer_withdrawn",
              {"label": texts.label("transfer_withdrawn", organisation=referral.partner_name),
               "referral_id": referral.id}, pending=pending)
