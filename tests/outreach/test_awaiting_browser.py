"""What staff read of WhatsApp campaign sends a crash left in doubt (conversations/confirmations.py),
in Chromium at 390×844 and 1280×800: the campaign's progress says how many await their status
("dont N à confirmer") and the campaign is not done; the conversation's timeline marks the message
"⏳ à confirmer". axe-core on both pages; the progress in view as the page opens.

The rows are those a killed process leaves once the restarted app's sweep has held them: `awaiting`,
with no status webhook coming (the Graph API fake posts none), so they stay so for the test.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from conversations.models import Conversation, Message
from kernel.database import make_engine, make_sessionmaker, utcnow
from outreach.models import Campaign, CampaignRecipient
from tests.admin.test_admin_browser import SIZES, assert_in_view, new_page
from tests.browser import log_in, assert_accessible, chromium  # noqa: F401
from tests.conftest import LiveServer
from tests.fakes.graph_api import FakeGraphApi
from tests.outreach.helpers import seed_audience

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEMPLATE = "news_fr"
SHOTS = Path(os.environ.get("ALLERVERS_TEST_SCREENSHOTS", tempfile.gettempdir()))  # where to look at them


async def held_after_a_crash(database_url: str, awaiting: int, sent: int) -> tuple[int, int]:
    """A running campaign to `awaiting + sent` people: `sent` recorded sent, `awaiting` held by the
    sweep. Returns the campaign's id and a conversation whose message awaits."""
    engine = make_engine(database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        count = awaiting + sent
        await seed_audience(sessionmaker, 1, count, 33_622_000_000, "whatsapp")
        old = utcnow() - timedelta(minutes=5)
        async with sessionmaker() as session, session.begin():
            campaign = Campaign(organisation_id=1, name="Permanence CAF", status="sending", started_at=old,
                                audience={}, messages={"whatsapp": {"template": TEMPLATE, "params": []}})
            session.add(campaign)
            await session.flush()
            conversations = (await session.execute(select(Conversation).order_by(Conversation.id.desc())
                                                   .limit(count))).scalars().all()[::-1]
            rows = [Message(conversation_id=c.id, contact_id=c.contact_id, channel="whatsapp", direction="out",
                            text="📣 Permanence CAF jeudi à la mairie.", attempts=1, created_at=old,
                            status="awaiting" if i < awaiting else "sent",
                            payload={"campaign_template": {"name": TEMPLATE, "params": []},
                                     "campaign_id": campaign.id})
                    for i, c in enumerate(conversations)]
            session.add_all(rows)
            await session.flush()
            await session.execute(insert(CampaignRecipient), [
                {"campaign_id": campaign.id, "contact_id": row.contact_id, "channel": "whatsapp",
                 "state": "queued" if row.status == "awaiting" else "sent", "reason": "", "reminder_state": "",
                 "message_id": row.id, "queued_at": old} for row in rows])
            return campaign.id, conversations[0].id
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])  # the pages, not the database (the HTTP tests run both)
@pytest.mark.parametrize("size", list(SIZES))
def test_staff_see_sends_awaiting_their_status(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    with FakeGraphApi(access_token="wa-token") as graph:
        settings = settings_for(whatsapp_access_token="wa-token", whatsapp_app_secret="wa-app-secret",
                                whatsapp_verify_token="verify", whatsapp_graph_api_base=graph.base_url,
                                whatsapp_phone_number_id=graph.PHONE_NUMBER_ID, campaign_quiet_enabled=False,
                                campaign_tick_seconds=0.2, whatsapp_confirm_check_seconds=0.2)
        with LiveServer(settings) as live:
            with ThreadPoolExecutor(1) as thread:  # Playwright's own loop runs in this one
                campaign_id, conversation_id = thread.submit(
                    asyncio.run, held_after_a_crash(settings.database_url, 2, 3)).result()
            admin = new_page(chromium, size, live.url)
            log_in(admin, settings.demo_admin_email, settings.demo_worker_password)

            admin.goto(f"/admin/campaigns/{campaign_id}")
            progress = admin.locator("#campaign-progress")
            expect(progress).to_contain_text("dont 2 à confirmer")
            expect(progress).not_to_contain_text("Terminée")
            expect(admin.locator("#campaign-bar")).not_to_have_attribute("value", "100")
            assert_in_view(admin, admin.locator("#campaign-bar"))
            assert_accessible(admin)
            admin.wait_for_timeout(1000)  # the sweep and the confirmation watch run meanwhile: still held
            expect(progress).to_contain_text("dont 2 à confirmer")
            admin.screenshot(path=SHOTS / f"campaign-awaiting-{size}.png", full_page=False)

            admin.goto(f"/inbox/conversations/{conversation_id}")
            status = admin.locator(".status.awaiting").last
            expect(status).to_contain_text("⏳ à confirmer")
            expect(admin.locator(".closed-note")).to_have_text("Terminée")  # closed with no outcome stored
            assert_accessible(admin)
            admin.screenshot(path=SHOTS / f"inbox-awaiting-{size}.png", full_page=False)
            assert not admin.js_errors
        assert not [r for r in graph.messages if (r.body.get("template") or {}).get("name") == TEMPLATE]
