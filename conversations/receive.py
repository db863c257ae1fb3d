"""receive(): the only inbound entry point. Store first, then let the bot (or the worker) handle it.

Under a per-address lock, one transaction: find or create the contact and its open conversation,
insert the message (a unique (channel, external_id) makes platform retries no-ops), append
message_received, and run the bot's turn (commands, flow step, handoff), queueing replies as rows.
After commit: deliver queued rows, publish live updates, start slow actions (OpenFisca).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import checkpoint, utcnow
from kernel.logscrub import opaque
from bots.base import Attachment, Choice, InboundMessage, Location, OutboundMessage
from casework import transfers as casework_transfers
from conversations import language, tombstones, window
from ops.metrics import handling
from conversations.models import ASSIGNED, FAILED, OUTBOUND, QUEUED, WAITING, Contact, Media, Message
from conversations.webchat_identity import forget_identities
from conversations.store import (
    NewPerson,
    Pending,
    Thread,
    add_event,
    create_threads,
    find_threads,
    insert_inbound_many,
    label_in,
    load_thread,
    queue_message,
    recent_outbound,
)
from flows.engine import (
    ActionRequested,
    AnswerSaved,
    DistressNoticed,
    FlowEnded,
    FlowStarted,
    HandoffRequested,
    Input,
    Said,
    Turn,
)
from flows.inputs import parse_yes_no
from flows.intents import command_of, intent_of
from handoff import transitions
from handoff.models import Organisation
from outreach import inbound as outreach_inbound
from words.catalogue import language_of, room

log = logging.getLogger(__name__)

WORDS = room(__file__)  # conversations/words/<language>.yaml: what the bot itself says
ERASE_YES, ERASE_NO = "erase_yes", "erase_no"


@dataclass
class Received:
    duplicate: bool
    message_id: int | None = None
    conversation_id: int | None = None
    stale: bool = False  # a button of an old question: stored, not handled (the adapter says so)


def inbound_values(inbound: InboundMessage) -> dict:
    payload: dict = {}
    if inbound.choice is not None:
        payload["choice"] = inbound.choice
    if inbound.location is not None:
        payload["location"] = [inbound.location.latitude, inbound.location.longitude]
    if inbound.attachment is not None:
        a = inbound.attachment
        payload["attachment"] = {"kind": a.kind, "content_type": a.content_type, "platform_id": a.platform_id,
                                 "size": a.size, "duration_seconds": a.duration_seconds, "filename": a.filename}
    if inbound.callback_id:
        payload["callback_id"] = inbound.callback_id
    return {"channel": inbound.channel, "external_id": inbound.external_id, "kind": inbound.kind,
            "text": inbound.text, "payload": payload}


def inbound_from_row(message: Message, user_id: str, account: str | None) -> InboundMessage:
    """Rebuild what the person sent from a stored row (to handle it again after a crash)."""
    payload = message.payload or {}
    location = Location(*payload["location"]) if payload.get("location") else None
    attachment = Attachment(**{k: v for k, v in payload["attachment"].items()}) if payload.get("attachment") else None
    return InboundMessage(channel=message.channel, user_id=user_id, external_id=message.external_id or "",
                          text=message.text, choice=payload.get("choice"), location=location,
                          attachment=attachment, account=account)


async def organisation_for(session: AsyncSession, rt, inbound: InboundMessage) -> int:
    """The organisation a new contact belongs to: the one owning the receiving account, else the default."""
    if inbound.account:
        org = (await session.execute(select(Organisation.id).where(
            Organisation.whatsapp_phone_number_id == inbound.account))).scalar()
        if org:
            return org
    return await rt.default_organisation_id(session)


async def receive(rt, inbound: InboundMessage) -> Received:
    """Store and handle one inbound message. Returns once it is committed (see conversations.intake:
    messages arriving together share one transaction)."""
    with handling(inbound.channel):  # ops.metrics: inbound per channel, handling latency
        return await rt.intake.submit(inbound)


async def store_and_handle(rt, inbound: list[InboundMessage]) -> list[tuple[Received, Pending]]:
    """Store messages of distinct people and run the bot's turn for each, in one transaction
    (the caller holds their locks). If that fails, each is tried alone; a message whose handling
    fails is stored unhandled, so nothing is lost (a sweep at start-up handles it again)."""
    try:
        return await _store_and_handle_together(rt, inbound)
    except Exception:
        if len(inbound) > 1:
            log.warning("a batch of %d inbound messages failed; handling them one by one", len(inbound))
            done: list[tuple[Received, Pending]] = []
            for one in inbound:
                done.extend(await store_and_handle(rt, [one]))
            return done
        # Never the platform ids themselves: a web chat's carries the visitor's identity, WhatsApp's the number.
        log.exception("handling failed; storing the message unhandled (%s update %s)", inbound[0].channel,
                      opaque(f"{inbound[0].channel}:{inbound[0].external_id}"))
        async with rt.sessionmaker() as session, session.begin():
            stored = await _store(session, rt, inbound, handled=False)
        return [(received, Pending.empty()) for received, _ in stored]


async def _store_and_handle_together(rt, inbound: list[InboundMessage]) -> list[tuple[Received, Pending]]:
    done: list[tuple[Received, Pending]] = []
    async with rt.sessionmaker() as session, session.begin():
        stored = await _store(session, rt, inbound, handled=True)
        written = [thread for received, thread in stored if not received.duplicate]
        held, behind = await window.held_messages(session, written)  # WhatsApp: the window is open again
        for message, (received, thread) in zip(inbound, stored):
            pending = Pending.empty()
            done.append((received, pending))
            if received.duplicate:
                continue
            if thread.contact.id in held:  # released below: sent before this message's replies
                pending.outbound.append(thread.contact.id)
            if await old_question_pressed(session, thread, message):
                received.stale = True
                if message.callback_id is None:  # no toast on this channel (WhatsApp): said in the chat
                    await say_old_question(rt, session, thread, pending)
                continue
            if thread.contact.id not in behind and rt.outbox.can_claim_at_once(
                    thread.contact.id, thread.address.channel, window_free=True):  # the person has just written
                pending.direct[thread.contact.id] = []
                pending.direct_to[thread.contact.id] = (thread.address, thread.contact)
            await handle(rt, session, thread, message, pending)
        await window.release_held(session, held, {thread.contact.id: thread.contact for thread in written})
    return done


# Buttons that act whatever was asked since (stop, the news consent, a follow-up, a transfer, the
# language, a campaign's): never "an old question".
STANDING_CHOICES = ("cmp:", "fu:", "lang")


async def old_question_pressed(session: AsyncSession, thread: Thread, inbound: InboundMessage) -> bool:
    """A flow button pressed on a question the person answered already or the bot moved past
    (`reply_to`: the platform id of the pressed message; Telegram and WhatsApp give it)."""
    choice = inbound.choice
    if choice is None or not inbound.reply_to or thread.conversation.id is None:
        return False
    if choice.startswith(STANDING_CHOICES) or choice in outreach_inbound.NEWS_CHOICES \
            or choice in casework_transfers.BUTTONS:
        return False
    from conversations.deliver import stale_in, stale_press

    if thread.recent is not None:  # read with the batch (_store)
        return stale_in(thread.recent, inbound.reply_to)
    return await stale_press(session, thread.conversation.id, inbound.reply_to)


async def say_old_question(rt, session: AsyncSession, thread: Thread, pending: Pending) -> None:
    """The question has moved on: say so, then ask the pending one again (nothing is answered)."""
    state = dict(thread.conversation.flow_state or {})
    await say(session, thread, pending, WORDS.text("old_question", locale_of(thread)))
    engine = rt.engine_for(thread.conversation.organisation_id)
    flow, step = state.get("flow"), state.get("step")
    if state.get("waiting") == "input" and flow in engine.flows and step in engine.flows[flow].steps:
        await apply_turn(rt, session, thread, engine.repeat(state), pending)


async def _store(session: AsyncSession, rt, inbound: list[InboundMessage],
                 handled: bool) -> list[tuple[Received, Thread]]:
    """Find or create each person's thread, insert the messages (retries skipped): a few statements
    for the whole list. The messages must come from distinct people."""
    threads = await find_threads(session, [(m.channel, m.user_id) for m in inbound])
    now = utcnow()
    # An update of a person erased within the platforms' retry window is a duplicate: nobody is
    # created or welcomed again. Such a person is unknown now, or known only since the erasure.
    suspects = [(m.channel, m.external_id) for m in inbound
                if (m.channel, m.user_id) not in threads
                or threads[(m.channel, m.user_id)].contact.created_at >= now - tombstones.RETRY_WINDOW]
    erased = await tombstones.buried(session, rt.settings.secret_key, suspects) if suspects else set()
    unknown = [m for m in inbound if (m.channel, m.user_id) not in threads and (m.channel, m.external_id) not in erased]
    if unknown:
        threads.update(await create_threads(session, [
            NewPerson(await organisation_for(session, rt, m), m.channel, m.user_id, m.account,
                      rt.locale_for(m.locale)) for m in unknown]))
    # Button presses: their conversations' recent rows, in one query (the label, the old question).
    pressed = [threads[(m.channel, m.user_id)] for m in inbound
               if m.choice is not None and (m.channel, m.external_id) not in erased]
    recent = await recent_outbound(session, [t.conversation.id for t in pressed if not t.created])
    for thread in pressed:
        thread.recent = recent.get(thread.conversation.id, [])
    rows = []
    for message in inbound:
        if (message.channel, message.external_id) in erased:
            continue
        values = inbound_values(message)
        if message.choice is not None:  # the words the person saw on the button, for the timelines
            thread = threads[(message.channel, message.user_id)]
            label = label_in(thread.recent, message.choice)
            if label is not None:
                values["payload"]["label"] = label
        if handled:
            values["handled_at"] = now
        rows.append((threads[(message.channel, message.user_id)], values))
    inserted = await insert_inbound_many(session, rows) if rows else {}
    stored = []
    kept = iter(rows)
    for message in inbound:
        if (message.channel, message.external_id) in erased:
            stored.append((Received(duplicate=True), None))
            continue
        thread, _ = next(kept)
        message_id = inserted.get((message.channel, message.external_id))
        if message_id is None:
            stored.append((Received(duplicate=True, conversation_id=thread.conversation.id), thread))
            continue
        thread.contact.last_inbound_at = now
        if message.account and thread.address.account != message.account:
            thread.address.account = message.account
        add_event(session, thread.conversation, "message_received", {"message_id": message_id, "kind": message.kind})
        stored.append((Received(duplicate=False, message_id=message_id, conversation_id=thread.conversation.id),
                       thread))
    return stored


def locale_of(thread: Thread) -> str:
    """The language the person reads (Contact.locale; French when unknown)."""
    return language_of(thread.contact.locale)


async def say(session: AsyncSession, thread: Thread, pending: Pending, text: str,
              choices: tuple[tuple[str, str], ...] = (), request_location: bool = False,
              locale: str | None = None) -> None:
    """Queue one bot message; `locale` is the language of `text` (the person's by default)."""
    await queue_message(session, thread, OutboundMessage(
        text, tuple(Choice(v, t) for v, t in choices), request_location=request_location,
        locale=language_of(locale or thread.contact.locale)), pending)


async def handle(rt, session: AsyncSession, thread: Thread, inbound: InboundMessage, pending: Pending) -> None:
    """The bot's part: commands in every state, then the relay to a worker or the flow."""
    conversation, contact = thread.conversation, thread.contact
    state = dict(conversation.flow_state or {})
    inbound = await outreach_inbound.attribute(rt, session, thread, inbound, pending)  # a source's code
    command = command_of(inbound.text) if inbound.choice is None else None
    pending.notify.append((f"org:{conversation.organisation_id}", {"event": "message_received",
                                                                  "conversation": conversation.id}))
    pending.notify.append((f"conversation:{conversation.id}", {"event": "message_received",
                                                              "conversation": conversation.id}))

    if state.get("confirm_erase"):
        answer = inbound.choice or ""
        yes = answer == ERASE_YES or (inbound.text is not None and parse_yes_no(inbound.text) is True)
        state.pop("confirm_erase")
        conversation.flow_state = state
        if yes:
            await erase_contact(rt, session, thread, pending)
            return
        await say(session, thread, pending, WORDS.text("erase.kept", locale_of(thread)))
        if command is None:
            return

    if command == "erase":
        conversation.flow_state = {**state, "confirm_erase": True}
        locale = locale_of(thread)
        await say(session, thread, pending, WORDS.text("erase.confirm", locale),
                  ((ERASE_YES, WORDS.text("erase.yes", locale)), (ERASE_NO, WORDS.text("erase.no", locale))))
        return

    if command == "stop":
        await stop_contact(session, thread, pending)
        return

    if contact.stopped_at is not None:
        if command != "menu":
            return  # "stop" is honoured: the bot stays silent until the person restarts
        contact.stopped_at = None
        add_event(session, conversation, "contact_restarted", pending=pending)

    asked = language.request_of(inbound.text, inbound.choice)  # "English", "🌐", a chooser's button
    if asked is not None:
        await choose_language(rt, session, thread, state, asked[1], pending)
        return

    if inbound.choice in outreach_inbound.NEWS_CHOICES:  # the news consent's buttons
        await outreach_inbound.answer_news(session, thread, inbound.choice, pending, say)
        return

    if inbound.choice is not None and inbound.choice.startswith("fu:"):  # a "Ça a marché ?" button
        from followups.service import on_inbound

        if await on_inbound(rt, session, thread, inbound, pending):
            return

    if conversation.status in (WAITING, ASSIGNED) and (state.get(casework_transfers.STATE_KEY)
                                                       or inbound.choice in casework_transfers.BUTTONS):
        # A transfer to another organisation waits for the person's yes or no (casework/transfers.py).
        if await casework_transfers.answer(rt, session, thread, inbound, pending):
            return

    if conversation.status in (WAITING, ASSIGNED):
        # A human is on: the bot is silent; the message is relayed to the inbox (live update above).
        if conversation.assignee_id:
            pending.notify.append((f"worker:{conversation.assignee_id}", {"event": "message_received",
                                                                          "conversation": conversation.id}))
        return

    await run_bot(rt, session, thread, inbound, command, state, pending)


async def run_bot(rt, session: AsyncSession, thread: Thread, inbound: InboundMessage, command: str | None,
                  state: dict, pending: Pending) -> None:
    engine = rt.engine_for(thread.conversation.organisation_id)  # the organisation's published flows
    contact = thread.contact
    context = await rt.flow_context(session, thread)
    locale = locale_of(thread)
    answers = state.get("answers", {})
    waiting = state.get("waiting")

    def start(flow_id: str, preset: dict | None = None) -> Turn:
        return engine.start(flow_id, answers={k: v for k, v in answers.items() if k == "consent"},
                            locale=locale, context=context, preset=preset)

    if command == "human":
        await apply_turn(rt, session, thread, Turn(events=[HandoffRequested("command")],
                                                   state={**state, "waiting": "done"}), pending)
        return
    if command == "menu":
        await apply_turn(rt, session, thread, start("welcome" if contact.consent is None else "menu"), pending)
        return
    if waiting == "action":
        await say(session, thread, pending, WORDS.text("still_looking", locale))
        return
    if inbound.attachment is not None and "media" in engine.flows:
        context["attachment"] = inbound.attachment.kind  # the media flow words its answer by kind
        await apply_turn(rt, session, thread, start("media"), pending)
        return
    if waiting == "input" and state.get("flow") in engine.flows and state.get("step") in engine.flows[state["flow"]].steps \
            and engine.flows[state["flow"]].steps[state["step"]].ask is not None:  # still a question after a publish
        step = engine.flows[state["flow"]].steps[state["step"]]
        switch = None
        if inbound.text and step.input in ("buttons", "yesno") and state.get("choices"):
            if engine.matches(state, inbound.text) is None \
                    and not engine.notices(inbound.text):  # distress: the engine offers a person
                switch = intent_of(inbound.text, engine.flows)
        if switch is None:
            location = (inbound.location.latitude, inbound.location.longitude) if inbound.location else None
            turn = engine.resume(state, Input(text=inbound.text, choice=inbound.choice, location=location))
            await apply_turn(rt, session, thread, turn, pending)
            return
        intent = switch
    else:
        intent = intent_of(inbound.text, engine.flows) if inbound.text else None

    if contact.consent is None and (intent is None or intent.kind != "human"):
        await apply_turn(rt, session, thread, start("welcome"), pending)
    elif intent is not None and intent.kind == "human":
        await apply_turn(rt, session, thread, Turn(events=[HandoffRequested("free_text")],
                                                   state={**state, "waiting": "done"}), pending)
    elif intent is not None and intent.kind == "flow":
        await apply_turn(rt, session, thread, start(intent.flow, intent.answers), pending)
    else:
        if intent is None:
            await say(session, thread, pending, WORDS.text("not_understood", locale))
        await apply_turn(rt, session, thread, start("menu"), pending)


async def apply_turn(rt, session: AsyncSession, thread: Thread, turn: Turn, pending: Pending) -> None:
    """Turn engine events into rows: outbound messages, answers, events, handoff."""
    conversation, contact = thread.conversation, thread.contact
    turn = outreach_inbound.redirect(rt, thread, turn)  # a source's start instead of the menu
    summary = dict(conversation.summary or {})
    locale = language_of(turn.state.get("locale") or contact.locale)  # the flow's texts are in its locale
    for event in turn.events:
        if isinstance(event, Said):
            text = event.text
            if thread.new_contact:  # the first message to a new person says that other languages are offered
                text, thread.new_contact = f"{text}\n\n{language.welcome_hint(locale)}", False
            await say(session, thread, pending, text, event.choices, event.request_location, locale=locale)
        elif isinstance(event, AnswerSaved):
            if event.key == "consent":
                contact.consent = bool(event.value)
                contact.consent_at = utcnow()
                add_event(session, conversation, "consent_given" if contact.consent else "consent_refused",
                          pending=pending)
            else:
                add_event(session, conversation, "answer_saved", {"key": event.key, "value": event.value})
                if isinstance(event.value, dict) and event.value.get("summary_key"):
                    summary[event.value["summary_key"]] = event.value
        elif isinstance(event, ActionRequested):
            # An id tells this request from a later one at the same step (after "menu", say);
            # the waiting message is said by run_action only if the action is slow.
            turn.state["action"] = {"name": event.name, "args": event.args, "id": secrets.token_hex(8)}
            if event.message:
                turn.state["action"]["notice"] = event.message
            add_event(session, conversation, "action_requested", {"name": event.name})
            pending.actions.append(conversation.id)
        elif isinstance(event, HandoffRequested):
            conversation.flow_state = turn.state
            await transitions.request_handoff(session, thread, event.reason, pending,
                                              presence_seconds=rt.settings.routing_presence_seconds)
        elif isinstance(event, FlowStarted):
            add_event(session, conversation, "flow_started", {"flow": event.flow})
        elif isinstance(event, FlowEnded):
            add_event(session, conversation, "flow_ended", {"flow": event.flow})
        elif isinstance(event, DistressNoticed):  # counted (stats); the words typed are not kept here
            add_event(session, conversation, "distress_noticed", {"kind": event.kind})
    answers = {k: v for k, v in (turn.state.get("answers") or {}).items()
               if not (isinstance(v, dict) and v.get("summary_key"))}
    summary["answers"] = answers
    conversation.summary = summary
    conversation.flow_state = turn.state
    conversation.updated_at = utcnow()
    await outreach_inbound.maybe_ask_news(session, thread, turn, pending, say)  # a quiet moment


async def choose_language(rt, session: AsyncSession, thread: Thread, state: dict, code: str | None,
                          pending: Pending) -> None:
    """The person asked for the chooser (`code` None) or chose a language: saved on the contact and
    on the flow state, confirmed in one short line in that language, then the pending question is
    asked again in it (the welcome, for a person who has not begun)."""
    conversation, contact = thread.conversation, thread.contact
    if code is None:
        text, choices = language.chooser(locale_of(thread))
        await say(session, thread, pending, text, choices)
        return
    contact.locale = code
    add_event(session, conversation, "language_changed", {"locale": code}, pending=pending)
    await say(session, thread, pending, language.switched(code), locale=code)
    state = {**state, "locale": code}
    conversation.flow_state = state
    if conversation.status in (WAITING, ASSIGNED) or state.get("confirm_erase") or state.get("waiting") == "action":
        return  # a human is on, or an answer is on its way: nothing to ask again
    engine = rt.engine_for(conversation.organisation_id)
    flow, step = state.get("flow"), state.get("step")
    if state.get("waiting") == "input" and flow in engine.flows and step in engine.flows[flow].steps:
        await apply_turn(rt, session, thread, engine.repeat(state, code), pending)
        return
    context = await rt.flow_context(session, thread)
    start = "welcome" if contact.consent is None else "menu"
    answers = {k: v for k, v in (state.get("answers") or {}).items() if k == "consent"}
    await apply_turn(rt, session, thread, engine.start(start, answers=answers, locale=code, context=context), pending)


async def stop_contact(session: AsyncSession, thread: Thread, pending: Pending) -> None:
    contact = thread.contact
    already = contact.stopped_at is not None
    contact.stopped_at = utcnow()
    await outreach_inbound.withdraw_news(session, contact.id)  # stop withdraws every consent
    await session.execute(
        update(Message).where(Message.contact_id == contact.id, Message.direction == OUTBOUND,
                              Message.status == QUEUED).values(status=FAILED, error="stopped by the person")
    )
    add_event(session, thread.conversation, "contact_stopped", pending=pending)
    if thread.conversation.status in (WAITING, ASSIGNED):
        await transitions.close(session, thread, None, "stopped by the person", pending, tell_person=False)
    if not already:  # said once
        await say(session, thread, pending, WORDS.text("stopped", locale_of(thread)))


async def erase_contact(rt, session: AsyncSession, thread: Thread, pending: Pending) -> None:
    """Erase everything about the person (all tables, stored files), right after this transaction
    commits (see erase_now). A last message, sent without a row, confirms it."""
    pending.erase_contact_id = thread.contact.id
    pending.notify.append((f"org:{thread.conversation.organisation_id}", {"event": "contact_erased"}))
    pending.farewell = (thread.address.channel, thread.address.external_id, thread.address.account,
                        WORDS.text("erase.done", locale_of(thread)))
    pending.outbound.clear()


async def erase_now(rt, contact_id: int) -> list[str]:
    """Delete the contact and, by cascade, every row about them, leaving tombstones of their recent
    updates (conversations.tombstones); remove their files and folder; on SQLite, checkpoint the WAL
    so that the deleted rows are gone from the files too. Returns the paths of their files (already
    removed). Holds the person's outbox lock so that no delivery of theirs is being recorded meanwhile."""
    async with rt.locks.hold(f"outbox:{contact_id}"):
        async with rt.sessionmaker() as session, session.begin():
            paths = (await session.execute(select(Media.path).where(Media.contact_id == contact_id))).scalars().all()
            await tombstones.bury(session, rt.settings.secret_key, [contact_id])
            await forget_identities(session, contact_id)  # the web chat cookie opens nothing any more
            await session.execute(delete(Contact).where(Contact.id == contact_id))
    await rt.media.delete_contacts([contact_id], paths)  # storage.media: files, folder or objects
    await checkpoint(rt.engine)
    log.info("contact erased on request")
    return list(paths)


async def handle_stored(rt, message_id: int) -> None:
    """Handle an inbound message stored unhandled (after a crash or a failure)."""
    async with rt.sessionmaker() as session:
        message = await session.get(Message, message_id)
        if message is None or message.handled_at is not None:
            return
        thread = await load_thread(session, message.conversation_id)
        key = f"{thread.address.channel}:{thread.address.external_id}"
    async with rt.locks.hold(key):
        pending = Pending.empty()
        async with rt.sessionmaker() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is None or message.handled_at is not None:
                return
            thread = await load_thread(session, message.conversation_id)
            message.handled_at = utcnow()
            inbound = inbound_from_row(message, thread.address.external_id, thread.address.account)
            await handle(rt, session, thread, inbound, pending)
        await rt.after_commit(pending)
