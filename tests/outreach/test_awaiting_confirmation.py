"""WhatsApp campaign sends a crash left in doubt await the status webhook that names them
(conversations/confirmations.py), through the real routes, the app on loopback and the Graph API
fake posting signed status webhooks (retried while the app is down, like Meta).

A dead process left three campaign rows `sending`, each noted in doubt in its sent journal: A's
request reached Meta (the fake) before the kill, B's never did (killed between the note and the
body), C's did but its status webhook comes late. After the restart: A's status confirms it (sent,
with its wamid), B is sent once when statuses of later sends have been arriving for the grace
without one for it, C's late status confirms it before then (never sent twice), and the campaign is
not done until none awaits. Hostile statuses (bogus, oversized, foreign tracking) change nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta

import httpx
import uvicorn
from sqlalchemy import insert, select

from kernel.database import utcnow
from bots.base import OutboundMessage
from bots.whatsapp import WhatsAppChannel
from conversations.confirmations import tracking_of
from conversations.deliver import IN_DOUBT, journal_for
from conversations.models import Conversation, Message
from outreach.campaigns import progress
from outreach.models import Campaign, CampaignRecipient
from tests.conftest import app_client, free_port
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.outreach.helpers import as_admin, seed_audience

TOKEN, SECRET, TEMPLATE = "wa-token", "wa-app-secret", "news_fr"
GRACE = 3.0
FIRST = 33_611_000_000


def wa_settings(settings_for, graph, **overrides):
    values = dict(whatsapp_access_token=TOKEN, whatsapp_app_secret=SECRET, whatsapp_verify_token="verify",
                  whatsapp_graph_api_base=graph.base_url, whatsapp_phone_number_id=graph.PHONE_NUMBER_ID,
                  campaign_quiet_enabled=False, campaign_tick_seconds=0.2,
                  whatsapp_confirm_grace_seconds=GRACE, whatsapp_confirm_check_seconds=0.2)
    return settings_for(**(values | overrides))


@contextlib.asynccontextmanager
async def served(settings, port: int):
    """The app under uvicorn on a loopback port, in this test's event loop (its lifespan too: the
    start-up sweep runs before it listens, as in production)."""
    from allervers.app import create_app

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "the app did not start"
        await asyncio.sleep(0.05)
    try:
        yield app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def eventually(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def left_in_doubt(rt, count: int, first: int):
    """A dead process's rows: a running campaign's messages to `count` people, `sending`, each noted
    in doubt in its journal (returns the rows, the people's numbers and the campaign's id)."""
    numbers = [str(n) for n in await seed_audience(rt.sessionmaker, 1, count, first, "whatsapp")]
    old = utcnow() - timedelta(minutes=1)  # older than the sweep's grace with Redis
    async with rt.sessionmaker() as session, session.begin():
        campaign = Campaign(organisation_id=1, name="Permanence", status="sending", started_at=old, audience={},
                            messages={"whatsapp": {"template": TEMPLATE, "params": []}})
        session.add(campaign)
        await session.flush()
        conversations = (await session.execute(select(Conversation).order_by(Conversation.id.desc())
                                               .limit(count))).scalars().all()[::-1]
        rows = [Message(conversation_id=c.id, contact_id=c.contact_id, channel="whatsapp", direction="out",
                        text="news", status="sending", attempts=1, created_at=old,
                        payload={"campaign_template": {"name": TEMPLATE, "params": []}, "campaign_id": campaign.id})
                for c in conversations]
        session.add_all(rows)
        await session.flush()
        await session.execute(insert(CampaignRecipient), [
            {"campaign_id": campaign.id, "contact_id": row.contact_id, "channel": "whatsapp", "state": "queued",
             "reason": "", "reminder_state": "", "message_id": row.id, "queued_at": old} for row in rows])
    dead = journal_for(rt)  # the killed process's journal (its own file, or Redis)
    for row in rows:
        await dead.note(row.id, {"status": IN_DOUBT})
    return rows, numbers, campaign.id, dead


async def rows_of(rt, ids):
    async with rt.sessionmaker() as session:
        return {m.id: m for m in (await session.execute(select(Message).where(Message.id.in_(ids)))).scalars().all()}


def campaign_bodies(graph, number: str) -> list[dict]:
    return [b for b in graph.requests_for(number) if (b.get("template") or {}).get("name") == TEMPLATE]


def inbound(number: str, n: int) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33100000000", "phone_number_id": FakeGraphApi.PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Sam"}, "wa_id": number}],
            "messages": [{"from": number, "id": f"wamid.IN.{n}", "timestamp": str(int(time.time())),
                          "type": "text", "text": {"body": "Bonjour"}}]}}]}]}).encode()


async def test_a_kill_9_in_doubt_is_confirmed_by_its_status_or_sent_once_when_none_comes(settings_for):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with FakeGraphApi(access_token=TOKEN) as graph:
        settings = wa_settings(settings_for, graph)
        graph.send_statuses(url + "/bots/whatsapp/webhook", SECRET, first_retry=0.2, max_retry=0.5)
        async with served(settings, port) as app:  # the first life: the schema, then what its kill left
            rows, numbers, campaign_id, dead = await left_in_doubt(app.state.rt, 3, FIRST)
        a, b, c = rows
        # Between the lives, the dead process's requests that reached Meta: A's and C's (C's status
        # held back); their status webhooks are refused (nobody listens) and retried.
        channel = WhatsAppChannel(app_secret=SECRET, verify_token="verify", access_token=TOKEN,
                                  graph_base=graph.base_url, phone_number_id=graph.PHONE_NUMBER_ID)
        graph.hold_statuses(numbers[2], float("inf"))
        for row, number in ((a, numbers[0]), (c, numbers[2])):
            await channel.send(number, OutboundMessage("news", template=TEMPLATE, tracking=tracking_of(1, row.id)))
        await channel.close()
        await graph.wait_for(lambda g: g.webhook_refused >= 1)

        async with served(settings, port) as app:  # the restart: the sweep holds all three awaiting
            rt = app.state.rt
            # A's retried status arrives: sent with its wamid
            confirmed = await eventually(lambda: _status_is(rt, a.id, "sent"))
            assert confirmed.platform_message_id == campaign_wamid(graph, numbers[0])
            assert (confirmed.payload or {}).get("confirmed_by_status")
            state = await rows_of(rt, [b.id, c.id])
            assert {m.status for m in state.values()} == {"awaiting"}
            async with rt.sessionmaker() as session:
                shown = await progress(session, campaign_id)
                assert shown["awaiting"] == 2 and shown["sent"] == 1 and shown["percent"] < 100
                assert (await session.get(Campaign, campaign_id)).status == "sending"  # not done while they await
            # Later sends of the same number and their statuses: someone writes, the bot answers
            # (a row created after the sweep, by more than the clocks' margin)
            await asyncio.sleep(2.2)
            async with httpx.AsyncClient(base_url=url) as client:
                raw = inbound(str(FIRST + 900), 1)
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, SECRET)})
                assert response.status_code == 200
            await eventually(lambda: _payload_has(rt, b.id, "flowing_since"))
            # C's late status, within the grace: confirmed, never sent again
            graph.release_statuses(numbers[2])
            confirmed_c = await eventually(lambda: _status_is(rt, c.id, "sent"))
            assert confirmed_c.platform_message_id == campaign_wamid(graph, numbers[2])
            # B: no status ever (its request never left): sent once after the grace
            resent = await eventually(lambda: _status_is(rt, b.id, "sent"), timeout=GRACE + 20)
            assert (resent.payload or {}).get("resent_after_doubt")
            assert resent.platform_message_id == campaign_wamid(graph, numbers[1])
            await asyncio.sleep(GRACE + 1)  # anything late would show now
            assert [len(campaign_bodies(graph, n)) for n in numbers] == [1, 1, 1]  # each once, nobody skipped
            # every send carried its row's tracking, echoed in its statuses
            assert campaign_bodies(graph, numbers[1])[0]["biz_opaque_callback_data"] == tracking_of(1, b.id)
            assert all(s.get("biz_opaque_callback_data") == tracking_of(1, row.id)
                       for row, n in zip(rows, numbers) for s in graph.statuses_for(n))
            async with rt.sessionmaker() as session:
                shown = await progress(session, campaign_id)
                assert shown["awaiting"] == 0 and shown["sent"] == 3
            await eventually(lambda: _campaign_done(rt, campaign_id))
        await dead.close()


def campaign_wamid(graph, number: str) -> str | None:
    """The wamid the fake answered for the campaign's message to `number`."""
    with graph._lock:
        return next((r.wamid for r in graph.messages if r.body.get("to") == number
                     and (r.body.get("template") or {}).get("name") == TEMPLATE), None)


async def _status_is(rt, message_id: int, status: str):
    message = (await rows_of(rt, [message_id]))[message_id]
    return message if message.status == status else None


async def _payload_has(rt, message_id: int, key: str):
    return key in ((await rows_of(rt, [message_id]))[message_id].payload or {})


async def _campaign_done(rt, campaign_id: int):
    async with rt.sessionmaker() as session:
        return (await session.get(Campaign, campaign_id)).status == "done"


def status_webhook(number: str, tracking, *, phone_number_id: str = FakeGraphApi.PHONE_NUMBER_ID,
                   wamid: str = "wamid.FORGED", status: str = "sent") -> bytes:
    entry = {"id": wamid, "status": status, "timestamp": str(int(time.time())), "recipient_id": number}
    if tracking is not ...:
        entry["biz_opaque_callback_data"] = tracking
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "200000000000001", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33100000000", "phone_number_id": phone_number_id},
            "statuses": [entry]}}]}]}).encode()


async def test_statuses_with_bogus_oversized_or_foreign_tracking_change_nothing(settings_for):
    async with FakeGraphApi(access_token=TOKEN) as graph:
        async with app_client(wa_settings(settings_for, graph, whatsapp_confirm_grace_seconds=3600)) as client:
            rt = client.app.state.rt
            rows, numbers, campaign_id, dead = await left_in_doubt(rt, 2, FIRST + 100)
            await rt.outbox.sweep()
            mine, other = rows
            ours = tracking_of(1, mine.id)
            await as_admin(client)  # the campaign's page says they await a confirmation
            shown = await client.get(f"/admin/campaigns/{campaign_id}/progress")
            assert shown.status_code == 200 and "dont 2 à confirmer" in shown.text, shown.text

            async def post(raw: bytes) -> int:
                return (await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, SECRET)})).status_code

            refused = [  # not from Meta: 400, nothing stored
                status_webhook(numbers[0], "ob:1:" + "9" * 600),  # oversized (Meta's limit: 512)
                status_webhook(numbers[0], "x" * 513),
                status_webhook(numbers[0], 12),  # not a string
                status_webhook(numbers[0], {"ob": mine.id}),
                status_webhook(numbers[0], [ours]),
            ]
            ignored = [  # well formed, but naming none of ours that fits: 200, nothing changes
                status_webhook(numbers[0], "ob:1:"),
                status_webhook(numbers[0], f"ob:1:{mine.id}:x"),
                status_webhook(numbers[0], f"ob:1:{mine.id} "),
                status_webhook(numbers[0], f"ob:01:{mine.id}"),
                status_webhook(numbers[0], f"ob:1:{2**31}"),
                status_webhook(numbers[0], "ob:1:../../etc"),
                status_webhook(numbers[0], "\u202eob:1:1"),
                status_webhook(numbers[0], f"ob:2:{mine.id}"),  # another organisation
                status_webhook(numbers[1], ours),  # another person's status naming this row
                status_webhook(numbers[0], ours, phone_number_id=FakeGraphApi.OTHER_PHONE_NUMBER_ID),  # another number
                status_webhook(numbers[0], tracking_of(1, other.id)),  # the other row, from this person
                status_webhook(numbers[0], ..., wamid="wamid.UNKNOWN"),  # no tracking at all
                status_webhook(numbers[0], ours, status="deleted"),  # not a status we read
            ]
            many = json.loads(status_webhook(numbers[0], ours))
            many["entry"][0]["changes"][0]["value"]["statuses"] = [  # 34,000 ids: more than a statement takes
                {"id": f"w{i}", "status": "sent", "recipient_id": "1", "biz_opaque_callback_data": f"ob:1:{i}"}
                for i in range(1, 8_001)] + [{"id": f"x{i}", "status": "read"} for i in range(26_000)]
            ignored.append(json.dumps(many).encode())
            assert len(ignored[-1]) < client.app.state.settings.whatsapp_body_max_bytes  # under the cap
            assert [await post(raw) for raw in refused] == [400] * len(refused)
            assert [await post(raw) for raw in ignored] == [200] * len(ignored)
            unsigned = status_webhook(numbers[0], ours)
            assert (await client.post("/bots/whatsapp/webhook", content=unsigned, headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": sign(unsigned, "not-the-secret")})
                    ).status_code == 401
            state = await rows_of(rt, [mine.id, other.id])
            assert [(m.status, m.platform_message_id) for m in state.values()] == [("awaiting", None)] * 2
            # the genuine one (Meta's shape, this person, this number): confirmed
            assert await post(status_webhook(numbers[0], ours, wamid="wamid.REAL")) == 200
            state = await rows_of(rt, [mine.id, other.id])
            assert (state[mine.id].status, state[mine.id].platform_message_id) == ("sent", "wamid.REAL")
            assert state[other.id].status == "awaiting"
            # then its delivered status finds it by wamid (delivery counting goes on)
            assert await post(status_webhook(numbers[0], ours, wamid="wamid.REAL", status="delivered")) == 200
            assert (await rows_of(rt, [mine.id]))[mine.id].status == "delivered"
            await dead.close()


async def test_a_status_for_a_row_still_sending_is_kept_for_the_sweep(settings_for):
    """A status webhook answered 200 for a row whose outcome the dead process never recorded (still
    `sending`): noted in the sent journal, so the next start-up records it sent with its wamid and
    as far as the status said (delivered), never sending it again and never awaiting."""
    async with FakeGraphApi(access_token=TOKEN) as graph:
        settings = wa_settings(settings_for, graph)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            rows, numbers, campaign_id, dead = await left_in_doubt(rt, 1, FIRST + 200)
            row = rows[0]
            for status in ("sent", "delivered"):
                raw = status_webhook(numbers[0], tracking_of(1, row.id), wamid="wamid.LATE", status=status)
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, SECRET)})
                assert response.status_code == 200
            assert (await rows_of(rt, [row.id]))[row.id].status == "sending"  # a live sender may own it
        async with app_client(settings) as client:  # the next start-up's sweep
            rt = client.app.state.rt
            swept = await eventually(lambda: _status_is(rt, row.id, "delivered"), timeout=15)
            assert swept.platform_message_id == "wamid.LATE"
            await asyncio.sleep(0.5)
            assert campaign_bodies(graph, numbers[0]) == []  # never sent again
            async with rt.sessionmaker() as session:
                assert (await progress(session, campaign_id))["sent"] == 1
        await dead.close()


async def test_a_send_in_doubt_is_not_sent_again_to_someone_who_said_stop_meanwhile(settings_for):
    """The grace over with no status for them: F's is sent again; E said « stop » since, so theirs is
    not (failed, with the reason), though it never reached them."""
    async with FakeGraphApi(access_token=TOKEN) as graph:
        settings = wa_settings(settings_for, graph, whatsapp_confirm_grace_seconds=0.5)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            rows, numbers, _, dead = await left_in_doubt(rt, 2, FIRST + 300)
            await rt.outbox.sweep()
            e, f = rows
            await asyncio.sleep(2.2)  # later rows are later than the clocks' margin

            async def post(raw: bytes) -> None:
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, SECRET)})
                assert response.status_code == 200

            await post(inbound(numbers[0], 300).replace(b'"Bonjour"', b'"stop"'))
            await rt.drain(timeout=10)
            async with rt.sessionmaker() as session:  # the answer to « stop », sent after the sweep
                answer = (await session.execute(select(Message).where(
                    Message.contact_id == e.contact_id, Message.direction == "out", Message.id > f.id,
                    Message.platform_message_id.is_not(None)))).scalars().first()
            assert answer is not None
            await post(status_webhook(numbers[0], tracking_of(1, answer.id), wamid=answer.platform_message_id,
                                      status="delivered"))  # webhooks flow past E and F
            resent = await eventually(lambda: _status_is(rt, f.id, "sent"))
            assert (resent.payload or {}).get("resent_after_doubt")
            stopped = await eventually(lambda: _status_is(rt, e.id, "failed"))
            assert "stopped" in stopped.error
            await rt.drain(timeout=10)
            assert len(campaign_bodies(graph, numbers[1])) == 1 and campaign_bodies(graph, numbers[0]) == []
            await dead.close()
