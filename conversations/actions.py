"""Actions a flow asks for (call steps): run outside any transaction and lock, then resume the flow.

An action gets (runtime, conversation id, args, answers) and returns a JSON-able result that the
flow saves under the step's `save` name. A failing action returns {"ok": False}: flows offer a
human instead. Conversations left waiting for an action by a crash are resumed at start-up.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from conversations.models import BOT, Conversation
from conversations.store import Pending, load_thread

log = logging.getLogger(__name__)


async def check_rights(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    from rights.flow import estimate_for_flow

    return await estimate_for_flow(rt.rights, answers)


async def find_places(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    from directory.flow import places_for_flow

    return await places_for_flow(rt.directory, args, answers)


ACTIONS = {"check_rights": check_rights, "find_places": find_places}


async def run_action(rt, conversation_id: int) -> None:
    from conversations.receive import apply_turn

    async with rt.sessionmaker() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None or (conversation.flow_state or {}).get("waiting") != "action":
            return
        state = conversation.flow_state
    requested = state.get("action") or {}
    action = rt.actions.get(requested.get("name"))
    try:
        if action is None:
            raise LookupError(f"unknown action {requested.get('name')!r}")
        result = await action(rt, conversation_id, requested.get("args") or {}, state.get("answers") or {})
        if isinstance(result, dict):
            result.setdefault("ok", True)
    except Exception:
        log.exception("action %s failed", requested.get("name"))
        result = {"ok": False}
    pending = Pending.empty()
    async with rt.sessionmaker() as session:
        thread = await load_thread(session, conversation_id)
        if thread is None:
            return
        key = f"{thread.address.channel}:{thread.address.external_id}"
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            if thread is None or thread.conversation.status != BOT:
                return
            current = thread.conversation.flow_state or {}
            if current.get("waiting") != "action" or current.get("step") != state.get("step"):
                return  # the person moved on (menu, stop...) meanwhile
            turn = rt.flow_engine.resume_action(current, result)
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
