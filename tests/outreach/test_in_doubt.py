"""The sweep's reading of a send in doubt (noted before its request, no "sent" note: in flight at a
crash): on Telegram a campaign's message is recorded as sent (at most once; WhatsApp's awaits its
status webhook: test_awaiting_confirmation.py), any other goes back to the queue (at least once); a
campaign send that ended without being sent leaves no note behind."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from kernel.database import utcnow
from conversations.deliver import IN_DOUBT, journal_for
from conversations.models import Conversation, Message
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram
from tests.outreach.helpers import seed_audience, telegram_settings


async def test_a_campaign_send_in_doubt_is_never_sent_again_a_reply_is(settings_for):
    with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            await seed_audience(rt.sessionmaker, 1, 2, 31_000_000)
            old = utcnow() - timedelta(minutes=1)  # older than the sweep's grace with Redis
            async with rt.sessionmaker() as session, session.begin():
                conversations = (await session.execute(select(Conversation).order_by(Conversation.id))).scalars().all()
                rows = [Message(conversation_id=c.id, contact_id=c.contact_id, channel="telegram", direction="out",
                                text=text, payload=payload, status="sending", attempts=1, created_at=old)
                        for c, text, payload in ((conversations[-2], "news", {"campaign_id": 1}),
                                                 (conversations[-1], "a reply", {}))]
                session.add_all(rows)
            dead = journal_for(rt)  # the journal of a process killed mid-send (its own file, or Redis)
            for row in rows:
                await dead.note(row.id, {"status": IN_DOUBT})
            await rt.outbox.sweep()
            await rt.drain(timeout=10)
            async with rt.sessionmaker() as session:
                status = {m.text: m.status for m in (await session.execute(
                    select(Message).where(Message.id.in_([r.id for r in rows])))).scalars().all()}
            assert status == {"news": "sent", "a reply": "sent"}
            assert fake.sent_texts(31_000_000) == []  # the campaign's: recorded, not sent again
            assert fake.sent_texts(31_000_001) == ["a reply"]  # the reply: sent (again, at least once)
