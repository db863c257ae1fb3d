"""Workers through the real routes: invite by a one-time link, the invitee sets a password and is
logged in; the link works once; edit; deactivate sends their conversations back to the queue and
tells the person; a reset link; every change in the audit log."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from admin.audit import AuditEntry
from kernel.database import utcnow
from conversations.models import ASSIGNED, WAITING, Conversation, Message
from handoff.models import Worker, WorkerInvitation
from tests.admin.helpers import as_admin, invitation_link, person_form
from tests.conftest import app_client, csrf_of, login
from tests.conversations.test_commands import consented


async def actions(rt) -> list[str]:
    async with rt.sessionmaker() as session:
        return list((await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars().all())


async def test_invite_then_the_invitee_activates_and_is_logged_in(settings_for):
    async with app_client(settings_for(public_url="https://allervers.example", secure_cookies=False)) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        page = await client.get("/admin/people/new")
        assert page.status_code == 200 and "Inviter une personne" in page.text
        bad = await client.post("/admin/people", data={**person_form(first_name=""), "csrf_token": csrf})
        assert bad.status_code == 400 and "Prénom : à remplir" in bad.text
        created = await client.post("/admin/people", data={**person_form(), "csrf_token": csrf})
        assert created.status_code == 200, created.text
        link = invitation_link(created.text)
        assert link.startswith("https://allervers.example/invite/")
        token = link.rsplit("/", 1)[1]
        assert len(token) >= 43  # 256 bits, url-safe base64
        async with rt.sessionmaker() as session:
            nadia = (await session.execute(select(Worker).where(Worker.first_name == "Nadia"))).scalar()
            stored = (await session.execute(select(WorkerInvitation.token_hash))).scalars().all()
        assert nadia.state == "invited" and nadia.languages == ["fr", "ar"] and nadia.topics == ["logement", "caf"]
        assert nadia.schedule == {"mon": [["09:00", "12:30"]]}
        assert token not in stored and len(stored) == 1  # only its hash

        # The invitee: a fresh browser session, no e-mail given by the admin -> asked on the page
        await client.post("/inbox/logout", data={"csrf_token": csrf})
        client.cookies.clear()
        path = "/invite/" + token
        page = await client.get(path)
        assert page.status_code == 200 and "Bienvenue, Nadia" in page.text and 'name="email"' in page.text
        form = {"first_name": "Nadia", "email": "nadia@demo.fr", "password": "un-mot-de-passe", "password_again": "autre"}
        assert (await client.post(path, data=form)).status_code == 403  # CSRF
        different = await client.post(path, data={**form, "csrf_token": csrf_of(page.text)})
        assert different.status_code == 400 and "différentes" in different.text
        form["password_again"] = form["password"]
        done = await client.post(path, data={**form, "csrf_token": csrf_of(page.text)})
        assert done.status_code == 303 and done.headers["location"] == "/inbox"
        assert (await client.get("/inbox")).status_code == 200
        # single use
        assert (await client.get(path)).status_code == 404
        client.cookies.clear()
        assert (await login(client, "nadia@demo.fr", "un-mot-de-passe")).status_code == 303
        assert (await actions(rt))[-2:] == ["worker.invited", "worker.activated"]


async def test_expired_and_unknown_links_are_refused(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        created = await client.post("/admin/people", data={**person_form(email="old@demo.fr"), "csrf_token": csrf})
        token = invitation_link(created.text).rsplit("/", 1)[1]
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(WorkerInvitation).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert (await client.get("/invite/" + token)).status_code == 404
        assert (await client.get("/invite/not-a-token")).status_code == 404
        page = await client.get("/admin/teams")
        refused = await client.post("/invite/" + token, data={"csrf_token": csrf_of(page.text), "first_name": "X",
                                                               "password": "0123456789", "password_again": "0123456789"})
        assert refused.status_code == 404
        async with rt.sessionmaker() as session:
            assert (await session.execute(select(Worker.is_active).where(Worker.email == "old@demo.fr"))).scalar() is False


async def test_deactivate_requeues_conversations_and_tells_the_person(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await consented(client)
        await person.send("humain")  # Camille (online) gets it
        async with rt.sessionmaker() as session:
            conversation = (await session.execute(select(Conversation))).scalar()
            camille = (await session.execute(select(Worker).where(Worker.first_name == "Camille"))).scalar()
        assert conversation.status == ASSIGNED and conversation.assignee_id == camille.id
        csrf = await as_admin(client)
        confirm = await client.get(f"/admin/people/{camille.id}/deactivate")
        assert "1 conversation(s)" in confirm.text
        assert (await client.post(f"/admin/people/{camille.id}/deactivate")).status_code == 403
        done = await client.post(f"/admin/people/{camille.id}/deactivate", data={"csrf_token": csrf})
        assert done.status_code == 303
        await rt.drain()
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation.id)
            camille = await session.get(Worker, camille.id)
            told = (await session.execute(select(func.count()).where(
                Message.conversation_id == conversation.id, Message.text.contains("n'est plus disponible")))).scalar()
        assert conversation.status == WAITING and conversation.assignee_id is None
        assert camille.state == "deactivated" and told == 1
        assert "plus disponible" in str(await person.bot_lines())
        assert (await actions(rt))[-1] == "worker.deactivated"
        # Camille can no longer log in; the admin cannot deactivate themself
        other = client.__class__(transport=client._transport, base_url="http://testserver")
        async with other:
            assert (await login(other, "camille@demo.allervers.fr", "allervers-demo")).status_code == 401
        async with rt.sessionmaker() as session:
            sam = (await session.execute(select(Worker).where(Worker.first_name == "Sam"))).scalar()
        assert (await client.post(f"/admin/people/{sam.id}/deactivate", data={"csrf_token": csrf})).status_code == 400
        # reactivate, then a password reset link
        assert (await client.post(f"/admin/people/{camille.id}/reactivate", data={"csrf_token": csrf})).status_code == 303
        reset = await client.post(f"/admin/people/{camille.id}/link", data={"csrf_token": csrf})
        assert "Nouveau mot de passe pour Camille" in reset.text
        token = invitation_link(reset.text).rsplit("/", 1)[1]
        client.cookies.clear()
        page = await client.get("/invite/" + token)
        assert "Nouveau mot de passe" in page.text and 'name="first_name"' not in page.text
        done = await client.post("/invite/" + token, data={"csrf_token": csrf_of(page.text), "password": "nouveau-secret",
                                                            "password_again": "nouveau-secret"})
        assert done.status_code == 303
        client.cookies.clear()
        assert (await login(client, "camille@demo.allervers.fr", "allervers-demo")).status_code == 401
        assert (await login(client, "camille@demo.allervers.fr", "nouveau-secret")).status_code == 303


async def test_edit_a_worker_and_the_team_lead_sees_the_team(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        async with rt.sessionmaker() as session:
            camille = (await session.execute(select(Worker).where(Worker.first_name == "Camille"))).scalar()
            sam = (await session.execute(select(Worker).where(Worker.first_name == "Sam"))).scalar()
        page = await client.get(f"/admin/people/{camille.id}")
        assert page.status_code == 200 and "Camille" in page.text
        wrong = await client.post(f"/admin/people/{camille.id}", data={
            **person_form(first_name="Camille", capacity="0"), "csrf_token": csrf})
        assert wrong.status_code == 400 and "entre 1 et 200" in wrong.text
        saved = await client.post(f"/admin/people/{camille.id}", data={
            **person_form(first_name="Camille", is_team_lead="1", team_id=str(camille.team_id)), "csrf_token": csrf})
        assert saved.status_code == 303
        own = await client.post(f"/admin/people/{sam.id}", data={**person_form(first_name="Sam"), "csrf_token": csrf})
        assert own.status_code == 400 and "propre rôle" in own.text
        async with rt.sessionmaker() as session:
            camille = await session.get(Worker, camille.id)
        assert camille.is_team_lead and camille.capacity == 8 and camille.job_title == "médiatrice numérique"
        # Sam (same team) answers someone: Camille, team lead, sees it under « Mon équipe »
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Worker).where(Worker.id == camille.id).values(is_online=False))
            await session.execute(update(Worker).where(Worker.id == sam.id).values(is_online=True))
        person = await consented(client)
        await person.send("humain")
        client.cookies.clear()
        await login(client, "camille@demo.allervers.fr", "allervers-demo")
        assert "Mon équipe (1)" in (await client.get("/inbox")).text
        async with rt.sessionmaker() as session, session.begin():
            await session.execute(update(Worker).where(Worker.id == camille.id).values(is_team_lead=False))
        assert "Mon équipe" not in (await client.get("/inbox")).text
