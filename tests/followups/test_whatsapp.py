"""WhatsApp outside the 24-hour window: the reminder goes out as the organisation's approved
template for reminders (its date and place as parameters), through the outbox, against the fake
Graph API; the full text is held until the person writes again."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from kernel.database import utcnow
from conversations.models import Contact, Conversation, Message
from followups.models import Appointment
from followups.service import send_due
from handoff.models import Organisation
from tests.conftest import app_client, eventually
from tests.e2e.whatsapp_helpers import NUMBER, PERSON, SECRET, TOKEN, VERIFY, text
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.followups.helpers import as_worker, next_week_day


async def signed_post(client, body: dict):
    raw = json.dumps(body).encode()
    response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, SECRET)})
    assert response.status_code == 200


async def test_reminder_outside_the_window_uses_the_reminder_template(settings_for):
    async with FakeGraphApi(access_token=TOKEN) as graph:
        settings = settings_for(whatsapp_access_token=TOKEN, whatsapp_app_secret=SECRET, whatsapp_verify_token=VERIFY,
                                whatsapp_graph_api_base=graph.base_url, whatsapp_phone_number_id=NUMBER,
                                followups_interval=0)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            await signed_post(client, text("1", "humain"))
            await eventually(lambda: graph.requests_for(PERSON))
            async with rt.sessionmaker() as session:
                conversation_id = (await session.execute(select(Conversation.id))).scalar()
            csrf = await as_worker(client)
            when = next_week_day()
            assert (await client.post(f"/inbox/conversations/{conversation_id}/appointments", data={
                "day": when.strftime("%Y-%m-%d"), "time": "09:30", "place_name": "France services",
                "place_address": "3 rue Nationale, Lille", "csrf_token": csrf})).status_code == 303
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(update(Contact).values(last_inbound_at=utcnow() - timedelta(hours=30)))
                await session.execute(update(Organisation).values(whatsapp_templates={
                    "reply": "invitation", "appointment_reminder": "rappel_rdv"}))
                appointment = (await session.execute(select(Appointment))).scalar_one()
            await rt.drain(timeout=10)  # what the person was told before is sent
            assert await send_due(rt, now=appointment.remind_at) == 1
            templates = await eventually(lambda: [r for r in graph.requests_for(PERSON) if r.get("type") == "template"])
            assert len(templates) == 1
            sent = templates[0]
            assert sent["type"] == "template" and sent["template"]["name"] == "rappel_rdv"
            params = [p["text"] for p in sent["template"]["components"][0]["parameters"]]
            assert "9 h 30" in params[0] and "3 rue Nationale" in params[1]
            async def held():
                async with rt.sessionmaker() as session:
                    return (await session.execute(select(Message.status).where(
                        Message.text.like("%Rappel%")))).scalar() == "held"
            await eventually(held)
