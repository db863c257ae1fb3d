"""A campaign at the platform's limits, against the fake Bot API enforcing them (429 beyond): a few
hundred people (the 10,000-people run is bench/bench_campaign.py), the fake's limit raised to
100/s so that the test stays short. Everyone gets it exactly once, almost nothing is answered 429,
the pace is close to the limit."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from sqlalchemy import select

from outreach.models import Campaign
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram
from tests.outreach.helpers import as_admin, seed_audience, telegram_settings

PEOPLE = 300
RATE = 100.0
TEXT = "📣 Nouvelle permanence numérique à la médiathèque."


async def test_campaign_at_the_limit_once_each(settings_for):
    with FakeTelegram(limit_per_second=RATE, limit_per_chat_seconds=1.0) as fake:
        settings = telegram_settings(settings_for, fake, campaign_telegram_per_second=RATE,
                                     campaign_telegram_per_chat_seconds=1.0)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            csrf = await as_admin(client)
            chats = await seed_audience(rt.sessionmaker, 1, PEOPLE, 20_000_000)
            created = await client.post("/admin/campaigns", data={"name": "Médiathèque", "csrf_token": csrf})
            campaign_id = int(created.headers["location"].rsplit("/", 1)[1])
            await client.post(f"/admin/campaigns/{campaign_id}", data={"name": "Médiathèque", "telegram_text": TEXT,
                                                                      "csrf_token": csrf})
            page = await client.get(f"/admin/campaigns/{campaign_id}")
            assert f"Aperçu : {PEOPLE} personne(s)" in page.text
            began = time.monotonic()
            await client.post(f"/admin/campaigns/{campaign_id}/launch", data={"csrf_token": csrf})
            deadline = began + 60
            while time.monotonic() < deadline:
                async with rt.sessionmaker() as session:
                    status = (await session.get(Campaign, campaign_id)).status
                if status == "done" and len(fake.sent_messages()) >= PEOPLE:
                    break
                await asyncio.sleep(0.2)
            await rt.drain(timeout=30)
            sends = [c for c in fake.sent_messages() if c.params.get("text") == TEXT]
            times = sorted(c.at for c in sends)
            per_chat = Counter(int(c.chat_id) for c in sends)
            elapsed = time.monotonic() - began
            print(f"campaign: {len(sends)} sent in {elapsed:.1f} s, first to last {times[-1] - times[0]:.2f} s "
                  f"(minimum {PEOPLE / RATE:.1f} s), "
                  f"{fake.too_many} answered 429")
            assert status == "done"
            assert sorted(per_chat) == chats and max(per_chat.values()) == 1  # nobody skipped, nobody twice
            assert fake.too_many <= PEOPLE * 0.02  # the pace stays under the limit (a few at most)
            assert elapsed < PEOPLE / RATE * 4 + 5  # close to the limit on a shared 2-core machine
            assert times[-1] - times[0] >= (PEOPLE - RATE) / RATE  # and not beyond it
