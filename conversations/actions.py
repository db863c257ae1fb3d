"""Actions a flow asks for (call steps): run outside any transaction and lock, then resume the flow.

An action gets (runtime, conversation id, args, answers) and returns a JSON-able result that the
flow saves under the step's `save` name. A failing action returns {"ok": False}: flows offer a
human instead. The step's waiting message is said only if the action is slow. Conversations left
waiting for an action by a crash are resumed at start-up.

An action is given the person's language (args["locale"]) and may return `rich`: a list of
{"says": text, "messages": [{"text", "links": [[title, url]], "venue": {...}}]}. When the flow
says a text equal to an entry's `says`, that entry's messages go out instead, each an outbox row
whose payload carries its links, venue and locale (the places answer: one message per place, with
"🗺️ Voir sur la carte", "📞 Appeler", a venue; the rights answer: "👉 Faire la demande").
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from conversations.models import BOT, OUTBOUND, Conversation, Message
from flows.engine import Said
from conversations.store import Pending, load_thread

log = logging.getLogger(__name__)


async def check_rights(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    from rights.flow import estimate_for_flow

    from ops.metrics import rights_timer

    with rights_timer():  # ops.metrics: rights estimate latency
        return await estimate_for_flow(rt.rights, answers, args.get("locale") or "fr")


async def find_places(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    from directory.flow import places_for_conversation

    return await places_for_conversation(rt, conversation_id, args, answers)  # its organisation's view


ACTIONS = {"check_rights": check_rights, "find_places": find_places}


async def run_action(rt, conversation_id: int) -> None:
    """Run the action the conversation waits for, then resume its flow with the result. The call
    step's waiting message ("⏳ Je calcule…") is said only if the action is still running after
    `action_notice_after_seconds` (at once when 0), so always before the results."""
    async with rt.sessionmaker() as session:
        thread = await load_thread(session, conversation_id)
        if thread is None or (thread.conversation.flow_state or {}).get("waiting") != "action":
            return
        state = thread.conversation.flow_state
        key = f"{thread.address.channel}:{thread.address.external_id}"
        locale = state.get("locale") or thread.contact.locale or "fr"
    requested = state.get("action") or {}
    requested = {**requested, "args": {**(requested.get("args") or {}), "locale": locale}}
    work = asyncio.ensure_future(_perform(rt, conversation_id, requested, state.get("answers") or {}))
    try:
        if requested.get("notice") and not requested.get("noticed"):
            delay = rt.settings.action_notice_after_seconds
            if delay > 0:
                await asyncio.wait({work}, timeout=delay)
            if not work.done():
                try:
                    await _say_notice(rt, conversation_id, key, state)
                except Exception:  # a courtesy: the results matter more
                    log.exception("waiting message of action %s not queued", requested.get("name"))
        result = await work
    finally:
        work.cancel()  # only does something if run_action itself is cancelled (shutdown)
    await _resume(rt, conversation_id, key, state, result)


async def _perform(rt, conversation_id: int, requested: dict, answers: dict) -> dict:
    action = rt.actions.get(requested.get("name"))
    try:
        if action is None:
            raise LookupError(f"unknown action {requested.get('name')!r}")
        result = await action(rt, conversation_id, requested.get("args") or {}, answers)
        if isinstance(result, dict):
            result.setdefault("ok", True)
        return result
    except Exception:
        log.exception("action %s failed", requested.get("name"))
        return {"ok": False}


def _still_waiting_for(current: dict, state: dict) -> bool:
    """Is the conversation still waiting for the action requested in `state`? (The person may have
    typed "menu" meanwhile, and even reached the same step again: a new request.)"""
    return (current.get("waiting") == "action" and current.get("flow") == state.get("flow")
            and current.get("step") == state.get("step")
            and (current.get("action") or {}).get("id") == (state.get("action") or {}).get("id"))


async def _say_notice(rt, conversation_id: int, key: str, state: dict) -> None:
    """Queue the waiting message in its own short transaction, under the person's lock; mark it
    said, so that a restart (sweep_actions) does not say it twice."""
    from conversations.receive import say

    pending = Pending.empty()
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            if thread is None or thread.conversation.status != BOT or thread.contact.stopped_at is not None:
                return
            current = thread.conversation.flow_state or {}
            if not _still_waiting_for(current, state):
                return
            await say(session, thread, pending, current["action"]["notice"])
            thread.conversation.flow_state = {**current, "action": {**current["action"], "noticed": True}}
        await rt.after_commit(pending)


async def _resume(rt, conversation_id: int, key: str, state: dict, result) -> None:
    from conversations.receive import apply_turn

    pending = Pending.empty()
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            if thread is None or thread.conversation.status != BOT:
                return
            current = thread.conversation.flow_state or {}
            if not _still_waiting_for(current, state):
                return  # the person moved on (menu, stop...) meanwhile
            if thread.contact.stopped_at is not None:  # "stop" said meanwhile: honoured, results dropped
                thread.conversation.flow_state = {k: v for k, v in current.items() if k not in ("action", "waiting")}
                return
            engine = rt.engine_for(thread.conversation.organisation_id)
            if current.get("step") not in getattr(engine.flows.get(current.get("flow")), "steps", {}):
                # a publish removed the step meanwhile: the result is dropped, the next message starts afresh
                thread.conversation.flow_state = {k: v for k, v in current.items() if k not in ("action", "waiting")}
                return
            turn = engine.resume_action(current, result)
            turn.state.pop("action", None)
            extras = expand_rich(turn, result)
            before = _outbound_rows(session)
            await apply_turn(rt, session, thread, turn, pending)
            attach_rich(session, before, extras, conversation_id,
                        (result or {}).get("locale") if isinstance(result, dict) else None)
        await rt.after_commit(pending)


MAX_RICH_MESSAGES = 20  # a places answer: emergency, 5 places, numbers, hints


def expand_rich(turn, result) -> list[dict]:
    """Replace each Said whose text is a `rich` entry's `says` by that entry's messages (plain
    Saids, in order); returns the messages whose rows need links or a venue."""
    rich = (result or {}).get("rich") if isinstance(result, dict) else None
    if not isinstance(rich, list) or not rich:
        return []
    by_text = {}
    for entry in rich:
        if isinstance(entry, dict) and isinstance(entry.get("says"), str) and isinstance(entry.get("messages"), list):
            by_text.setdefault(entry["says"].strip(), [m for m in entry["messages"][:MAX_RICH_MESSAGES]
                                                        if isinstance(m, dict) and m.get("text")])
    extras: list[dict] = []
    events = []
    for event in turn.events:
        messages = by_text.get(event.text.strip()) if isinstance(event, Said) and not event.choices else None
        if not messages:
            events.append(event)
            continue
        for message in messages:
            events.append(Said(message["text"]))
            if message.get("links") or message.get("venue"):
                extras.append(message)
    turn.events[:] = events
    return extras


def _outbound_rows(session) -> set[int]:
    return {id(obj) for obj in (*session.new, *session.identity_map.values())
            if isinstance(obj, Message) and obj.direction == OUTBOUND}


def attach_rich(session, before: set[int], extras: list[dict], conversation_id: int, locale: str | None) -> None:
    """Put the links and venues of `extras` on the rows apply_turn just queued for their texts
    (before the commit, so the outbox reads them: payload "links", "venue", "locale")."""
    if not extras:
        return
    rows = [obj for obj in (*session.new, *session.identity_map.values())
            if isinstance(obj, Message) and obj.direction == OUTBOUND and id(obj) not in before
            and obj.conversation_id == conversation_id]
    for message in extras:
        row = next((r for r in rows if r.text == message["text"]), None)
        if row is None:
            continue
        rows.remove(row)
        payload = dict(row.payload or {})
        links = [[str(t), str(u)] for t, u in (message.get("links") or [])
                 if str(u).startswith(("https://", "http://", "tel:"))]
        if links:
            payload["links"] = links
        if isinstance(message.get("venue"), dict):
            payload["venue"] = message["venue"]
        if locale:
            payload.setdefault("locale", locale)
        row.payload = payload


async def sweep_actions(rt) -> None:
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Conversation.id, Conversation.flow_state)
                                      .where(Conversation.status == BOT))).all()
    for conversation_id, state in rows:
        if (state or {}).get("waiting") == "action":
            rt.spawn(run_action(rt, conversation_id))
