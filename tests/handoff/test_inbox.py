"""Inbox security and transitions: login, CSRF, organisations kept apart, notes, transfer, close."""

from __future__ import annotations

from sqlalchemy import select

from handoff.auth import hash_password
from conversations.models import Conversation, Event
from handoff.models import Organisation, Worker
from tests.conftest import app_client, csrf_of, login
from tests.conversations.test_commands import consented


async def add_worker(rt, email, first_name, organisation_slug="demo", online=False) -> Worker:
    async with rt.sessionmaker() as session, session.begin():
        organisation = (await session.execute(select(Organisation).where(Organisation.slug == organisation_slug))).scalar()
        if organisation is None:
            organisation = Organisation(slug=organisation_slug, name=organisation_slug.title())
            session.add(organisation)
            await session.flush()
        worker = Worker(organisation_id=organisation.id, email=email, password_hash=hash_password("pw-123456"),
                        first_name=first_name, job_title="médiateur", structure=organisation.name, is_online=online)
        session.add(worker)
    return worker


async def test_login_refused_with_a_wrong_password_and_pages_need_login(settings_for):
    async with app_client(settings_for()) as client:
        assert (await client.get("/inbox")).status_code == 303
        response = await login(client, "camille@demo.allervers.fr", "wrong")
        assert response.status_code == 401 and "incorrect" in response.text
        assert (await client.get("/inbox")).status_code == 303
        response = await login(client, "nobody@example.org", "whatever")
        assert response.status_code == 401
        page = await client.get("/inbox/login")
        refused = await client.post("/inbox/login", data={"email": "camille@demo.allervers.fr",
                                                          "password": "allervers-demo", "csrf_token": "forged"})
        assert refused.status_code == 403
        assert csrf_of(page.text)
        ok = await login(client, "camille@demo.allervers.fr", "allervers-demo")
        assert ok.status_code == 303
        assert (await client.get("/inbox")).status_code == 200
        async with client.app.state.rt.sessionmaker() as session:
            stored = (await session.execute(select(Worker.password_hash).where(
                Worker.email == "camille@demo.allervers.fr"))).scalar()
        assert stored.startswith("$argon2")


async def test_worker_of_another_organisation_is_refused(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await consented(client)
        await person.send("humain")
        await add_worker(rt, "other@elsewhere.fr", "Zoé", organisation_slug="ailleurs", online=True)
        async with rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar()
        assert (await login(client, "other@elsewhere.fr", "pw-123456")).status_code == 303
        inbox = await client.get("/inbox")
        assert f'data-conversation="{conversation_id}"' not in inbox.text
        assert (await client.get(f"/inbox/conversations/{conversation_id}")).status_code == 403
        assert (await client.get(f"/inbox/stream?conversation={conversation_id}")).status_code == 403
        reply = await client.post(f"/inbox/conversations/{conversation_id}/reply",
                                  data={"text": "intrus", "csrf_token": csrf_of(inbox.text)})
        assert reply.status_code == 403
        assert "intrus" not in str(await person.bot_lines())


async def test_notes_transfer_close_and_return_to_bot(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        await add_worker(rt, "lea@demo.fr", "Léa")
        person = await consented(client)
        await person.send("humain")
        async with rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar()
        await login(client, "camille@demo.allervers.fr", "allervers-demo")
        page = await client.get(f"/inbox/conversations/{conversation_id}")
        token = csrf_of(page.text)
        # CSRF is required on every action
        assert (await client.post(f"/inbox/conversations/{conversation_id}/note", data={"text": "x"})).status_code == 403
        await client.post(f"/inbox/conversations/{conversation_id}/note", data={"text": "Rappeler lundi", "csrf_token": token})
        page = await client.get(f"/inbox/conversations/{conversation_id}")
        assert "Rappeler lundi" in page.text
        assert "Rappeler lundi" not in str(await person.bot_lines())  # notes stay internal
        async with rt.sessionmaker() as session:
            lea = (await session.execute(select(Worker).where(Worker.email == "lea@demo.fr"))).scalar()
        await client.post(f"/inbox/conversations/{conversation_id}/transfer", data={"to": lea.id, "csrf_token": token})
        await rt.drain()
        assert "Léa, médiateur" in (await person.last())["text"]
        await client.post(f"/inbox/conversations/{conversation_id}/close",
                          data={"outcome": "oriented", "detail": "CCAS", "csrf_token": token})
        await rt.drain()
        closing = [m["text"] for m in (await person.bot_lines())[-2:]]
        assert "a terminé la conversation" in closing[0]
        assert "nouvelles de temps en temps" in closing[1]  # outreach: the news consent, asked once then
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation_id)
            types = (await session.execute(select(Event.type).where(Event.conversation_id == conversation_id))).scalars().all()
        assert conversation.status == "closed" and conversation.outcome == "Orientée vers une structure — CCAS"
        assert {"note_added", "conversation_transferred", "conversation_closed", "handoff_requested",
                "conversation_assigned"} <= set(types)
        # The person writes again: a new conversation with the bot starts.
        await person.send("bonjour")
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"


async def test_queue_when_nobody_is_online_then_a_worker_takes_it(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        async with rt.sessionmaker() as session, session.begin():
            for worker in (await session.execute(select(Worker))).scalars():
                worker.is_online = False
        person = await consented(client)
        await person.send("humain")
        assert "Personne n'est disponible tout de suite" in (await person.last())["text"]
        await login(client, "camille@demo.allervers.fr", "allervers-demo")
        inbox = await client.get("/inbox")
        assert "en attente" in inbox.text
        conversation_id = int(inbox.text.split('data-conversation="')[1].split('"')[0])
        await client.post(f"/inbox/conversations/{conversation_id}/take", data={"csrf_token": csrf_of(inbox.text)})
        await rt.drain()
        assert "Camille" in (await person.last())["text"]
        page = await client.get(f"/inbox/conversations/{conversation_id}")
        await client.post(f"/inbox/conversations/{conversation_id}/return-to-bot", data={"csrf_token": csrf_of(page.text)})
        await rt.drain()
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"
