"""Sources through the real routes: an admin creates one, gets its links, QR codes (SVG, PNG) and
flyer; a person arrives through the Telegram deep link (/start <code>) and through the web chat
link (?src=<code>); the source is recorded, its team wins in routing, its start flow runs; counts."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import segno
from sqlalchemy import select

from admin.audit import AuditEntry
from kernel.database import utcnow
from conversations.models import Address, Conversation
from handoff.models import Team
from outreach import stats
from outreach.models import ContactSource, Source
from outreach.sources import CODE, codes_in, qr_png, qr_svg
from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram
from tests.outreach.helpers import BOT_USERNAME, SourcePerson, as_admin, create_source, telegram, telegram_settings


@pytest.fixture
def fake_telegram():
    with FakeTelegram() as fake:
        yield fake


async def test_source_links_qr_flyer_and_arrivals(settings_for, fake_telegram):
    async with app_client(telegram_settings(settings_for, fake_telegram)) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        team = await client.post("/admin/teams", data={"name": "Équipe du marché", "csrf_token": csrf})
        team_id = int(team.headers["location"].rsplit("/", 1)[1])
        # Bad input: 400 with the reason, nothing created.
        bad = await client.post("/admin/sources", data={"name": "", "kind": "flyer", "csrf_token": csrf})
        assert bad.status_code == 400 and "Nom" in bad.text
        bad = await client.post("/admin/sources", data={"name": "X", "kind": "satellite", "csrf_token": csrf})
        assert bad.status_code == 400
        bad = await client.post("/admin/sources", data={"name": "X", "start": "nope:nope", "csrf_token": csrf})
        assert bad.status_code == 400
        source_id, code = await create_source(client, csrf, name="Aide alimentaire marché", team_id=str(team_id),
                                              start="places:se-nourrir", line0="Besoin de manger ?")
        assert CODE.match(code)
        page = await client.get(f"/admin/sources/{source_id}")
        telegram_link = f"https://t.me/{BOT_USERNAME}?start={code}"
        webchat_link = f"{rt.settings.public_url}/chat?src={code}"
        assert telegram_link in page.text and webchat_link in page.text
        # QR codes: what segno makes of the expected links, byte for byte.
        svg = await client.get(f"/admin/sources/{source_id}/qr/telegram.svg?download=1")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert "attachment" in svg.headers["content-disposition"]
        assert svg.content == qr_svg(telegram_link, f"Aide alimentaire marché — Telegram")
        png = await client.get(f"/admin/sources/{source_id}/qr/webchat.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.content == qr_png(webchat_link)
        expected = segno.make(webchat_link, error="m", micro=False)
        assert segno.make(webchat_link, error="m", micro=False).matrix == expected.matrix  # deterministic
        buffer = io.BytesIO()
        expected.save(buffer, kind="png", scale=10, border=4)
        assert buffer.getvalue() == png.content
        assert (await client.get(f"/admin/sources/{source_id}/qr/whatsapp.svg")).status_code == 404  # not enabled
        flyer = await client.get(f"/admin/sources/{source_id}/flyer?size=a6")
        assert flyer.status_code == 200 and "Besoin de manger ?" in flyer.text and "Démo" in flyer.text
        assert (await client.get(f"/admin/sources/{source_id}/flyer?size=a3")).status_code == 400

        # Telegram: /start <code> from a new person: the consent first, then the source's start.
        await telegram(client, 7001, f"/start {code}")
        assert any("Êtes-vous d'accord" in t for t in fake_telegram.sent_texts(7001))
        await telegram(client, 7001, callback="oui")
        assert any("Où êtes-vous" in t for t in fake_telegram.sent_texts(7001)), fake_telegram.sent_texts(7001)
        assert not any("Que voulez-vous faire" in t for t in fake_telegram.sent_texts(7001))
        # Handoff: the source's team wins (nobody of that team is online: its queue).
        await telegram(client, 7001, "humain")
        # An unknown code: the normal welcome, nothing recorded.
        await telegram(client, 7002, "/start ZZZZZZZ9")
        assert any("Êtes-vous d'accord" in t for t in fake_telegram.sent_texts(7002))

        # Web chat: the page opened from ?src=<code>.
        person = SourcePerson(client, code)
        await person.send("bonjour")
        stranger = SourcePerson(client, "NOTACODE")
        await stranger.send("bonjour")

        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(ContactSource, Address.channel).join(
                Address, Address.contact_id == ContactSource.contact_id))).all()
            assert sorted(channel for _, channel in rows) == ["telegram", "webchat"]
            assert all(row.first and row.source_id == source_id for row, _ in rows)
            tg = (await session.execute(select(Conversation).join(Address, Address.id == Conversation.address_id)
                                        .where(Address.external_id == "7001"))).scalar_one()
            assert tg.team_id == team_id and tg.status == "waiting"
            assert tg.summary["source"]["team_id"] == team_id
            counted = await stats.contacts_by_source(session, 1, utcnow() - timedelta(hours=1),
                                                     utcnow() + timedelta(hours=1))
            assert sum(row["contacts"] for row in counted) == 2 and {r["channel"] for r in counted} == {"telegram", "webchat"}
            audit = (await session.execute(select(AuditEntry.action).where(
                AuditEntry.target_type == "source"))).scalars().all()
            assert "source.created" in audit
        listing = await client.get("/admin/sources")
        assert "Aide alimentaire marché" in listing.text and "2 personne(s)" in listing.text
        # The statistics dashboard shows the source, its two people as "< 5" (anonymised), in the page and the CSV.
        dashboard = await client.get("/admin/stats")
        section = dashboard.text.split("Personnes venues par une source", 1)[1].split("</section>", 1)[0]
        assert "Aide alimentaire marché" in section and "&lt; 5" in section
        csv_text = (await client.get("/admin/stats.csv")).text
        assert any("Aide alimentaire marché" in line and "< 5" in line for line in csv_text.splitlines())


async def test_a_later_conversation_through_another_source_counts_for_it(settings_for, fake_telegram):
    async with app_client(telegram_settings(settings_for, fake_telegram)) as client:
        rt = client.app.state.rt
        csrf = await as_admin(client)
        first_id, first = await create_source(client, csrf, name="Affiche mairie")
        second_id, second = await create_source(client, csrf, name="Partenaire CCAS", kind="partner")
        await telegram(client, 7101, f"/start {first}")
        await telegram(client, 7101, callback="oui")
        async with rt.sessionmaker() as session, session.begin():  # the conversation closes
            conversation = (await session.execute(select(Conversation))).scalars().first()
            conversation.status, conversation.closed_at = "closed", utcnow()
        await telegram(client, 7101, f"/start {second}")
        assert fake_telegram.sent_texts(7101)[-1].startswith("Que voulez-vous faire")  # consent kept: the menu
        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(ContactSource).order_by(ContactSource.id))).scalars().all()
        assert [(r.source_id, r.first) for r in rows] == [(first_id, True), (second_id, False)]
        assert rows[0].conversation_id != rows[1].conversation_id
        # Editing and deleting a source: audited; another organisation's id is a 404 (access matrix too).
        saved = await client.post(f"/admin/sources/{second_id}", data={"name": "CCAS de Rezé", "kind": "partner",
                                                                      "csrf_token": csrf})
        assert saved.status_code == 303
        assert (await client.post(f"/admin/sources/{second_id}", data={"name": "x", "kind": "partner"})).status_code == 403
        async with rt.sessionmaker() as session:
            assert (await session.get(Source, second_id)).name == "CCAS de Rezé"


def test_codes_in_text():
    assert codes_in("Bonjour ! Je viens de la part de « Flyer » (réf. K7M2QX9P)") == ["K7M2QX9P"]
    assert codes_in("BONJOURS tout le monde") == []  # letters only: a word, not a code
    assert codes_in("x" * 2000) == []
