"""Never lost: a waiting conversation not taken in time is offered to the next team and flagged to
team leads (an event and a live update); GET /inbox/waiting lists every wait with its age."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from kernel.database import utcnow
from conversations.models import WAITING, Conversation, Event
from conversations.store import Pending, load_thread
from handoff.escalation import escalate_due
from handoff.models import Team, Worker
from handoff.transitions import request_handoff
from tests.conftest import app_client, login
from tests.conversations.test_commands import consented
from tests.handoff.test_inbox import add_worker
from tests.handoff.test_routing_rules import NANTES, WEEKDAYS, Row, T, W, build, commune

UTC = timezone.utc


async def listen(rt, topic: str, received: list) -> asyncio.Task:
    ready = asyncio.Event()

    async def run():
        async with rt.notifier.subscribe(topic) as subscription:
            ready.set()
            while True:
                payload = await subscription.get(timeout=5)
                if payload is not None:
                    received.append(payload.get("event"))

    task = asyncio.create_task(run())
    await ready.wait()
    return task


async def wait_for(received: list, value: str) -> None:
    for _ in range(100):
        if value in received:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{value} not received: {received}")


async def test_a_wait_goes_round_the_teams_flagging_their_leads_and_is_listed_with_its_age(settings_for):
    async with app_client(settings_for(routing_escalation_interval=0)) as client:
        rt = client.app.state.rt
        lea = await add_worker(rt, "lea@demo.fr", "Léa")
        async with rt.sessionmaker() as session, session.begin():
            for worker in (await session.execute(select(Worker))).scalars():
                worker.is_online = False
            accueil = (await session.execute(select(Team).where(Team.name == "Accueil"))).scalar_one()
            renfort = Team(organisation_id=accueil.organisation_id, name="Renfort", escalate_after_minutes=20)
            session.add(renfort)
            await session.flush()
            row = await session.get(Worker, lea.id)
            row.team_id, row.is_team_lead = renfort.id, True
            admin = (await session.execute(select(Worker).where(Worker.is_admin.is_(True)))).scalar_one()
        person = await consented(client)
        await person.send("humain")
        assert "bien arrivé à l'équipe de" in (await person.last())["text"]
        async with rt.sessionmaker() as session:
            conversation = (await session.execute(select(Conversation))).scalar_one()
        assert conversation.status == WAITING and conversation.team_id is None  # the organisation's queue

        to_admin, to_lea = [], []
        listeners = [await listen(rt, f"worker:{admin.id}", to_admin), await listen(rt, f"worker:{lea.id}", to_lea)]
        try:
            now = utcnow()
            assert await escalate_due(rt, now + timedelta(minutes=29)) == 0  # Accueil allows 30 minutes
            assert await escalate_due(rt, now + timedelta(minutes=31)) == 1
            await wait_for(to_admin, "conversation_escalated")  # Accueil has no lead: the admin is flagged
            async with rt.sessionmaker() as session:
                assert (await session.get(Conversation, conversation.id)).team_id == accueil.id
            # The wait starts again with Accueil; past its limit, Renfort is offered it and Léa flagged.
            assert await escalate_due(rt, utcnow() + timedelta(minutes=10)) == 0
            assert await escalate_due(rt, utcnow() + timedelta(minutes=31)) == 1
            await wait_for(to_lea, "conversation_escalated")
            async with rt.sessionmaker() as session:
                assert (await session.get(Conversation, conversation.id)).team_id == renfort.id
            # Every team had it: it stays with Renfort, and the leads are reminded after Renfort's 20 minutes.
            to_lea.clear()
            assert await escalate_due(rt, utcnow() + timedelta(minutes=21)) == 1
            await wait_for(to_lea, "conversation_escalated")
            async with rt.sessionmaker() as session:
                assert (await session.get(Conversation, conversation.id)).team_id == renfort.id
                escalations = (await session.execute(select(Event.data).where(
                    Event.conversation_id == conversation.id, Event.type == "conversation_escalated")
                    .order_by(Event.id))).scalars().all()
            assert [e["to_team_id"] for e in escalations] == [accueil.id, renfort.id, None]
        finally:
            for task in listeners:
                task.cancel()

        # The view of every wait, with its age; linked from the inbox lists; login needed.
        assert (await client.get("/inbox/waiting")).status_code == 303
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Event).where(Event.conversation_id == conversation.id)
                                  .values(created_at=utcnow() - timedelta(minutes=75, seconds=5)))
        await login(client, "camille@demo.allervers.fr", "allervers-demo")
        assert 'href="/inbox/waiting"' in (await client.get("/inbox")).text
        page = await client.get("/inbox/waiting")
        assert page.status_code == 200
        assert f'data-conversation="{conversation.id}" data-minutes="75"' in page.text
        assert "1 h 15" in page.text and "Renfort" in page.text


async def test_out_of_hours_waits_are_counted_from_the_opening(settings_for):
    tuesday_20h = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # Paris time 20:00, closed
    wednesday_9h = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # Paris time 9:00, opening
    async with app_client(settings_for(routing_escalation_interval=0)) as client:
        rt = client.app.state.rt
        row = Row("", [T("Nord", [("commune", NANTES)], WEEKDAYS), T("Sud")], [W("Ana", online=False)],
                  "team:Nord", "team_queue", answers={"commune": commune(NANTES)}, now=tuesday_20h)
        conversation_id, _, teams = await build(rt, row, 0)
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            await request_handoff(session, thread, "talk", Pending.empty(), now=tuesday_20h)
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Event).where(Event.conversation_id == conversation_id)
                                  .values(created_at=tuesday_20h))
        assert await escalate_due(rt, tuesday_20h + timedelta(hours=3)) == 0  # closed: nobody to blame
        assert await escalate_due(rt, wednesday_9h + timedelta(minutes=29)) == 0  # 29 minutes of open hours
        assert await escalate_due(rt, wednesday_9h + timedelta(minutes=31)) == 1
        async with rt.sessionmaker() as session:
            assert (await session.get(Conversation, conversation_id)).team_id == teams["Sud"].id


async def test_a_team_that_never_escalates(settings_for):
    async with app_client(settings_for(routing_escalation_interval=0)) as client:
        rt = client.app.state.rt
        row = Row("", [T("Nord", [("commune", NANTES)]), T("Sud")], [W("Ana", online=False)], "team:Nord",
                  "team_queue", answers={"commune": commune(NANTES)})
        conversation_id, _, teams = await build(rt, row, 0)
        async with rt.sessionmaker() as session, session.begin():
            (await session.get(Team, teams["Nord"].id)).escalate_after_minutes = 0
            thread = await load_thread(session, conversation_id)
            await request_handoff(session, thread, "talk", Pending.empty())
        assert await escalate_due(rt, utcnow() + timedelta(days=2)) == 0
