"""Actions a flow asks for (call steps): run outside any transaction and lock, then resume the flow.

An action gets (runtime, conversation id, args, answers) and returns a JSON-able result that the
flow saves under the step's `save` name. A failing action returns {"ok": False}: flows offer a
human instead. The step's waiting message is said only if the action is slow. Conversations left
waiting for an action by a crash are resumed at start-up.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from conversations.models import BOT, Conversation
from conversations.store import Pending, load_thread

log = logging.getLogger(__name__)


async def check_rights(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    from rights.flow import estimate_for_flow

    from ops.metrics import rights_timer

    with rights_timer():  # ops.metrics: rights estimate latency
        return await estimate_for_flow(rt.rights, answers)


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
    requested = state.get("action") or {}
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
            await apply_turn(rt, session, thread, turn, pending)
        await rt.after_commit(pending)


async def sweep_actions(rt) -> None:
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Conversation.id, Conversation.flow_state)
                                      .where(Conversation.status == BOT))).all()
    for conversation_id, state in rows:
        if (state or {}).get("waiting") == "action":
            rt.spawn(run_action(rt, conversation_id))
