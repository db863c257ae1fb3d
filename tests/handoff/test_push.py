"""Web Push to workers' phones, against a fake push service on loopback (tests/fakes/push_service.py):
the subscription route (CSRF, capped, validated, nothing stored on refusal), a push for a new
waiting conversation of the worker's team and for a new message in a conversation assigned to them
(encrypted, VAPID-signed, decrypted here with the subscription's private key), never delaying
receive(), a gone subscription forgotten, push off without keys."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import func, select, update

from conversations.models import Conversation
from handoff.models import Worker
from handoff.push import PushSubscription
from tests.conftest import app_client, csrf_of, eventually, login
from tests.conversations.test_commands import consented
from tests.fakes.push_service import FakePushService, b64url

CAMILLE = ("camille@demo.allervers.fr", "allervers-demo")


def vapid_keys() -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    raw = private.private_numbers().private_value.to_bytes(32, "big")
    public = private.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(public), b64url(raw)


@pytest.fixture
def push_service():
    with FakePushService() as service:
        yield service


def push_settings(settings_for, **overrides):
    public, private = vapid_keys()
    return settings_for(vapid_public_key=public, vapid_private_key=private,
                        vapid_subject="mailto:equipe@allervers.fr", **overrides)


async def subscribe(client, subscription: dict, token: str):
    return await client.post("/inbox/push/subscribe", json=subscription, headers={"X-CSRF-Token": token})


async def stored(client) -> int:
    async with client.app.state.rt.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(PushSubscription))).scalar()


async def test_subscribe_is_checked_and_refusals_store_nothing(settings_for, push_service):
    settings = push_settings(settings_for)
    async with app_client(settings) as client:
        assert (await client.post("/inbox/push/subscribe", json={})).status_code in (303, 401)  # login first
        await login(client, *CAMILLE)
        token = csrf_of((await client.get("/inbox")).text)
        good = push_service.subscription("phone")
        key = await client.get("/inbox/push/key")
        assert key.status_code == 200 and key.json() == {"key": settings.vapid_public_key}
        refusals = [
            (await client.post("/inbox/push/subscribe", json=good), 403),  # no CSRF
            (await client.post("/inbox/push/subscribe", json=good, headers={"X-CSRF-Token": "forged"}), 403),
            (await client.post("/inbox/push/subscribe", content=b"endpoint=x",
                               headers={"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"}), 415),
            (await client.post("/inbox/push/subscribe", content=b"{not json",
                               headers={"X-CSRF-Token": token, "Content-Type": "application/json"}), 400),
            (await client.post("/inbox/push/subscribe", content=b"[" * 5000,
                               headers={"X-CSRF-Token": token, "Content-Type": "application/json"}), 413),
            (await subscribe(client, {**good, "endpoint": "javascript:alert(1)"}, token), 400),
            (await subscribe(client, {**good, "endpoint": "https://user:pw@push.example/x"}, token), 400),
            (await subscribe(client, {**good, "endpoint": "https://push.example/" + "x" * 1200}, token), 400),
            (await subscribe(client, {**good, "keys": {"p256dh": "short", "auth": good["keys"]["auth"]}}, token), 400),
            (await subscribe(client, {**good, "keys": {"p256dh": good["keys"]["p256dh"], "auth": "a b"}}, token), 400),
            (await subscribe(client, {"endpoint": good["endpoint"]}, token), 400),
            (await subscribe(client, [good], token), 400),
        ]
        for response, status in refusals:
            assert response.status_code == status, (response.status_code, response.text)
        assert await stored(client) == 0
        assert (await subscribe(client, good, token)).status_code == 204
        assert (await subscribe(client, good, token)).status_code == 204  # the same browser again: one row
        assert await stored(client) == 1
        for n in range(7):  # capped per worker: the oldest go
            assert (await subscribe(client, push_service.subscription(f"phone-{n}"), token)).status_code == 204
        assert await stored(client) == 5
        unsubscribe = await client.post("/inbox/push/unsubscribe", json={"endpoint": push_service.subscription("phone-6")["endpoint"]},
                                        headers={"X-CSRF-Token": token})
        assert unsubscribe.status_code == 204 and await stored(client) == 4


async def test_push_off_without_keys(settings_for):
    async with app_client(settings_for()) as client:
        await login(client, *CAMILLE)
        token = csrf_of((await client.get("/inbox")).text)
        with FakePushService() as service:
            assert (await subscribe(client, service.subscription("x"), token)).status_code == 404
        assert (await client.get("/inbox/push/key")).status_code == 404
        assert 'data-push="1"' not in (await client.get("/inbox")).text


async def test_new_waiting_conversation_and_new_message_reach_the_phone(settings_for, push_service):
    async with app_client(push_settings(settings_for)) as client:
        rt = client.app.state.rt
        await login(client, *CAMILLE)
        page = (await client.get("/inbox")).text
        assert 'data-push="1"' in page
        assert (await subscribe(client, push_service.subscription("camille"), csrf_of(page))).status_code == 204
        # Camille is away: the person waits in the team's queue -> "someone is waiting"
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Worker).values(is_online=False))
        person = await consented(client)
        await person.send("humain")
        push = (await push_service.wait_for_async(1))[0]
        assert push.vapid_ok, push.problem
        assert push.vapid_claims["sub"] == "mailto:equipe@allervers.fr"
        assert push.headers["content-encoding"] == "aes128gcm" and int(push.headers["ttl"]) > 0
        async with rt.sessionmaker() as session:
            conversation = (await session.execute(select(Conversation))).scalar_one()
        assert conversation.status == "waiting"
        message = push_service.decrypt(push)
        assert message["url"] == f"/inbox/conversations/{conversation.id}" and "attend" in message["body"]
        assert "humain" not in str(message)  # no message text, nothing personal

        # Camille takes it; the person writes: "a new message for me", without the text
        token = csrf_of((await client.get(f"/inbox/conversations/{conversation.id}")).text)
        assert (await client.post(f"/inbox/conversations/{conversation.id}/take", data={"csrf_token": token})).status_code == 303
        push_service.delay(2.0)  # a slow push service never slows the person's message down
        started = time.monotonic()
        await person.post("Voici mon numéro de dossier 12345")
        assert time.monotonic() - started < 1.8
        second = (await push_service.wait_for_async(2))[1]
        assert second.vapid_ok and push_service.decrypt(second)["url"] == f"/inbox/conversations/{conversation.id}"
        assert "12345" not in str(push_service.decrypt(second))

        # the push service says the subscription is gone: it is forgotten
        push_service.delay(0)
        push_service.answer_with(410)
        await person.post("Encore une chose")
        (await push_service.wait_for_async(3))

        async def forgotten():
            return await stored(client) == 0

        await eventually(forgotten)
        await rt.drain()


async def test_a_colleagues_conversation_does_not_ring_my_phone(settings_for, push_service):
    async with app_client(push_settings(settings_for)) as client:
        rt = client.app.state.rt
        await login(client, *CAMILLE)
        token = csrf_of((await client.get("/inbox")).text)
        assert (await subscribe(client, push_service.subscription("camille"), token)).status_code == 204
        # Sam (online, capacity) gets the person; Camille is away: a message for Sam is not pushed to Camille
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Worker).values(is_online=False))
            await session.execute(update(Worker).where(Worker.first_name == "Sam").values(is_online=True))
        person = await consented(client)
        await person.send("humain")
        async with rt.sessionmaker() as session:
            conversation = (await session.execute(select(Conversation))).scalar_one()
            camille = (await session.execute(select(Worker).where(Worker.email == CAMILLE[0]))).scalar_one()
        assert conversation.status == "assigned" and conversation.assignee_id != camille.id
        await person.send("Bonjour Sam")
        await rt.drain()
        await asyncio.sleep(0.3)
        assert push_service.pushes == []
