"""A flaky platform loses no reply: 30 % of sends answered 500 and 10 % 429 (Telegram's
parameters.retry_after; WhatsApp's HTTP 429 / 130429 / 131056 with Retry-After), every reply is
delivered once, in order per person; a rate limit does not use up an attempt (server errors do),
and the total time of retries is bounded (delivery_max_seconds)."""

from __future__ import annotations

import json

from sqlalchemy import select

from conversations.models import OUTBOUND, Address, Conversation, Message
from tests.conftest import app_client
from tests.fakes.graph_api import FakeGraphApi, sign
from tests.fakes.telegram_api import FakeTelegram, callback_update, text_update

SECRET = "secret-for-tests"


async def post_telegram(client, update: dict):
    return await client.post("/bots/telegram/webhook", content=json.dumps(update).encode(), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})


def telegram_settings(settings_for, fake, **extra):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                        telegram_api_base=fake.base_url, **extra)


async def outbound_rows(rt) -> dict[str, list[Message]]:
    """Outbound rows per person (their channel id), oldest first."""
    async with rt.sessionmaker() as session:
        rows = (await session.execute(
            select(Address.external_id, Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(Address, Address.id == Conversation.address_id)
            .where(Message.direction == OUTBOUND).order_by(Message.id))).all()
    people: dict[str, list[Message]] = {}
    for external_id, message in rows:
        people.setdefault(external_id, []).append(message)
    return people


async def test_a_flaky_bot_api_loses_no_reply_and_keeps_the_order(settings_for):
    with FakeTelegram() as fake:
        fake.fail_randomly("sendMessage", {500: 0.3, 429: 0.1}, retry_after=1, seed=9)
        async with app_client(telegram_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            chats = list(range(700_001, 700_021))
            for chat in chats:
                assert (await post_telegram(client, text_update("/start", chat_id=chat))).status_code == 200
            for chat in chats:
                assert (await post_telegram(client, callback_update("oui", chat_id=chat))).status_code == 200
            await rt.drain(timeout=90)
            people = await outbound_rows(rt)
        calls = fake.calls("sendMessage")
    statuses = [call.status for call in calls]
    assert statuses.count(429) >= 3 and statuses.count(500) >= 10  # the platform was flaky indeed
    replies = sum(len(rows) for rows in people.values())
    assert replies >= 2 * len(chats)
    assert [m.id for rows in people.values() for m in rows if m.status != "sent"] == []  # every reply delivered
    for chat in chats:
        rows = people[str(chat)]
        assert fake.sent_texts(chat) == [m.text for m in rows]  # once each, in order
        # A person's rows go out one after the other: the calls to them, cut after each success,
        # are each row's attempts. 500s count, 429s do not.
        segments, current = [], []
        for call in (c for c in calls if c.chat_id == chat):
            current.append(call.status)
            if call.status == 200:
                segments.append(current)
                current = []
        assert len(segments) == len(rows)
        for row, segment in zip(rows, segments):
            assert row.attempts == 1 + segment.count(500), (segment, row.attempts)


async def test_a_rate_limit_does_not_use_up_the_attempts(settings_for):
    with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake, delivery_max_attempts=2)) as client:
            rt = client.app.state.rt
            # more 429s than attempts allowed (without parameters.retry_after: retried after 1 s)
            fake.fail_next("sendMessage", 429, times=3, retry_after=0)
            assert (await post_telegram(client, text_update("/start", chat_id=4242))).status_code == 200
            await rt.drain(timeout=30)
            rows = (await outbound_rows(rt))["4242"]
    assert [m.status for m in rows] == ["sent", "sent"]
    assert rows[0].attempts == 1
    assert [c.status for c in fake.calls("sendMessage")] == [429] * 3 + [200, 200]


async def test_retries_are_bounded_in_time(settings_for):
    with FakeTelegram() as fake:
        settings = telegram_settings(settings_for, fake, delivery_max_attempts=1000, delivery_base_backoff=0.1,
                                     delivery_max_backoff=0.2, delivery_max_seconds=1.0)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            fake.fail_randomly("sendMessage", {500: 1.0})  # never goes through
            assert (await post_telegram(client, text_update("/start", chat_id=4343))).status_code == 200
            await rt.drain(timeout=30)
            rows = (await outbound_rows(rt))["4343"]
            fake.fail_randomly("sendMessage", {})
    first = rows[0]
    assert first.status == "failed" and "still failing after 1 s" in first.error
    assert 2 < len(fake.calls("sendMessage")) < 100


WA_SECRET, WA_TOKEN, NUMBER = "test-app-secret", "test-access-token", FakeGraphApi.PHONE_NUMBER_ID


def whatsapp_text(ident: str, person: str, body: str) -> bytes:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "33100000000", "phone_number_id": NUMBER},
            "contacts": [{"profile": {"name": "Sam"}, "wa_id": person}],
            "messages": [{"from": person, "id": f"wamid.IN.{ident}", "timestamp": "1763800000",
                          "type": "text", "text": {"body": body}}]}}]}]}).encode()


def graph_text(body: dict) -> str:
    if body["type"] == "text":
        return body["text"]["body"]
    return body["interactive"]["body"]["text"]


async def test_a_flaky_graph_api_loses_no_reply_and_keeps_the_order(settings_for):
    async with FakeGraphApi(access_token=WA_TOKEN) as graph:
        graph.fail_randomly({500: 0.3, 429: 0.05, 131056: 0.05}, retry_after={429: 0.3, 131056: 0.3}, seed=4)
        settings = settings_for(whatsapp_access_token=WA_TOKEN, whatsapp_app_secret=WA_SECRET,
                                whatsapp_verify_token="v", whatsapp_graph_api_base=graph.base_url,
                                whatsapp_phone_number_id=NUMBER)
        async with app_client(settings) as client:
            rt = client.app.state.rt
            people = [f"3363998{n:04d}" for n in range(20)]
            for n, person in enumerate(people):
                raw = whatsapp_text(str(n), person, "Bonjour")
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, WA_SECRET)})
                assert response.status_code == 200
            await rt.drain(timeout=90)
            rows = await outbound_rows(rt)
        attempts = graph.attempts
    replies = sum(len(r) for r in rows.values())
    assert replies >= len(people) and attempts > replies  # some sends failed first
    assert [m.id for r in rows.values() for m in r if m.status != "sent"] == []
    for person in people:
        received = [graph_text(body) for body in graph.requests_for(person)]
        expected = [m.text for m in rows[person]]
        assert len(received) == len(expected)
        assert all(got.startswith(text) for got, text in zip(received, expected))
