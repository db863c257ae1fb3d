"""Appointments, their reminder, and "Ça a marché ?" end to end: a person on the fake Telegram Bot
API, the worker through the inbox routes, the scheduler run with an injected clock."""

from __future__ import annotations

import json

import asyncio
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from admin.audit import AuditEntry
from conversations.models import ASSIGNED, Conversation, Event, Message
from followups.models import ANSWERED, SKIPPED, Appointment, Followup
from followups.service import send_due
from followups.timing import Quiet, allowed, next_allowed
from handoff.hours import PARIS
from tests.conftest import app_client, eventually
from tests.fakes.telegram_api import FakeTelegram
from tests.followups.helpers import SECRET, as_worker, next_week_day, person_reaches_camille, post_update, update

CHAT = 515151
HX = {"HX-Request": "true"}


def settings_with(settings_for, fake):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                        telegram_api_base=fake.base_url, followups_interval=0)


async def test_appointment_reminder_then_followup_help_reopens_to_camille(settings_for):
    async with FakeTelegram() as fake:
        async with app_client(settings_with(settings_for, fake)) as client:
            rt = client.app.state.rt
            conversation_id = await person_reaches_camille(client, fake, CHAT)
            csrf = await as_worker(client)
            base = f"/inbox/conversations/{conversation_id}"
            page = await client.get(base)
            assert 'hx-get="/inbox/conversations/%d/followups"' % conversation_id in page.text
            sheet = await client.get(f"{base}/followups")
            assert sheet.status_code == 200 and "Noter un rendez-vous" in sheet.text

            # Refused: no CSRF (403), a past date, no address (400): nothing written.
            when = next_week_day()
            form = {"day": when.strftime("%Y-%m-%d"), "time": "14:30", "place_name": "CCAS",
                    "place_address": "12 rue de la Paix, 75002 Paris", "csrf_token": csrf}
            assert (await client.post(f"{base}/appointments", data={**form, "csrf_token": "x"})).status_code == 403
            assert (await client.post(f"{base}/appointments", data={**form, "day": "2020-01-01"}, headers=HX)).status_code == 400
            refused = await client.post(f"{base}/appointments", data={**form, "place_address": ""}, headers=HX)
            assert refused.status_code == 400 and "Adresse : à remplir" in refused.text
            async with rt.sessionmaker() as session:
                assert (await session.execute(select(func.count()).select_from(Appointment))).scalar() == 0

            noted = await client.post(f"{base}/appointments", data=form, headers=HX)
            assert noted.status_code == 200 and noted.headers.get("HX-Trigger") == "refresh-timeline"
            assert "14 h 30" in noted.text and "Rappel prévu" in noted.text
            async with rt.sessionmaker() as session:
                appointment = (await session.execute(select(Appointment))).scalar_one()
                labels = (await session.execute(select(Event.data["label"].as_string()).where(
                    Event.type == "appointment_noted"))).scalars().all()
                audited = (await session.execute(select(AuditEntry.action).where(
                    AuditEntry.action.like("appointment.%")))).scalars().all()
            assert audited == ["appointment.noted"]
            assert labels and "Rendez-vous noté" in labels[0]
            remind_local = appointment.remind_at.astimezone(PARIS)
            assert remind_local.date() == when.date() - timedelta(days=1) and remind_local.hour == 10
            assert appointment.starts_at == when.astimezone(timezone.utc)
            timeline = await client.get(f"{base}/timeline")
            assert "Rendez-vous noté" in timeline.text

            # Changed: 15:00; still one appointment, the reminder re-planned.
            changed = await client.post(f"{base}/appointments/{appointment.id}", data={**form, "time": "15:00"},
                                        headers=HX)
            assert changed.status_code == 200 and "15 h" in changed.text

            # The scheduler, at the reminder's time: one reminder with the address and a map link; twice: still one.
            before = len(fake.sent_texts(CHAT))
            assert await send_due(rt, now=appointment.remind_at - timedelta(minutes=1)) == 0
            assert await send_due(rt, now=appointment.remind_at) == 1
            assert await send_due(rt, now=appointment.remind_at + timedelta(minutes=5)) == 0
            reminder = await eventually(lambda: [t for t in fake.sent_texts(CHAT)[before:] if "Rappel" in t])
            assert len(reminder) == 1
            assert "12 rue de la Paix" in reminder[0] and "15 h" in reminder[0]
            assert "https://" not in reminder[0]  # the map is words to tap, not a raw address
            sent = [m for m in fake.sent_messages(CHAT) if "Rappel" in m.params.get("text", "")]
            markup = sent[0].params["reply_markup"]
            markup = json.loads(markup) if isinstance(markup, str) else markup
            assert [[b["text"], b["url"].split("?")[0]] for row in markup["inline_keyboard"] for b in row] == \
                [["🗺️ Voir le plan", "https://www.openstreetmap.org/search"]]

            # Close as "oriented"; the follow-up needs the person's agreement.
            page = await client.get(base)
            close = await client.post(f"{base}/close", data={"outcome": "oriented", "detail": "CAF",
                                                             "csrf_token": csrf})
            assert close.status_code in (200, 303)
            sheet = await client.get(f"{base}/followups")
            assert "La personne est d'accord" in sheet.text
            refused = await client.post(f"{base}/followup", data={"days": "7", "csrf_token": csrf}, headers=HX)
            assert refused.status_code == 400 and "d'accord" in refused.text
            assert (await client.post(f"{base}/followup", data={"days": "900", "agreed": "1", "csrf_token": csrf},
                                      headers=HX)).status_code == 400
            scheduled = await client.post(f"{base}/followup", data={"days": "7", "agreed": "1", "csrf_token": csrf},
                                          headers=HX)
            assert scheduled.status_code == 200 and "Prévu" in scheduled.text
            again = await client.post(f"{base}/followup", data={"days": "3", "agreed": "1", "csrf_token": csrf},
                                      headers=HX)
            assert again.status_code == 400
            async with rt.sessionmaker() as session:
                followup = (await session.execute(select(Followup))).scalar_one()
            due = followup.due_at
            assert (due.astimezone(PARIS).date() - datetime.now(PARIS).date()).days >= 7
            assert allowed(due, Quiet())

            # Due: "Ça a marché ?" with its three buttons, sent once even with two passes at once.
            before = len(fake.sent_messages(CHAT))
            counts = await asyncio.gather(send_due(rt, now=due), send_due(rt, now=due))
            assert sorted(counts) == [0, 1]
            asked = await eventually(lambda: [m for m in fake.sent_messages(CHAT)[before:]
                                              if "Ça a marché" in m.params.get("text", "")])
            assert len(asked) == 1
            buttons = [b for row in asked[0].params["reply_markup"]["inline_keyboard"] for b in row]
            assert [b["text"] for b in buttons] == ["✅ Oui", "⏳ Pas encore", "🙋 J'ai besoin d'aide"]
            help_value = buttons[2]["callback_data"]

            # The person presses "J'ai besoin d'aide": recorded, and back to Camille, who is told live.
            await post_update(client, update(50, CHAT, callback=help_value))
            async with rt.sessionmaker() as session:
                row = await session.get(Followup, followup.id)
                assert (row.status, row.answer) == (ANSWERED, "help")
                origin = await session.get(Conversation, conversation_id)
                assert origin.summary["followup"]["answer"] == "help"
                now_open = (await session.execute(select(Conversation).where(
                    Conversation.contact_id == origin.contact_id, Conversation.id != conversation_id))).scalar_one()
                assert now_open.status == ASSIGNED and now_open.assignee_id == origin.assignee_id
                assigned = (await session.execute(select(Event.data).where(
                    Event.conversation_id == now_open.id, Event.type == "conversation_assigned"))).scalars().all()
                assert assigned[-1]["rule"] == "continuity"
            await eventually(lambda: any("comme la dernière fois" in t for t in fake.sent_texts(CHAT)))
            # A second press: the answer is already noted, nothing changes.
            await post_update(client, update(51, CHAT, callback=help_value))
            async with rt.sessionmaker() as session:
                assert (await session.get(Followup, followup.id)).answer == "help"


async def test_no_followup_after_stop_nor_in_quiet_hours(settings_for):
    async with FakeTelegram() as fake:
        async with app_client(settings_with(settings_for, fake)) as client:
            rt = client.app.state.rt
            conversation_id = await person_reaches_camille(client, fake, CHAT + 1)
            csrf = await as_worker(client)
            base = f"/inbox/conversations/{conversation_id}"
            when = next_week_day()
            assert (await client.post(f"{base}/appointments", data={
                "day": when.strftime("%Y-%m-%d"), "time": "11:00", "place_address": "Mairie de Lille",
                "csrf_token": csrf})).status_code == 303
            assert (await client.post(f"{base}/close", data={"outcome": "claim_started", "csrf_token": csrf})
                    ).status_code in (200, 303)
            assert (await client.post(f"{base}/followup", data={"days": "2", "agreed": "1", "csrf_token": csrf})
                    ).status_code == 303
            async with rt.sessionmaker() as session:
                followup = (await session.execute(select(Followup))).scalar_one()
            # Sunday 11:00 and a weekday 21:30 (Paris) are quiet: nothing goes out.
            sunday = datetime(2027, 1, 10, 11, 0, tzinfo=PARIS)
            late = datetime(2027, 1, 11, 21, 30, tzinfo=PARIS)
            assert await send_due(rt, now=sunday) == 0
            assert await send_due(rt, now=late) == 0
            await post_update(client, update(60, CHAT + 1, "stop"))
            await eventually(lambda: any("vous ne recevrez plus" in t for t in fake.sent_texts(CHAT + 1)))
            before = len(fake.sent_texts(CHAT + 1))
            assert await send_due(rt, now=next_allowed(followup.due_at + timedelta(days=30), Quiet())) == 0
            async with rt.sessionmaker() as session:
                assert (await session.get(Followup, followup.id)).status == SKIPPED
                queued = (await session.execute(select(func.count()).where(
                    Message.contact_id == followup.contact_id, Message.text.like("%Ça a marché%")))).scalar()
            assert queued == 0
            async with rt.sessionmaker() as session:
                appointment = (await session.execute(select(Appointment))).scalar_one()
            assert await send_due(rt, now=appointment.remind_at) == 0  # stopped: no reminder either
            async with rt.sessionmaker() as session:
                assert (await session.get(Appointment, appointment.id)).reminder_status == SKIPPED
            await asyncio.sleep(0.2)
            assert len(fake.sent_texts(CHAT + 1)) == before

            # Erased: their appointments and follow-ups go with them; nothing is ever sent.
            await post_update(client, update(61, CHAT + 1, "supprimer mes données"))
            await eventually(lambda: any("supprimer toutes vos données" in t for t in fake.sent_texts(CHAT + 1)))
            await post_update(client, update(62, CHAT + 1, callback="erase_yes"))
            await eventually(lambda: any("vos données sont supprimées" in t for t in fake.sent_texts(CHAT + 1)))
            async with rt.sessionmaker() as session:
                assert (await session.execute(select(func.count()).select_from(Appointment))).scalar() == 0
                assert (await session.execute(select(func.count()).select_from(Followup))).scalar() == 0
