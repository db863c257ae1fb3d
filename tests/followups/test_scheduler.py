"""The scheduler across two runtimes on one database (two processes' engines, pools and, with
Redis, notifiers): due reminders run by both at once are each queued exactly once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from allervers.runtime import build_runtime
from conversations.models import Conversation, Message
from followups.models import SENT, Appointment
from followups.service import send_due
from tests.conftest import app_client
from tests.followups.helpers import as_worker, next_week_day
from tests.webchat import Person


async def test_two_runtimes_send_each_due_reminder_once(settings_for):
    settings = settings_for(followups_interval=0)
    async with app_client(settings) as client:
        rt = client.app.state.rt
        for _ in range(6):
            person = await Person.joined(client)
            await person.post("humain")
        csrf = await as_worker(client)
        async with rt.sessionmaker() as session:
            ids = (await session.execute(select(Conversation.id))).scalars().all()
        when = next_week_day()
        for i, conversation_id in enumerate(ids):
            response = await client.post(f"/inbox/conversations/{conversation_id}/appointments", data={
                "day": when.strftime("%Y-%m-%d"), "time": f"1{i}:00", "place_address": f"{i} rue du Port",
                "csrf_token": csrf})
            assert response.status_code == 303
        async with rt.sessionmaker() as session:
            due = max((await session.execute(select(Appointment.remind_at))).scalars().all())
        other = await build_runtime(settings, migrate=False)
        try:
            counts = await asyncio.gather(send_due(rt, now=due), send_due(other, now=due),
                                          send_due(other, now=due + timedelta(seconds=1)))
        finally:
            await other.drain(timeout=10)
            await other.close()
        assert sum(counts) == len(ids) == 6
        async with rt.sessionmaker() as session:
            reminders = (await session.execute(select(Message.conversation_id, func.count()).where(
                Message.text.like("%Rappel%")).group_by(Message.conversation_id))).all()
            statuses = (await session.execute(select(Appointment.reminder_status))).scalars().all()
        assert sorted(reminders) == sorted((conversation_id, 1) for conversation_id in ids)
        assert statuses == [SENT] * 6
