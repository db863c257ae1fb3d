"""WhatsApp's 24-hour window, as the outbox sees it: what the channel's `prepare` needs, held messages.

Free-form messages reach a person only within 24 h of their last message. Outside it:
- if the organisation has an approved template (Organisation.whatsapp_templates["reply"], else
  settings.whatsapp_reply_template), the template goes out instead, inviting the person to answer,
  and the worker's message is *held* (status "held", shown in the inbox). When the person writes
  again, held messages are queued and sent as they were written. One invitation at a time: later
  messages are held behind it without a second template.
- otherwise the message fails with a clear explanation for the worker (WINDOW_CLOSED).
The asynchronous failure 131047 (the platform found the window closed) is handled the same way.
"""

from __future__ import annotations

import logging

from sqlalchemy import case, exists, false, select, update

from kernel.database import one_of
from conversations.models import FAILED, OUTBOUND, QUEUED, SENDING, Conversation, Message
from handoff.models import Organisation, Worker

log = logging.getLogger(__name__)

HELD = "held"
WINDOW_CLOSED = "fenêtre de 24 h fermée : la personne doit d'abord réécrire"
WINDOW_CODE = "131047"


async def window_context(rt, session, message: Message, contact) -> dict:
    """Template name and parameters, and whether an invitation is already waiting for an answer."""
    organisation = await session.get(Organisation, contact.organisation_id)
    templates = (organisation.whatsapp_templates or {}) if organisation else {}
    payload = message.payload or {}
    purpose = payload.get("template_purpose")  # a reminder, a follow-up: its own approved template
    if purpose and templates.get(purpose):  # sent even behind an unanswered invitation
        return {"template": templates[purpose], "template_params": tuple(payload.get("template_params") or ()),
                "awaiting_answer": False, "window_closed": bool(payload.get("window_closed"))}
    template = templates.get("reply") or rt.settings.whatsapp_reply_template
    worker_id = message.author_worker_id
    if worker_id is None:
        worker_id = (await session.execute(select(Conversation.assignee_id).where(
            Conversation.id == message.conversation_id))).scalar()
    name = None
    if worker_id is not None:
        name = (await session.execute(select(Worker.first_name).where(Worker.id == worker_id))).scalar()
    name = name or (organisation.name if organisation else None)
    awaiting = (await session.execute(select(exists().where(
        Message.contact_id == contact.id, Message.direction == OUTBOUND, Message.status == HELD,
        Message.id != message.id)))).scalar()
    return {"template": template, "template_params": (name,) if name else (), "awaiting_answer": bool(awaiting),
            "window_closed": bool((message.payload or {}).get("window_closed"))}


def window_failure(message: Message, error: str | None) -> str | None:
    """A failed status 131047: 'requeue' (try again through the template path), 'failed', or None."""
    if WINDOW_CODE not in (error or ""):
        return None
    if (message.payload or {}).get("window_closed"):
        message.status, message.error = FAILED, WINDOW_CLOSED
        return "failed"
    message.status, message.error, message.next_attempt_at = QUEUED, None, None
    message.payload = {**(message.payload or {}), "window_closed": True}
    return "requeue"


UNSENT = (HELD, QUEUED, SENDING)  # a person's outbound rows still to send, in order


def unsent_column(contact_id, channel):
    """For find_threads' query (conversations/store.py): whether a WhatsApp person has rows still
    to send (False for the other channels, without looking), so that held_messages reads those
    rows only for the people who have some — most people who write have none."""
    return case((channel == "whatsapp", exists().where(
        Message.contact_id == contact_id, Message.direction == OUTBOUND, Message.status.in_(UNSENT))),
        else_=false())


async def held_messages(session, threads) -> tuple[dict[int, list], set[int]]:
    """For the WhatsApp people of `threads` (who have just written), one query for a batch of the
    intake: their held rows (id, payload) by contact id, which release_held queues, and the people
    with rows still to send (held, queued or being sent, by this process or another), whose new
    replies must queue behind those (no claim at once: the outbox sends a person's rows in order)."""
    people = sorted({thread.contact.id for thread in threads
                     if thread.address.channel == "whatsapp" and not thread.new_contact
                     and thread.unsent is not False})  # (False: find_threads saw none)
    if not people:
        return {}, set()
    held: dict[int, list] = {}
    behind: set[int] = set()
    for id_, contact_id, status, payload in (await session.execute(
            select(Message.id, Message.contact_id, Message.status, Message.payload).where(
                one_of(session, Message.contact_id, people), Message.direction == OUTBOUND,
                Message.status.in_(UNSENT)).order_by(Message.id))).all():
        behind.add(contact_id)
        if status == HELD:
            held.setdefault(contact_id, []).append((id_, payload))
    return held, behind


async def release_held(session, held: dict[int, list], contacts: dict) -> None:
    """The person wrote again: their held messages (`held_messages`) go out now, in order — in the
    inbound's own transaction, once it has been handled: failed instead if the person has stopped
    (« stop » now or before, unless they restarted just now). `contacts`: contact id -> Contact."""
    if not held:
        return
    await session.execute(update(Message), [
        {"id": id_, "status": FAILED, "error": "stopped by the person"}
        if contacts[contact_id].stopped_at is not None else
        {"id": id_, "status": QUEUED, "next_attempt_at": None, "error": None,
         "payload": {k: v for k, v in (payload or {}).items() if k != "window_closed"}}
        for contact_id, rows in held.items() for id_, payload in rows])
    log.info("%d held message(s) released after the person wrote", sum(len(rows) for rows in held.values()))
