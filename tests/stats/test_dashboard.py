"""The dashboard through its real routes, over seeded conversations and events whose expected
figures this test computes on its own: counts, "< 5", time to first reply (median, p90), CSV,
a worker's own figures, another organisation's data never counted, refusals."""

from __future__ import annotations

import csv
from html import unescape
import io
import math
import random
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from conversations.models import Address, Contact, Conversation, Event
from followups.models import ANSWERED, Followup
from handoff.models import Organisation, Worker
from stats.registry import Row, register, REGISTRY
from tests.conftest import app_client, csrf_of, login
from tests.followups.helpers import ADMIN_EMAIL, PASSWORD, WORKER_EMAIL

NOV = datetime(2026, 11, 10, 9, 0, tzinfo=timezone.utc)
RANGE = "start=2026-11-01&end=2026-11-30"


async def seed(rt) -> dict:
    """Conversations of the demo organisation (and of another one) with their events; returns the
    expected figures, computed here from what is seeded."""
    rng = random.Random(12)
    expected = {"telegram": 0, "whatsapp": 0, "replies": [], "asked": 0, "mine_asked": 0, "oriented": 0,
                "answered": 0, "estimates": 0, "monthly": 0.0, "need_se_nourrir": 0, "need_se_loger": 0}
    async with rt.sessionmaker() as session, session.begin():
        org = (await session.execute(select(Organisation).where(Organisation.slug == rt.settings.default_organisation))).scalar_one()
        camille = (await session.execute(select(Worker).where(Worker.email == WORKER_EMAIL))).scalar_one()
        sam = (await session.execute(select(Worker).where(Worker.email == ADMIN_EMAIL))).scalar_one()
        other = Organisation(slug="autre", name="Autre structure", whatsapp_templates={})
        session.add(other)
        await session.flush()

        async def conversation(organisation_id, channel, at, assignee=None):
            contact = Contact(organisation_id=organisation_id, created_at=at)
            session.add(contact)
            await session.flush()
            address = Address(contact_id=contact.id, channel=channel, external_id=f"{channel}-{contact.id}")
            session.add(address)
            await session.flush()
            row = Conversation(organisation_id=organisation_id, contact_id=contact.id, address_id=address.id,
                               status="closed", assignee_id=assignee, flow_state={}, summary={}, created_at=at,
                               updated_at=at)
            session.add(row)
            await session.flush()
            return row

        def event(conversation_id, type_, at, **data):
            session.add(Event(conversation_id=conversation_id, type=type_, data=data, created_at=at))

        for i in range(13):
            channel = "telegram" if i < 9 else "whatsapp"
            at = NOV + timedelta(days=i, minutes=rng.randint(0, 300))
            assignee = camille.id if i % 2 == 0 else sam.id
            c = await conversation(org.id, channel, at, assignee)
            expected[channel] += 1
            event(c.id, "handoff_requested", at + timedelta(minutes=1), reason="command" if i < 7 else "stuck")
            if i < 6:
                event(c.id, "distress_noticed", at, kind="street")
            elif i < 8:
                event(c.id, "distress_noticed", at, kind="suicide")
            expected["asked"] += 1
            expected["mine_asked"] += assignee == camille.id
            if i < 11:  # two requests never answered
                minutes = rng.randint(1, 240)
                event(c.id, "worker_replied", at + timedelta(minutes=1 + minutes), message_id=1)
                event(c.id, "worker_replied", at + timedelta(minutes=2 + minutes), message_id=2)  # not the first
                expected["replies"].append(float(minutes))
            if i < 7:
                event(c.id, "conversation_closed", at + timedelta(hours=5),
                      outcome="Orientée vers une structure — CAF de Paris, Mme Durand")
                expected["oriented"] += 1
            elif i < 9:
                event(c.id, "conversation_closed", at + timedelta(hours=5), outcome="Question répondue")
                expected["answered"] += 1
            elif i == 9:  # the person wrote « stop »: the app closed it, with its own code
                event(c.id, "conversation_closed", at + timedelta(hours=5), outcome="stopped by the person")
            need = "se-nourrir" if i < 8 else "se-loger"
            event(c.id, "answer_saved", at, key="need", value=need)
            expected["need_" + need.replace("-", "_")] += 1
            if i < 6:
                total = 100.0 + 37.5 * i
                event(c.id, "answer_saved", at, key="rights_result",
                      value={"summary_key": "rights", "ok": True, "found": True, "monthly_total": total})
                expected["estimates"] += 1
                expected["monthly"] += total
            if i < 3:
                session.add(Followup(organisation_id=org.id, conversation_id=c.id, contact_id=c.contact_id,
                                     worker_id=camille.id, outcome="oriented", days=7, due_at=at, status=ANSWERED,
                                     answer="yes", agreed_at=at, sent_at=at, answered_at=at, created_at=at))
        # Outside the range (October), and another organisation's (November): never counted.
        old = await conversation(org.id, "webchat", NOV - timedelta(days=40), camille.id)
        event(old.id, "handoff_requested", NOV - timedelta(days=40), reason="command")
        for _ in range(6):
            c = await conversation(other.id, "webchat", NOV)
            event(c.id, "handoff_requested", NOV, reason="command")
            event(c.id, "worker_replied", NOV + timedelta(minutes=1))
            event(c.id, "conversation_closed", NOV, outcome="Question répondue")
        expected["camille_id"] = camille.id
    return expected


def shown(n: int) -> str:
    return "< 5" if n < 5 else str(n)


def minutes_text(value: float) -> str:
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h".replace(".", ",")


def cell(html: str, label: str) -> str:
    """The value cell of a table row by its label."""
    html = unescape(html)
    marker = f'<th scope="row">{label}</th><td data-value>'
    assert marker in html, label
    return html.split(marker, 1)[1].split("</td>", 1)[0]


async def test_dashboard_figures_csv_and_refusals(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        expected = await seed(rt)
        replies = sorted(expected["replies"])
        median = (replies[len(replies) // 2] if len(replies) % 2 else
                  (replies[len(replies) // 2 - 1] + replies[len(replies) // 2]) / 2)
        p90 = replies[math.ceil(0.9 * len(replies)) - 1]

        assert (await client.get(f"/admin/stats?{RANGE}")).status_code in (303, 401)  # anonymous
        await login(client, ADMIN_EMAIL, PASSWORD)
        page = await client.get(f"/admin/stats?{RANGE}")
        assert page.status_code == 200
        html = page.text
        assert 'aria-current="page">📊 Statistiques' in html
        assert cell(html, "Telegram") == shown(expected["telegram"]) == "9"
        assert cell(html, "WhatsApp") == "< 5"
        assert "Discussion sur le site" not in html  # October's and the other organisation's
        assert cell(html, "Demandes d'une personne") == str(expected["asked"])
        assert cell(html, "Avec une réponse") == str(len(replies))
        assert cell(html, "Médiane") == minutes_text(median)
        assert cell(html, "Demandes : A écrit « humain »") == "7"
        assert cell(html, "Demandes : A demandé une personne au milieu d'un parcours") == "6"
        assert "autre raison" not in html
        assert cell(html, "À la rue, sans abri") == "6" and cell(html, "Idées suicidaires") == "< 5"
        assert cell(html, "9 demandes sur 10 en moins de") == minutes_text(p90)
        assert cell(html, "Orientée vers une structure") == str(expected["oriented"])
        assert cell(html, "Question répondue") == "< 5"
        assert cell(html, "La personne a écrit « stop »") == "< 5" and "stopped by the person" not in html
        assert "CAF de Paris" not in html and "Durand" not in html  # never the free-text detail
        assert cell(html, "Estimations faites") == str(expected["estimates"])
        total = f"{expected['monthly']:,.0f} €".replace(",", "\u202f")
        assert cell(html, "Total mensuel estimé (toutes personnes)") == total
        assert cell(html, "Se nourrir") == str(expected["need_se_nourrir"])
        assert cell(html, "Se loger") == shown(expected["need_se_loger"])
        assert cell(html, "Réponse : ✅ Oui, ça a marché") == "< 5"
        # The SVG charts: no bar for a suppressed cell, which reads "< 5" too.
        chart = html.split('data-chart="contacts_by_channel"', 1)[1].split("</svg>", 1)[0]
        assert chart.count("<rect") == 1 and "&lt; 5" in chart

        export = await client.get(f"/admin/stats.csv?{RANGE}")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff")), delimiter=";"))
        by = {(r[0], r[1]): r[2] for r in rows[1:]}
        assert by[("Personnes par canal", "Telegram")] == "9" and by[("Personnes par canal", "WhatsApp")] == "< 5"
        assert by[("Temps avant la première réponse d'une personne", "Médiane")] == minutes_text(median)
        assert all(not value.isdigit() or int(value) >= 5 for value in by.values())

        # Bad ranges: 400 with a French reason, never a 5xx.
        for query in ("start=2026-13-01", "start=2026-11-30&end=2026-11-01", "start=2000-01-01&end=2026-01-01",
                      "start=%00", "end=" + "9" * 500):
            response = await client.get(f"/admin/stats?{query}")
            assert response.status_code == 400, query
            assert "Dates" in response.text

        # A worker: not the organisation's page, but their own figures.
        await client.post("/inbox/logout", data={"csrf_token": csrf_of((await client.get("/inbox")).text)})
        await login(client, WORKER_EMAIL, PASSWORD)
        assert (await client.get(f"/admin/stats?{RANGE}")).status_code == 403
        mine = await client.get(f"/inbox/stats?{RANGE}")
        assert mine.status_code == 200
        assert cell(mine.text, "Demandes d'une personne") == shown(expected["mine_asked"])
        assert (await client.get(f"/inbox/stats.csv?{RANGE}")).status_code == 200

        # Another room adds its counter with one call: it shows, in its place, with "< 5" applied.
        async def by_source(q):
            return [Row("Flyer du marché", 12), Row("Partenaire", 2)]

        register("contacts_by_source", "Personnes par source", by_source, order=15)
        try:
            html = (await client.get(f"/inbox/stats?{RANGE}")).text
            assert cell(html, "Flyer du marché") == "12" and cell(html, "Partenaire") == "< 5"
            assert html.index("Personnes par canal") < html.index("Personnes par source") < html.index("Besoins demandés")
        finally:
            REGISTRY.counters.pop("contacts_by_source")

