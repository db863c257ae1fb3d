"""The sheet's routes: anonymous (login), no CSRF (403), another organisation's worker (404, as for
a missing conversation); none of them changes anything."""

from __future__ import annotations

from sqlalchemy import func, select

from admin.audit import AuditEntry
from handoff.auth import hash_password
from conversations.models import Conversation
from followups.models import Appointment, Followup
from handoff.models import Organisation, Worker
from tests.conftest import app_client, csrf_of, login
from tests.followups.helpers import PASSWORD, WORKER_EMAIL
from tests.webchat import Person

FORM = {"day": "2030-03-06", "time": "10:00", "place_address": "1 place de la Mairie", "days": "7", "agreed": "1"}


async def counts(rt):
    async with rt.sessionmaker() as session:
        return tuple([(await session.execute(select(func.count()).select_from(model))).scalar()
                      for model in (Appointment, Followup, AuditEntry)])


async def test_anonymous_csrf_and_other_organisation_are_refused(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await Person.joined(client)
        await person.post("humain")
        async with rt.sessionmaker() as session, session.begin():
            conversation_id = (await session.execute(select(Conversation.id))).scalar()
            other = Organisation(slug="autre", name="Autre", whatsapp_templates={})
            session.add(other)
            await session.flush()
            session.add(Worker(organisation_id=other.id, email="lea@autre.fr", password_hash=hash_password(PASSWORD),
                               first_name="Léa", job_title="médiatrice", is_admin=True))
        base = f"/inbox/conversations/{conversation_id}"
        posts = [f"{base}/appointments", f"{base}/appointments/1", f"{base}/appointments/1/cancel",
                 f"{base}/followup", f"{base}/followup/1/cancel"]
        start = await counts(rt)
        # Anonymous: to the login page (401 for htmx).
        assert (await client.get(f"{base}/followups")).status_code == 303
        assert (await client.get(f"{base}/followups", headers={"HX-Request": "true"})).status_code == 401
        for path in posts:
            assert (await client.post(path, data=FORM)).status_code in (303, 401)
        # Camille without the CSRF token: 403.
        await login(client, WORKER_EMAIL, PASSWORD)
        for path in posts:
            assert (await client.post(path, data=FORM)).status_code == 403
        await client.post("/inbox/logout", data={"csrf_token": csrf_of((await client.get("/inbox")).text)})
        # Another organisation's admin: 404 everywhere, and its dashboard counts nothing of ours.
        assert (await login(client, "lea@autre.fr", PASSWORD)).status_code == 303
        csrf = csrf_of((await client.get("/inbox")).text)
        assert (await client.get(f"{base}/followups")).status_code == 404
        for path in posts:
            assert (await client.post(path, data={**FORM, "csrf_token": csrf})).status_code == 404
        stats = await client.get("/admin/stats")
        assert stats.status_code == 200 and "Telegram" not in stats.text and "Discussion sur le site" not in stats.text
        assert await counts(rt) == start
