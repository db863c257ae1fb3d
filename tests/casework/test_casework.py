"""Casework end to end through the HTTP routes: canned answers (search, variables, propose,
approve in the console, audit), transfer to another organisation (the person asked first: Non keeps
it, Oui moves it), outside referral (directory partner, consent, e-mail link), statistics, and
organisations kept apart (404, nothing changed)."""

from __future__ import annotations

from datetime import date, timedelta
from html import unescape

import httpx
from sqlalchemy import func, select

from admin.audit import AuditEntry
from kernel.database import utcnow
from casework.models import APPROVED, PROPOSED, CannedAnswer, Referral
from casework.stats import referral_counts
from conversations.models import OUTBOUND, Contact, Conversation, Event, Message
from directory.models import ORIGIN_ORGANISATION, Service, Structure
from tests.casework.helpers import ADMIN, ZOE, handed_over, logged_in, other_organisation
from tests.conftest import app_client, csrf_of


async def outbound_count(rt) -> int:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(func.count()).where(Message.direction == OUTBOUND))).scalar()


async def test_canned_answers_search_fill_propose_approve_and_isolation(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        await other_organisation(rt)
        person, conversation_id = await handed_over(client)
        csrf = await logged_in(client)
        page = await client.get(f"/inbox/conversations/{conversation_id}")
        assert "📚 Réponses types" in page.text and f"/inbox/casework/{conversation_id}/canned" in page.text
        assert "🤝 Passer à une autre structure du réseau" in page.text

        before = await outbound_count(rt)
        found = await client.get(f"/inbox/casework/{conversation_id}/canned", params={"q": "rsa"})
        assert found.status_code == 200
        assert "RSA : comment faire la demande" in found.text and "Domiciliation" not in found.text
        assert "À compléter : {prénom}, {lieu}" in unescape(found.text)  # unknown: left visible, never blank
        everything = unescape((await client.get(f"/inbox/casework/{conversation_id}/canned")).text)
        assert "je suis Camille" in everything  # {conseiller}
        from casework.canned import PARIS, spoken_date
        assert spoken_date(utcnow().astimezone(PARIS).date()) in everything  # {date}, Paris time
        assert await outbound_count(rt) == before  # searching sends nothing

        # A worker proposes: CSRF first, then a proposed row, not offered until approved
        refused = await client.post("/inbox/casework/canned", data={"title": "Chèque énergie", "text": "x"})
        assert refused.status_code == 403
        bad = await client.post("/inbox/casework/canned", data={"title": "", "text": "x", "csrf_token": csrf})
        assert bad.status_code == 400 and "Titre : à remplir." in unescape(bad.text)
        proposed = await client.post("/inbox/casework/canned", data={
            "title": "Chèque énergie", "text": "Bonjour {prénom}, le chèque énergie arrive par courrier.",
            "source_url": "https://www.service-public.fr/particuliers/vosdroits/F35006", "csrf_token": csrf})
        assert proposed.status_code == 201
        async with rt.sessionmaker() as session:
            row = (await session.execute(select(CannedAnswer).where(CannedAnswer.title == "Chèque énergie"))).scalar_one()  # the refused ones wrote nothing
        assert row.status == PROPOSED
        assert "Chèque énergie" not in (await client.get(f"/inbox/casework/{conversation_id}/canned",
                                                          params={"q": "énergie"})).text
        # A worker cannot use the console
        assert (await client.get("/admin/canned")).status_code == 403

        # Another organisation's worker: 404 on the conversation, nothing of ours in their search
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver") as other:
            other.app = client.app
            other_csrf = await logged_in(other, ZOE)
            assert (await other.get(f"/inbox/casework/{conversation_id}/canned")).status_code == 404
            assert (await other.get(f"/admin/canned/{row.id}")).status_code == 404
            assert (await other.post(f"/admin/canned/{row.id}/status",
                                     data={"status": "approved", "csrf_token": other_csrf})).status_code == 404
            listing = await other.get("/admin/canned")
            assert listing.status_code == 200 and "Chèque énergie" not in listing.text and "RSA" not in listing.text

        # The admin approves in the console (audited); the answer is now offered
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver") as admin:
            admin_csrf = await logged_in(admin, ADMIN)
            listing = await admin.get("/admin/canned")
            assert "📨 Proposées par les équipes (1)" in unescape(listing.text) and "proposée par Camille" in listing.text
            done = await admin.post(f"/admin/canned/{row.id}/status", data={"status": "approved", "csrf_token": admin_csrf})
            assert done.status_code == 303
            edit = await admin.post(f"/admin/canned/{row.id}", data={
                "title": "Chèque énergie", "text": "Bonjour {prénom}, le chèque énergie arrive par courrier en avril.",
                "source_url": "https://www.service-public.fr/particuliers/vosdroits/F35006",
                "checked_on": date.today().isoformat(), "status": "approved", "csrf_token": admin_csrf})
            assert edit.status_code == 303
            bad = await admin.post(f"/admin/canned/{row.id}", data={"title": "x", "text": "y", "source_url": "javascript:1",
                                                                   "status": "approved", "csrf_token": admin_csrf})
            assert bad.status_code == 400 and "https://" in bad.text
        async with rt.sessionmaker() as session:
            row = await session.get(CannedAnswer, row.id)
            actions = (await session.execute(select(AuditEntry.action).where(
                AuditEntry.target_type == "canned_answer", AuditEntry.target_id == row.id)
                .order_by(AuditEntry.id))).scalars().all()
        assert row.status == APPROVED and row.text.endswith("en avril.") and row.source_url.startswith("https://")
        assert actions == ["canned.proposed", "canned.approved", "canned.updated"]
        found = await client.get(f"/inbox/casework/{conversation_id}/canned", params={"q": "énergie"})
        assert "Chèque énergie" in found.text


async def test_transfer_asks_the_person_no_keeps_yes_moves(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        other_id, zoe_id = await other_organisation(rt)
        person, conversation_id = await handed_over(client)
        csrf = await logged_in(client)
        form = await client.get(f"/inbox/casework/{conversation_id}/transfer")
        assert form.status_code == 200 and "Ailleurs" in form.text
        assert (await client.post(f"/inbox/casework/{conversation_id}/transfer",
                                  data={"to_organisation": str(other_id)})).status_code == 403
        unknown = await client.post(f"/inbox/casework/{conversation_id}/transfer",
                                    data={"to_organisation": "999", "csrf_token": csrf})
        assert unknown.status_code == 400
        await person.new()

        asked = await client.post(f"/inbox/casework/{conversation_id}/transfer",
                                  data={"to_organisation": str(other_id), "note": "Dossier CAF en cours", "csrf_token": csrf})
        assert asked.status_code == 200 and "Question envoyée" in asked.text
        await rt.drain(timeout=30)
        question = (await person.new())[-1]
        assert "Ailleurs" in question["text"] and "Êtes-vous d'accord ?" in question["text"]
        assert question["choices"] == [["casework_transfer_yes", "✅ Oui"], ["casework_transfer_no", "❌ Non"]]
        again = await client.post(f"/inbox/casework/{conversation_id}/transfer",
                                  data={"to_organisation": str(other_id), "csrf_token": csrf})
        assert again.status_code == 409  # one question at a time

        said = await person.send(choice="casework_transfer_no")
        assert "reste chez nous" in said[-1]["text"] and "Camille" in said[-1]["text"]
        said = await person.send(choice="casework_transfer_yes")  # the old button, once answered
        assert "déjà noté" in said[-1]["text"]
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation.organisation_id != other_id and conversation.status == "assigned"
            types = (await session.execute(select(Event.type).where(Event.conversation_id == conversation_id))).scalars().all()
        assert "transfer_declined" in types
        timeline = unescape((await client.get(f"/inbox/conversations/{conversation_id}/timeline")).text)
        assert "La personne a dit non" in timeline

        # Asked again: a free text is relayed to Camille, the question stays; then « Oui »
        await client.post(f"/inbox/casework/{conversation_id}/transfer",
                          data={"to_organisation": str(other_id), "note": "Dossier CAF en cours", "csrf_token": csrf})
        await rt.drain(timeout=30)
        await person.new()
        assert await person.send("je réfléchis") == []
        said = await person.send(choice="casework_transfer_yes")
        text = "\n".join(m["text"] for m in said)
        assert "Votre demande passe à Ailleurs" in text and "Zoé" in text  # told who answers
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation_id)
            contact = await session.get(Contact, conversation.contact_id)
            audits = (await session.execute(select(AuditEntry.organisation_id, AuditEntry.action).where(
                AuditEntry.action.like("transfer.%")))).all()
            counts = await referral_counts(session, 1, utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1))
        assert conversation.organisation_id == other_id and contact.organisation_id == other_id
        assert conversation.assignee_id == zoe_id and conversation.status == "assigned"
        assert (other_id, "transfer.received") in audits and (1, "transfer.accepted") in audits
        assert counts == {"organisation": 1, "partner": 0, "organisation_asked": 0, "organisation_declined": 1}
        # The first organisation lost access; the other one sees it, with the note
        moved = await client.get(f"/inbox/conversations/{conversation_id}")
        assert moved.status_code == 403  # a page that says where it went, not a bare refusal
        assert "Conversation transférée" in moved.text and "Ailleurs" in unescape(moved.text)
        assert 'href="/inbox"' in moved.text
        assert (await client.get(f"/inbox/conversations/{conversation_id}", headers={"HX-Request": "true"})).status_code == 403
        assert (await client.get(f"/inbox/casework/{conversation_id}/transfer")).status_code == 404
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver") as other:
            await logged_in(other, ZOE)
            page = unescape((await other.get(f"/inbox/conversations/{conversation_id}")).text)
            assert "Conversation reçue de France services Démo" in page and "Dossier CAF en cours" in page


async def test_referral_to_a_partner_of_the_directory(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        await other_organisation(rt)
        today = date.today()
        async with rt.sessionmaker() as session, session.begin():
            session.add(Structure(id="dora--abc", source="dora", nom="Secours Solidaire Rezé", date_maj=today,
                                  commune="Rezé", courriel="accueil@solidaire.example"))
            await session.flush()
            session.add(Service(id="dora--svc1", structure_id="dora--abc", source="dora", nom="Aide alimentaire",
                                description="Colis", date_maj=today, courriel="alim@solidaire.example"))
            session.add(Structure(id="organisation:ailleurs--1", source="organisation:ailleurs",
                                  origin=ORIGIN_ORGANISATION, nom="Secours privé d'Ailleurs", date_maj=today))
        person, conversation_id = await handed_over(client)
        csrf = await logged_in(client)
        async with rt.sessionmaker() as session, session.begin():  # what a flow would have saved
            conversation = await session.get(Conversation, conversation_id)
            conversation.summary = {"answers": {"consent_answer": "oui", "commune": {"label": "Rezé"},
                                                "need": {"label": "Se nourrir"}}}
        form = await client.get(f"/inbox/casework/{conversation_id}/referral")
        assert form.status_code == 200 and "La personne est d'accord" in unescape(form.text)
        assert "- Besoin : Se nourrir\n- Commune : Rezé</textarea>" in unescape(form.text)  # prefilled, no codes
        assert "consent_answer" not in form.text
        found = await client.get(f"/inbox/casework/{conversation_id}/partners", params={"q": "secours"})
        assert "Secours Solidaire Rezé" in found.text and "Aide alimentaire" in found.text
        assert "Ailleurs" not in found.text  # another organisation's own place is not ours
        base = {"partner": "dora--abc::dora--svc1", "summary": "Besoin d'aide alimentaire, 2 enfants.",
                "method": "email", "csrf_token": csrf}
        refused = await client.post(f"/inbox/casework/{conversation_id}/referral", data=base)
        assert refused.status_code == 400 and "d'accord" in unescape(refused.text)
        hidden = await client.post(f"/inbox/casework/{conversation_id}/referral",
                                   data={**base, "agreed": "1", "partner": "organisation:ailleurs--1"})
        assert hidden.status_code == 400
        async with rt.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(Referral))).scalar() == 0
        done = await client.post(f"/inbox/casework/{conversation_id}/referral", data={**base, "agreed": "1"})
        assert done.status_code == 201
        assert "mailto:alim@solidaire.example?subject=" in done.text and "Besoin%20d%27aide%20alimentaire" in done.text
        async with rt.sessionmaker() as session:
            referral = (await session.execute(select(Referral))).scalar()
            counts = await referral_counts(session, 1, utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1))
        assert (referral.kind, referral.structure_id, referral.service_id, referral.method) == \
            ("partner", "dora--abc", "dora--svc1", "email")
        assert counts["partner"] == 1 and counts["organisation"] == 0
        timeline = unescape((await client.get(f"/inbox/conversations/{conversation_id}/timeline")).text)
        assert "📤 Orientation vers Secours Solidaire Rezé — Aide alimentaire (résumé envoyé par e-mail)" in timeline
        # Another organisation: 404, nothing recorded
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://testserver") as other:
            other_csrf = await logged_in(other, ZOE)
            assert (await other.get(f"/inbox/casework/{conversation_id}/referral")).status_code == 404
            assert (await other.get(f"/inbox/casework/{conversation_id}/partners?q=secours")).status_code == 404
            response = await other.post(f"/inbox/casework/{conversation_id}/referral",
                                        data={**base, "agreed": "1", "csrf_token": other_csrf})
            assert response.status_code == 404
        async with rt.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(Referral))).scalar() == 1


async def test_a_transfer_question_lapses_when_the_conversation_closes(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        other_id, _ = await other_organisation(rt)
        person, conversation_id = await handed_over(client)
        csrf = await logged_in(client)
        await client.post(f"/inbox/casework/{conversation_id}/transfer",
                          data={"to_organisation": str(other_id), "csrf_token": csrf})
        await rt.drain(timeout=30)
        closed = await client.post(f"/inbox/conversations/{conversation_id}/close",
                                   data={"outcome": "answered", "detail": "", "csrf_token": csrf})
        assert closed.status_code in (200, 303)
        await rt.drain(timeout=30)
        async with rt.sessionmaker() as session:
            referral = (await session.execute(select(Referral).where(Referral.conversation_id == conversation_id))).scalar_one()
            conversation = await session.get(Conversation, conversation_id)
            lapsed = (await session.execute(select(Event.data).where(
                Event.conversation_id == conversation_id, Event.type == "transfer_withdrawn"))).scalars().all()
            counts = await referral_counts(session, 1, utcnow() - timedelta(hours=1), utcnow() + timedelta(hours=1))
        assert referral.status == "withdrawn" and referral.answered_at is not None
        assert "casework_transfer" not in (conversation.flow_state or {})
        assert len(lapsed) == 1 and "n'est plus proposé" in lapsed[0]["label"]
        assert counts["organisation_asked"] == 0  # no longer counted as waiting for an answer
        # The old « Oui » pressed afterwards moves nothing.
        await person.send(choice="casework_transfer_yes")
        await rt.drain(timeout=30)
        async with rt.sessionmaker() as session:
            assert (await session.get(Conversation, conversation_id)).organisation_id != other_id
            assert (await session.get(Referral, referral.id)).status == "withdrawn"
