"""kill -9 mid-campaign, then a restart: nobody gets the campaign twice, nobody is skipped.

The app is a real subprocess (`python -m allervers.cli serve`) sending to the loopback fake Bot API
(30/s per bot, 1/s per chat, 429 beyond); it is killed with SIGKILL once half the people have the
message, started again at once, and the deliveries are counted per chat at the fake. Campaign sends
are noted in the sent journal before the request's last bytes leave (deliver.Outbox._note_intent;
WhatsApp: right before the body, bots/base.on_the_wire): one in flight at the kill is recorded as
sent by the start-up sweep on Telegram, never sent a second time; on WhatsApp it awaits the status
webhook the Graph API fake posts for it (retried until the restarted app answers), and is sent again
only if none comes while later sends' statuses do (conversations/confirmations.py). The fakes, like
the real platforms, process a request received whole even though its client died
(tests/fakes/complete_bodies.py), so nobody counted "sent" is skipped. The short version of
bench/bench_campaign.py (which runs 10,000 people, and WhatsApp at 80/s).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.bench_campaign import run

pytestmark = [pytest.mark.slow]  # two app start-ups and a campaign: ~30 s


@pytest.mark.parametrize("channel,rate", [("telegram", 30.0), ("whatsapp", 80.0)])
def test_kill_9_mid_campaign_then_restart_sends_each_person_once(channel, rate):
    postgres = os.environ.get("ALLERVERS_TEST_POSTGRES_URL")
    backend = "sqlite"  # the PostgreSQL + Redis run is the benchmark's (--backend postgres): it wipes its database
    people = 240 if channel == "telegram" else 480
    result = asyncio.run(run(backend, people, rate, 0.5, 0.0, postgres or "", "", channel, baseline_seconds=1.0))
    assert result["killed_at"] is not None and result["killed_at"] < people  # killed mid-campaign
    assert result["twice"] == 0, result
    assert result["skipped"] == 0, result
    assert result["too_many"] <= people * 0.01, result
