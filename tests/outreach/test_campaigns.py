"""Consent per purpose and campaigns through the real routes: the news consent is asked at a quiet
moment (a worker closes the conversation), given by a button, withdrawn by « stop »; a campaign to
the opted-in people only is sent at its pace, paused, resumed; a reply reaches a worker; one
reminder at most, never to whoever answered or stopped; the reach counted."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from admin.audit import AuditEntry
from kernel.database import utcnow
from kernel.settings import Settings
from conversations.models import Address, Conversation
from handoff.hours import PARIS
from outreach import stats
from outreach.campaigns import quiet
from outreach.models import Campaign, CampaignRecipient, Consent
from tests.conftest import eventually
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram
from tests.outreach.helpers import as_admin, telegram, telegram_settings

NEWS_ASK = "nouvelles de temps en temps"
CAMPAIGN_TEXT = "📣 Permanence CAF jeudi à la mairie, de 14 h à 17 h."


@pytest.fixture
def fake_telegram():
    with FakeTelegram() as fake:
        yield fake


async def conversation_of(rt, chat_id: int) -> Conversation:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Conversation).join(Address, Address.id == Conversation.address_id)
                                      .where(Address.external_id == str(chat_id)).order_by(Conversation.id.desc())
                                      .limit(1))).scalar_one()


def campaign_form(csrf: str, **overrides) -> dict:
    values = {"name": "Permanence CAF", "telegram_text": CAMPAIGN_TEXT, "telegram_buttons": ["cmp:human", "cmp:stop"],
              "reminder_text": "🔔 Rappel : permanence CAF jeudi.", "reminder_after_hours": "1", "csrf_token": csrf}
    values.update(overrides)
    return values


async def test_news_consent_campaign_pause_resume_reply_and_reminder(settings_for, fake_telegram):
    settings = telegram_settings(settings_for, fake_telegram, campaign_telegram_per_second=1.0)
    async with app_client(settings) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        people = [8001, 8002, 8003, 8004, 8005]
        for chat in people:
            await telegram(client, chat, "/start")
            await telegram(client, chat, callback="oui")
        assert not any(NEWS_ASK in t for chat in people for t in fake_telegram.sent_texts(chat))  # never at first

        # A quiet moment: a worker closes 8001's conversation; the consent is asked then, not pre-ticked.
        await telegram(client, 8001, "humain")
        conversation = await conversation_of(rt, 8001)
        assert (await client.post(f"/inbox/conversations/{conversation.id}/take", data={"csrf_token": csrf})).status_code == 303
        closed = await client.post(f"/inbox/conversations/{conversation.id}/close",
                                   data={"outcome": "answered", "csrf_token": csrf})
        assert closed.status_code == 303
        await rt.drain(timeout=30)
        ask = [m for m in fake_telegram.sent_messages(8001) if NEWS_ASK in m.params.get("text", "")]
        assert len(ask) == 1 and "news_yes" in json.dumps(ask[0].params["reply_markup"])
        async with rt.sessionmaker() as session:
            asked = (await session.execute(select(Consent))).scalars().all()
        assert [(c.granted_at, c.asked_at is not None) for c in asked] == [(None, True)]
        for chat in (8001, 8002, 8003, 8005):
            await telegram(client, chat, callback="news_yes")
        await telegram(client, 8003, "stop")  # stop withdraws the news consent too
        async with rt.sessionmaker() as session:
            consents = {c.contact_id: c for c in (await session.execute(select(Consent))).scalars().all()}
        assert len(consents) == 4 and all(c.text_version == "news-2026-12" for c in consents.values())
        assert sum(1 for c in consents.values() if c.withdrawn_at is not None) == 1

        # The campaign: bad input refused, preview, test-send to oneself (no linked account: said).
        created = await client.post("/admin/campaigns", data={"name": "Permanence CAF", "csrf_token": csrf})
        assert created.status_code == 303
        campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
        bad = await client.post(f"/admin/campaigns/{campaign_id}", data=campaign_form(csrf, whatsapp_template="Pas Bon!"))
        assert bad.status_code == 400 and "Modèle WhatsApp" in bad.text
        empty = await client.post(f"/admin/campaigns/{campaign_id}/launch", data={"csrf_token": csrf})
        assert empty.status_code == 400
        saved = await client.post(f"/admin/campaigns/{campaign_id}", data=campaign_form(csrf))
        assert saved.status_code == 303
        page = await client.get(f"/admin/campaigns/{campaign_id}")
        assert "Aperçu : 3 personne(s)" in page.text and "Permanence CAF jeudi" in page.text
        # Test to oneself: refused with a reason for a bad address or channel; sent to the admin's own chat.
        for data in ({"test_channel": "telegram", "test_address": "12ab"}, {"test_channel": "fax", "test_address": "1"},
                     {"test_channel": "whatsapp", "test_address": "33612345678"}, {}):
            refused = await client.post(f"/admin/campaigns/{campaign_id}/test", data={"csrf_token": csrf, **data})
            assert refused.status_code == 400 and ("Envoi test" in refused.text or "Messagerie" in refused.text)
        test = await client.post(f"/admin/campaigns/{campaign_id}/test",
                                 data={"csrf_token": csrf, "test_channel": "telegram", "test_address": "7777"})
        assert test.status_code == 200 and "Test envoyé sur Telegram (…77)" in test.text
        own = [m for m in fake_telegram.sent_messages(7777) if CAMPAIGN_TEXT in m.params.get("text", "")]
        assert len(own) == 1 and "cmp:human" in json.dumps(own[0].params["reply_markup"])
        assert not any(CAMPAIGN_TEXT in t for chat in people for t in fake_telegram.sent_texts(chat))  # no contact
        from admin.audit import AuditEntry
        from conversations.models import Address

        async with rt.sessionmaker() as session:
            assert (await session.execute(select(Address).where(Address.external_id == "7777"))).first() is None
            audit = (await session.execute(select(AuditEntry).where(AuditEntry.action == "campaign.test_sent"))).scalars().all()
        assert [(a.details["channel"], a.details["address"]) for a in audit] == [("telegram", "…77")]
        assert (await client.post(f"/admin/campaigns/{campaign_id}/resume", data={"csrf_token": csrf})).status_code == 409

        # Launch; pause after the first send (1 a second here); nothing more goes; resume; all sent.
        assert (await client.post(f"/admin/campaigns/{campaign_id}/launch", data={"csrf_token": csrf})).status_code == 303

        def campaign_sent():
            return [chat for chat in people if any(CAMPAIGN_TEXT in t for t in fake_telegram.sent_texts(chat))]

        await eventually(lambda: campaign_sent(), timeout=10)
        assert (await client.post(f"/admin/campaigns/{campaign_id}/pause", data={"csrf_token": csrf})).status_code == 303
        paused_at = len(campaign_sent())
        # Rows already handed to the outbox (at most a second of sends: one here) still leave; no more.
        await asyncio.sleep(1.5)
        held = len(campaign_sent())
        assert held <= paused_at + 1 and held < 3
        progress = await client.get(f"/admin/campaigns/{campaign_id}/progress")
        assert "En pause" in progress.text and "hx-get" not in progress.text
        await asyncio.sleep(1.5)
        assert len(campaign_sent()) == held
        assert (await client.post(f"/admin/campaigns/{campaign_id}/resume", data={"csrf_token": csrf})).status_code == 303
        await eventually(lambda: len(campaign_sent()) == 3, timeout=15)
        assert sorted(campaign_sent()) == [8001, 8002, 8005]  # 8003 stopped, 8004 never agreed
        sent = [m for m in fake_telegram.sent_messages(8002) if CAMPAIGN_TEXT in m.params.get("text", "")]
        assert len(sent) == 1 and "cmp:human" in json.dumps(sent[0].params["reply_markup"])

        async def done():
            async with rt.sessionmaker() as session:
                return (await session.get(Campaign, campaign_id)).status == "done"

        for _ in range(100):
            if await done():
                break
            await asyncio.sleep(0.1)
        assert await done()

        # A reply goes through the normal flow: the button asks for a person; it reaches a worker.
        await telegram(client, 8002, callback="cmp:human")
        reply = await conversation_of(rt, 8002)
        assert reply.status in ("waiting", "assigned")
        inbox = await client.get("/inbox")
        assert f"/inbox/conversations/{reply.id}" in inbox.text
        await telegram(client, 8005, "stop")

        # One reminder, an hour after the end: only to 8001 (8002 answered, 8005 stopped).
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Campaign).where(Campaign.id == campaign_id)
                                  .values(finished_at=utcnow() - timedelta(hours=2)))
        await eventually(lambda: any("Rappel" in t for t in fake_telegram.sent_texts(8001)), timeout=10)
        await asyncio.sleep(0.5)
        reminded = [chat for chat in people if any("Rappel" in t for t in fake_telegram.sent_texts(chat))]
        assert reminded == [8001]

        async with rt.sessionmaker() as session:
            reach = await stats.campaign_reach(session, 1, utcnow() - timedelta(days=1), utcnow() + timedelta(days=1))
            recipients = (await session.execute(select(CampaignRecipient))).scalars().all()
            actions = set((await session.execute(select(AuditEntry.action).where(
                AuditEntry.target_type == "campaign"))).scalars().all())
        assert reach["recipients"] == 3 and reach["sent"] == 3 and reach["replied"] == 2 and reach["stopped"] == 1
        assert len({r.contact_id for r in recipients}) == 3 and all(r.state == "queued" for r in recipients)
        assert {"campaign.created", "campaign.updated", "campaign.launched", "campaign.paused",
                "campaign.resumed", "campaign.test_sent"} <= actions
        listing = await client.get("/admin/campaigns")
        assert "Permanence CAF" in listing.text and "3 destinataire(s)" in listing.text


def test_quiet_hours():
    settings = Settings(_env_file=None)
    at = lambda *args: datetime(*args, tzinfo=PARIS)  # noqa: E731
    assert not quiet(settings, at(2026, 12, 1, 10, 0))  # a Tuesday morning
    assert quiet(settings, at(2026, 12, 1, 20, 0)) and quiet(settings, at(2026, 12, 2, 8, 59))
    assert quiet(settings, at(2026, 12, 6, 11, 0))  # a Sunday
    assert quiet(settings, at(2026, 7, 14, 11, 0))  # Fête nationale
    assert quiet(settings, at(2026, 12, 25, 11, 0))
    relaxed = Settings(_env_file=None, campaign_quiet_sundays=False, campaign_quiet_start="22:00",
                       campaign_quiet_end="07:30")
    assert not quiet(relaxed, at(2026, 12, 6, 21, 0)) and quiet(relaxed, at(2026, 12, 6, 7, 0))
    assert not quiet(Settings(_env_file=None, campaign_quiet_enabled=False), at(2026, 12, 25, 23, 0))
