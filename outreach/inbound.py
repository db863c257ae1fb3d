"""What outreach adds to the inbound path (called by conversations.receive, inside its transaction):

- `attribute`: a message carrying a source's code (Telegram `/start <code>`, a WhatsApp text with
  the code, the web chat's `?src=<code>`) records the source on the conversation (`contact_sources`
  and `conversation.summary["source"]`, which routing reads: the source's team wins). An unknown
  code is ignored quietly.
- `source_start`: a source may start a flow (and answer its first question: the places flow on
  the food need) instead of the menu.
- consent per purpose (news): asked in a quiet moment (a flow has just ended and nothing is asked),
  never at the first message; answered by buttons; withdrawn by « stop » or a button.
"""

from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from bots.base import Choice, InboundMessage, OutboundMessage
from conversations.store import Pending, Thread, add_event, queue_message
from flows.engine import AnswerSaved, FlowEnded, FlowStarted, HandoffRequested, Input, Said, Turn
from outreach.models import NEWS, Consent, ContactSource, Source
from outreach.sources import codes_in, texts, valid_code

START = re.compile(r"^/start(?:@\w+)?\s+(\S{1,64})\s*$")
NEWS_YES, NEWS_NO, NEWS_STOP = "news_yes", "news_no", "news_stop"
NEWS_CHOICES = (NEWS_YES, NEWS_NO, NEWS_STOP)


async def attribute(rt, session: AsyncSession, thread: Thread, inbound: InboundMessage,
                    pending: Pending) -> InboundMessage:
    """Record the source named by the message, if any; returns the message as the bot should read it
    (`/start <code>` becomes `/start`, whatever the code)."""
    from outreach.campaigns import BUTTONS

    if inbound.choice in BUTTONS:  # a campaign's button: the command (or news choice) it stands for
        command = BUTTONS[inbound.choice]
        inbound = replace(inbound, choice=command, text=None) if command in NEWS_CHOICES else \
            replace(inbound, choice=None, text=command)
    candidates: list[str] = []
    text = inbound.text
    started = False
    if text:
        match = START.match(text.strip())
        if match:
            candidates = [match.group(1)]
            inbound = replace(inbound, text="/start")
            started = True
    if not candidates and inbound.source:
        candidates = [inbound.source]
    if not candidates and inbound.channel == "whatsapp":
        candidates = codes_in(text)
    candidates = [c for c in candidates if valid_code(c)]
    if not candidates:
        return inbound
    conversation = thread.conversation
    source = (await session.execute(select(Source).where(
        Source.code.in_(candidates), Source.organisation_id == conversation.organisation_id)
        .order_by(Source.id).limit(1))).scalar()
    if source is None:
        return inbound  # an unknown code: the normal welcome
    summary = dict(conversation.summary or {})
    if (summary.get("source") or {}).get("id") != source.id:
        first = (await session.execute(select(ContactSource.id).where(
            ContactSource.contact_id == thread.contact.id).limit(1))).first() is None
        known = (await session.execute(select(ContactSource.id).where(
            ContactSource.conversation_id == conversation.id, ContactSource.source_id == source.id))).first()
        if known is None:
            session.add(ContactSource(contact_id=thread.contact.id, source_id=source.id, conversation_id=conversation.id,
                                      channel=thread.address.channel, first=first, at=utcnow()))
        recorded = {"id": source.id, "team_id": await _team_of(session, source)}
        if source.start_flow:
            recorded["start"] = [source.start_flow, source.start_need]
            recorded["start_pending"] = True
        summary["source"] = recorded
        conversation.summary = summary
        add_event(session, conversation, "source_recorded", {"source_id": source.id}, pending=pending)
    if inbound.channel == "whatsapp" and not started and text and (summary.get("source") or {}).get("start_pending"):
        inbound = replace(inbound, text="/start")  # the prefilled phrase: the source's start, not "not understood"
    return inbound


async def _team_of(session: AsyncSession, source: Source) -> int | None:
    """The source's team, else the team covering its territory (routing's map), else none."""
    if source.team_id:
        return source.team_id
    if not source.territory_code:
        return None
    from handoff.routing import Need, departement_of, organisation_map

    org = await organisation_map(session, source.organisation_id)
    code = source.territory_code
    need = Need(commune=code, departement=departement_of(code)) if len(code) == 5 else Need(departement=code)
    team = org.covering(need)
    return team.id if team else None


def start_turn(engine, flow: str, need: str | None, answers: dict, locale: str, context: dict) -> Turn | None:
    """The source's start: its flow, with the first question answered when the source names it."""
    if flow not in engine.flows:
        return None
    turn = engine.start(flow, answers=answers, locale=locale, context=context)
    if need and turn.state.get("waiting") == "input":
        step = engine.flows[flow].steps.get(turn.state.get("step"))
        if step is not None and step.save == "need":
            answered = engine.resume(turn.state, Input(choice=need))
            if answered.state.get("step") != turn.state.get("step"):
                return Turn(events=[e for e in turn.events if not isinstance(e, Said)] + answered.events,
                            state=answered.state)
    return turn


def redirect(rt, thread: Thread, turn: Turn) -> Turn:
    """A turn about to show the menu (a restart, or right after the consent question) shows the
    source's start instead, once."""
    summary = thread.conversation.summary or {}
    recorded = summary.get("source") or {}
    if not recorded.get("start_pending") or not recorded.get("start"):
        return turn
    cut = _menu_index(turn)
    if cut is None:
        return turn
    consented = thread.contact.consent is True or any(
        isinstance(e, AnswerSaved) and e.key == "consent" and e.value in (True, "true") for e in turn.events)
    if not consented:
        return turn  # the welcome (consent) comes first; the start follows the yes
    engine = rt.engine_for(thread.conversation.organisation_id)
    answers = {k: v for k, v in (turn.state.get("answers") or {}).items() if k == "consent"}
    flow, need = recorded["start"]
    started = start_turn(engine, flow, need, answers, turn.state.get("locale") or thread.contact.locale or "fr",
                         turn.state.get("context") or {})
    if started is None:
        return turn
    thread.conversation.summary = {**summary, "source": {**recorded, "start_pending": False}}
    return Turn(events=turn.events[:cut] + started.events, state=started.state)


def _menu_index(turn: Turn) -> int | None:
    for i, event in enumerate(turn.events):
        if isinstance(event, FlowStarted) and event.flow == "menu":
            return i
    return None


# -- consent per purpose: news ---------------------------------------------------------------------
async def consent_of(session: AsyncSession, contact_id: int, purpose: str = NEWS) -> Consent | None:
    return (await session.execute(select(Consent).where(Consent.contact_id == contact_id,
                                                        Consent.purpose == purpose))).scalar()


async def maybe_ask_news(session: AsyncSession, thread: Thread, turn: Turn, pending: Pending, say) -> None:
    """After a flow has ended with nothing asked (a quiet moment), ask once for the news consent.
    Never at the first message: the person has been through a whole flow."""
    if thread.contact.consent is not True or thread.contact.stopped_at is not None:
        return
    if not any(isinstance(e, FlowEnded) and e.flow != "welcome" for e in turn.events):
        return
    if turn.state.get("waiting") in ("input", "action") or any(isinstance(e, HandoffRequested) for e in turn.events):
        return
    await ask_news_once(session, thread, pending)


async def ask_news_once(session: AsyncSession, thread: Thread, pending: Pending) -> None:
    """Ask for the news consent, once in a person's life (whatever the answer), to someone who
    agreed to the service and did not stop. Called at quiet moments only: a flow just ended, a
    conversation was just closed by a worker."""
    if thread.contact.consent is not True or thread.contact.stopped_at is not None:
        return
    if await consent_of(session, thread.contact.id) is not None:
        return  # asked once, whatever the answer
    words = texts(thread.contact.locale)["news_consent"]  # in the person's language
    session.add(Consent(contact_id=thread.contact.id, purpose=NEWS, asked_at=utcnow(), text_version=words["version"]))
    await queue_message(session, thread, OutboundMessage(
        words["ask"].strip(), (Choice(NEWS_YES, words["accept"]), Choice(NEWS_NO, words["decline"]))), pending)


async def answer_news(session: AsyncSession, thread: Thread, choice: str, pending: Pending, say) -> None:
    words = texts(thread.contact.locale)["news_consent"]
    consent = await consent_of(session, thread.contact.id)
    now = utcnow()
    if consent is None:
        consent = Consent(contact_id=thread.contact.id, purpose=NEWS, asked_at=now, text_version=words["version"])
        session.add(consent)
    if choice == NEWS_YES:
        consent.granted_at, consent.withdrawn_at, consent.text_version = now, None, words["version"]
        add_event(session, thread.conversation, "news_consent_granted", {"version": words["version"]}, pending=pending)
        await say(session, thread, pending, words["granted"], ((NEWS_STOP, words["withdraw_button"]),))
        return
    if consent.granted_at is not None and consent.withdrawn_at is None:
        consent.withdrawn_at = now
        add_event(session, thread.conversation, "news_consent_withdrawn", pending=pending)
    await say(session, thread, pending, words["withdrawn"] if choice == NEWS_STOP else words["refused"])


async def withdraw_news(session: AsyncSession, contact_id: int) -> None:
    """« stop »: the news consent is withdrawn with everything else."""
    consent = await consent_of(session, contact_id)
    if consent is not None and consent.granted_at is not None and consent.withdrawn_at is None:
        consent.withdrawn_at = utcnow()
