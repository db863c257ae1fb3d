"""Teams (hours, holidays, out-of-hours message, territories), organisation settings, the audit
log page and its purge, through the real routes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from admin.audit import AuditEntry, record
from kernel.database import utcnow
from conversations.models import Conversation
from conversations.retention import purge_expired
from handoff.models import Organisation, Team, Territory
from tests.admin.helpers import as_admin
from tests.conftest import app_client, login
from tests.conversations.test_commands import consented


async def test_team_hours_message_and_territories(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        created = await client.post("/admin/teams", data={"name": "Nord", "csrf_token": csrf})
        assert created.status_code == 303
        team_id = int(created.headers["location"].rsplit("/", 1)[1])
        page = await client.get(f"/admin/teams/{team_id}")
        assert "Jours fériés" in page.text and "Pentecôte" in page.text
        bad = await client.post(f"/admin/teams/{team_id}", data={
            "name": "Nord", "mon_0_start": "17:00", "mon_0_end": "09:00", "csrf_token": csrf})
        assert bad.status_code == 400 and "Lundi : l&#39;heure de fin" in bad.text
        saved = await client.post(f"/admin/teams/{team_id}", data={
            "name": "Nord", "mon_0_start": "09:00", "mon_0_end": "12:30", "mon_1_start": "13:30", "mon_1_end": "17:00",
            "fri_0_start": "09:00", "fri_0_end": "12:00", "closed_on_holidays": "1",
            "out_of_hours_message": "Nous sommes fermés. On vous répond lundi.", "escalate_after_minutes": "45",
            "csrf_token": csrf})
        assert saved.status_code == 303
        refused = await client.post(f"/admin/teams/{team_id}", data={
            "name": "Nord", "escalate_after_minutes": "-5", "csrf_token": csrf})
        assert refused.status_code == 400 and "Délai avant de passer la main" in refused.text
        preview = await client.post(f"/admin/teams/{team_id}/preview", data={
            "out_of_hours_message": "Fermé aujourd'hui", "csrf_token": csrf})
        assert "Fermé aujourd&#39;hui" in preview.text and "17 / 600" in preview.text
        # territories: a postcode with one commune, an ambiguous name, a département
        one = await client.post(f"/admin/teams/{team_id}/territories", data={"q": "44400", "csrf_token": csrf})
        assert one.status_code == 303
        several = await client.post(f"/admin/teams/{team_id}/territories", data={"q": "Saint-Denis", "csrf_token": csrf})
        assert several.status_code == 200 and "lequel" in several.text
        unknown = await client.post(f"/admin/teams/{team_id}/territories", data={"q": "Zzzzqx", "csrf_token": csrf})
        assert unknown.status_code == 400 and "aucune commune" in unknown.text
        dep = await client.post(f"/admin/teams/{team_id}/territories", data={"q": "Vendée", "csrf_token": csrf})
        assert dep.status_code == 303
        both = await client.post(f"/admin/teams/{team_id}/territories", data={"q": "Vienne", "csrf_token": csrf})
        assert "Vienne (86)" in both.text and "Vienne (38)" in both.text  # the département and the commune
        assert (await client.post(f"/admin/teams/{team_id}/territories", data={"q": "dép. 85", "csrf_token": csrf})
                ).status_code == 303  # already there: nothing added
        again = await client.post(f"/admin/teams/{team_id}/territories", data={"kind": "commune", "code": "44143",
                                                                            "csrf_token": csrf})
        assert again.status_code == 303
        async with rt.sessionmaker() as session:
            team = await session.get(Team, team_id)
            territories = (await session.execute(select(Territory).where(Territory.team_id == team_id))).scalars().all()
        assert team.opening_hours == {"mon": [["09:00", "12:30"], ["13:30", "17:00"]], "fri": [["09:00", "12:00"]]}
        assert team.out_of_hours_message.startswith("Nous sommes fermés")
        assert team.escalate_after_minutes == 45  # the routing's per-team delay (handoff/escalation.py)
        assert sorted((t.kind, t.code) for t in territories) == [("commune", "44143"), ("departement", "85")]
        page = await client.get(f"/admin/teams/{team_id}")
        vendee = sum(1 for c in rt.directory.communes().communes if c.departement == "85")
        assert f"{vendee + 1} communes" in page.text and "Rezé (44)" in page.text and "Vendée (85)" in page.text
        removed = await client.post(f"/admin/teams/{team_id}/territories/{territories[0].id}/delete",
                                    data={"csrf_token": csrf})
        assert removed.status_code == 303
        async with rt.sessionmaker() as session:
            kinds = list((await session.execute(select(AuditEntry.action).where(
                AuditEntry.target_type == "team"))).scalars().all())
        assert kinds == ["team.created", "team.updated", "territory.added", "territory.added", "territory.removed"]


async def test_settings_consent_preview_channels(settings_for):
    async with app_client(settings_for(public_url="https://a.example", telegram_webhook_secret="s",
                                      secure_cookies=False)) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        page = await client.get("/admin/settings")
        assert "Êtes-vous d&#39;accord" in page.text and "France services Démo" in page.text
        assert "https://a.example/bots/telegram/webhook" in page.text
        bad = await client.post("/admin/settings", data={"name": "", "opening_hours_text": "x", "default_language": "fr",
                                                         "csrf_token": csrf})
        assert bad.status_code == 400
        ok = await client.post("/admin/settings", data={"name": "Maison des solidarités", "retention_days": "90",
                                                        "opening_hours_text": "du lundi au jeudi", "default_language": "fr",
                                                        "csrf_token": csrf})
        assert ok.status_code == 303
        async with rt.sessionmaker() as session:
            organisation = (await session.execute(select(Organisation).where(Organisation.slug == "demo"))).scalar()
        assert organisation.name == "Maison des solidarités" and organisation.retention_days == 90
        person = await consented(client)
        assert any("Maison des solidarités" in line["text"] for line in await person.bot_lines())


async def test_audit_page_filters_opened_conversations_and_purge(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await consented(client)
        await person.send("humain")
        async with rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar()
        await login(client, "camille@demo.allervers.fr", "allervers-demo")
        assert (await client.get(f"/inbox/conversations/{conversation_id}")).status_code == 200
        assert (await client.get("/admin/audit")).status_code == 403  # a worker
        client.cookies.clear()
        await as_admin(client)
        page = await client.get("/admin/audit?action=conversation.opened")
        assert "Conversation ouverte" in page.text and f"conversation n° {conversation_id}" in page.text
        assert "Camille" in page.text
        assert "1 entrée." in page.text
        assert "Aucune entrée" in (await client.get("/admin/audit?action=team.created")).text
        assert "Aucune entrée" in (await client.get("/admin/audit?since=2000-01-01&until=2000-01-02")).text
        assert (await client.get("/admin/audit?since=nonsense&page=zz")).status_code == 200
        # pagination: 60 more entries -> 2 pages
        async with rt.sessionmaker() as session, session.begin():
            organisation_id = (await session.execute(select(Organisation.id))).scalar()
            for _ in range(60):
                record(session, organisation_id=organisation_id, actor_id=None, action="team.updated")
        assert "Page 1 / 2" in (await client.get("/admin/audit")).text
        # purge: entries past the retention period go
        async with rt.sessionmaker() as session, session.begin():
            old = record(session, organisation_id=organisation_id, actor_id=None, action="team.created")
            old.created_at = utcnow() - timedelta(days=rt.settings.retention_days + 1)
        await purge_expired(rt)
        async with rt.sessionmaker() as session:
            left = list((await session.execute(select(AuditEntry.action))).scalars().all())
        assert "team.created" not in left and len(left) == 61


async def test_retention_set_by_the_admin_is_announced_and_applied(settings_for):
    """The organisation's retention period: the consent text says it, the purge applies it to its
    contacts only (another organisation keeps the deployment's period)."""
    from conversations.models import Contact
    from tests.webchat import Person

    async with app_client(settings_for(retention_days=180)) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        saved = await client.post("/admin/settings", data={
            "csrf_token": csrf, "name": "France services Démo", "retention_days": "30",
            "default_language": "fr", "opening_hours_text": "du lundi au vendredi, de 9 h à 17 h"})
        assert saved.status_code == 303, saved.text
        rt._organisation_names.clear()  # the flow context caches names for a minute
        person = Person(client)
        await person.send("bonjour")
        assert any("30 jours au plus" in line["text"] for line in await person.bot_lines())
        async with rt.sessionmaker() as session, session.begin():
            demo = (await session.execute(select(Organisation).where(Organisation.slug == "demo"))).scalar_one()
            other = Organisation(slug="ailleurs", name="Ailleurs")
            session.add(other)
            await session.flush()
            when = utcnow() - timedelta(days=45)  # past 30 days, within 180
            session.add_all([Contact(organisation_id=demo.id, created_at=when, last_inbound_at=when),
                             Contact(organisation_id=other.id, created_at=when, last_inbound_at=when)])
        assert await purge_expired(rt, dry_run=True) == 1
        assert await purge_expired(rt) == 1
        async with rt.sessionmaker() as session:
            left = (await session.execute(select(Contact.organisation_id))).scalars().all()
        assert other.id in left and left.count(demo.id) == 1  # the person who just wrote stays
