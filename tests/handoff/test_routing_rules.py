"""The routing rules, one situation per row: real rows in the database, through
`handoff.transitions.request_handoff`, on SQLite and on PostgreSQL (+ Redis).

Each row builds its own organisation (teams, territories, workers, the person and their answers),
hands the person over at a given moment, and checks who answers (a worker, a team's queue, the
organisation's queue), the rule routing reports, and what the person is told.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from conversations.models import ASSIGNED, CLOSED, WAITING, Address, Contact, Conversation, Event, Message
from conversations.store import Pending, load_thread
from handoff.models import Organisation, Team, Territory, Worker
from handoff.transitions import request_handoff
from tests.conftest import app_client

UTC = timezone.utc
TUESDAY_10H = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 1 December 2026, 10:00 Paris
TUESDAY_20H = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 20:00 Paris
BASTILLE_DAY_10H = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)  # Tuesday 14 July, 10:00 Paris
CHRISTMAS_10H = datetime(2026, 12, 25, 9, 0, tzinfo=UTC)  # Friday 25 December, 10:00 Paris
WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
NANTES, LA_ROCHE = "44109", "85191"


@dataclass
class W:
    """A worker of the row (team by name; `load`: open conversations already assigned)."""

    name: str
    team: str | None = "Nord"
    languages: list = field(default_factory=lambda: ["fr"])
    topics: list = field(default_factory=list)
    capacity: int = 10
    online: bool = True
    seen_ago: timedelta | None = timedelta(seconds=30)
    schedule: dict = field(default_factory=dict)
    load: int = 0


@dataclass
class T:
    name: str
    territories: list = field(default_factory=list)  # [(kind, code)]
    hours: dict = field(default_factory=dict)
    closed_on_holidays: bool = True
    out_of_hours_message: str = ""


@dataclass
class Row:
    id: str
    teams: list[T]
    workers: list[W]
    expected: str  # a worker's name, "team:<name>" or "organisation"
    rule: str
    answers: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    locale: str = "fr"
    now: datetime = TUESDAY_10H
    presence_seconds: float = 0
    previous: str | None = None  # the worker of the person's previous (closed) conversation
    says: tuple[str, ...] = ()  # fragments of what the person is told


def commune(code: str, **extra) -> dict:
    return {"value": f"insee:{code}", "label": code, "insee": code, "name": code, **extra}


NORD_SUD = [T("Nord", [("commune", NANTES)]), T("Sud", [("departement", "85")])]

ROWS = [
    # -- territory ---------------------------------------------------------------------------------
    Row("territory: the commune's team answers", NORD_SUD, [W("Bea", "Sud"), W("Ana", "Nord")], "Ana",
        "territory", answers={"commune": commune(NANTES)}),
    Row("territory: a département's team covers its communes", NORD_SUD, [W("Ana", "Nord"), W("Bea", "Sud")],
        "Bea", "territory", answers={"commune": commune(LA_ROCHE)}),
    Row("territory: a commune wins over its département",
        [T("Département", [("departement", "44")]), T("Ville", [("commune", NANTES)])],
        [W("Dan", "Département"), W("Vic", "Ville", load=3)], "Vic", "territory", answers={"place": commune(NANTES)}),
    Row("territory: an arrondissement is in its city's territory", [T("Paris", [("commune", "75056")]), T("Autre")],
        [W("Ana", "Autre"), W("Pia", "Paris", load=3)], "Pia", "territory", answers={"place": commune("75111")}),
    Row("territory: a shared position (located by the engine)", NORD_SUD, [W("Bea", "Sud"), W("Ana", "Nord")],
        "Ana", "territory",
        answers={"place": commune(NANTES, latitude=47.21, longitude=-1.55, from_position=True)}),
    Row("territory: the commune of the places shown", NORD_SUD, [W("Bea", "Sud"), W("Ana", "Nord")], "Ana",
        "territory", summary={"places": {"summary_key": "places", "commune": {"insee": NANTES}}}),
    Row("territory: nobody covers the person: the least busy of the organisation", NORD_SUD,
        [W("Ana", "Nord", load=2), W("Bea", "Sud", load=1)], "Bea", "organisation",
        answers={"commune": commune("75056")}),
    # -- language, topic, capacity ---------------------------------------------------------------
    Row("language: a worker who speaks the person's", NORD_SUD, [W("Ana"), W("Eve", languages=["fr", "en"], load=4)],
        "Eve", "territory", answers={"commune": commune(NANTES)}, locale="en"),
    Row("topic: a worker who covers it (case and accents aside)", NORD_SUD,
        [W("Ana", topics=["santé"]), W("Bea", topics=["Logement"], load=4)], "Bea", "territory",
        answers={"commune": commune(NANTES), "topic": "logement"}),
    Row("topic: a worker without topics covers all", NORD_SUD,
        [W("Ana", topics=["santé"]), W("Cleo", load=4)], "Cleo", "territory",
        answers={"commune": commune(NANTES), "topic": "logement"}),
    Row("topic: the places need counts as the topic", NORD_SUD,
        [W("Ana", topics=["emploi"]), W("Bea", topics=["hébergement"], load=4)], "Bea", "territory",
        answers={"commune": commune(NANTES), "need": "dormir-ce-soir"}),
    Row("capacity: a full worker is skipped", NORD_SUD, [W("Ana", capacity=1, load=1), W("Bea", "Nord", load=3)],
        "Bea", "territory", answers={"commune": commune(NANTES)}),
    # -- hours, holidays, presence ---------------------------------------------------------------
    Row("hours: a worker outside their own schedule is skipped", [T("Nord", [("commune", NANTES)], WEEKDAYS)],
        [W("Ana", schedule={"mon": [["09:00", "12:00"]]}), W("Bea", load=5)], "Bea", "territory",
        answers={"commune": commune(NANTES)}),
    Row("hours: out of the team's hours, the team queue and its next opening",
        [T("Nord", [("commune", NANTES)], WEEKDAYS)], [W("Ana")], "team:Nord", "team_queue",
        answers={"commune": commune(NANTES)}, now=TUESDAY_20H,
        says=("bien transmis à l'équipe Nord", "fermée en ce moment", "dès demain à 9 h")),
    Row("hours: a worker's own schedule may answer when the team is closed",
        [T("Nord", [("commune", NANTES)], WEEKDAYS)], [W("Ana", schedule={"tue": [["18:00", "22:00"]]})], "Ana",
        "territory", answers={"commune": commune(NANTES)}, now=TUESDAY_20H),
    Row("holidays: 14 July closes the team (next opening: the day after)",
        [T("Nord", [("commune", NANTES)], WEEKDAYS)], [W("Ana")], "team:Nord", "team_queue",
        answers={"commune": commune(NANTES)}, now=BASTILLE_DAY_10H, says=("dès demain à 9 h",)),
    Row("holidays: 25 December closes the team (next opening: Monday)",
        [T("Nord", [("commune", NANTES)], WEEKDAYS, out_of_hours_message="🎄 Nous sommes fermés pour Noël.")],
        [W("Ana")], "team:Nord", "team_queue", answers={"commune": commune(NANTES)}, now=CHRISTMAS_10H,
        says=("🎄 Nous sommes fermés pour Noël.", "dès lundi à 9 h")),
    Row("holidays: a team open on holidays answers",
        [T("Nord", [("commune", NANTES)], WEEKDAYS, closed_on_holidays=False)], [W("Ana")], "Ana", "territory",
        answers={"commune": commune(NANTES)}, now=CHRISTMAS_10H),
    Row("holidays: out of hours, an urgent need gets the emergency numbers",
        [T("Nord", [("commune", NANTES)], WEEKDAYS)], [W("Ana")], "team:Nord", "team_queue",
        answers={"commune": commune(NANTES), "need": "dormir-ce-soir"}, now=CHRISTMAS_10H,
        says=("En cas d'urgence", "115 — hébergement d'urgence")),
    Row("presence: online but not seen recently is not present", NORD_SUD,
        [W("Ana", seen_ago=timedelta(hours=1)), W("Bea", load=5), W("Cleo", online=False, seen_ago=timedelta(0))],
        "Bea", "territory", answers={"commune": commune(NANTES)}, presence_seconds=600),
    Row("presence: offline workers never answer", NORD_SUD, [W("Ana", online=False), W("Bea", load=5)], "Bea",
        "territory", answers={"commune": commune(NANTES)}),
    # -- fallback ----------------------------------------------------------------------------------
    Row("fallback: nobody of the covering team: its queue, not another team's worker", NORD_SUD,
        [W("Ana", online=False), W("Bea", "Sud")], "team:Nord", "team_queue", answers={"commune": commune(NANTES)},
        says=("bien arrivé à l'équipe Nord", "Personne n'est disponible")),
    Row("fallback: nobody covers, nobody available: the organisation queue", NORD_SUD,
        [W("Ana", online=False), W("Bea", "Sud", capacity=1, load=1)], "organisation", "organisation_queue",
        says=("bien arrivé à l'équipe de Org",)),
    # -- continuity --------------------------------------------------------------------------------
    Row("continuity: the previous worker answers again", NORD_SUD, [W("Ana"), W("Bea", "Sud", load=4)], "Bea",
        "continuity", answers={"commune": commune(NANTES)}, previous="Bea",
        says=("Bea vous répond, comme la dernière fois",)),
    Row("continuity: a previous worker who is away gives way to the rules", NORD_SUD,
        [W("Ana"), W("Bea", "Sud", online=False)], "Ana", "territory", answers={"commune": commune(NANTES)},
        previous="Bea", says=("Ana, médiatrice", "va s'occuper de votre demande")),
]

_serial = itertools.count(1)


async def person(session, organisation_id: int, *, answers=None, summary=None, locale="fr", status="bot",
                 assignee_id=None) -> Conversation:
    number = next(_serial)
    contact = Contact(organisation_id=organisation_id, locale=locale, consent=True)
    session.add(contact)
    await session.flush()
    address = Address(contact_id=contact.id, channel="webchat", external_id=f"routing-{number}")
    session.add(address)
    await session.flush()
    conversation = Conversation(organisation_id=organisation_id, contact_id=contact.id, address_id=address.id,
                                status=status, assignee_id=assignee_id,
                                summary={**(summary or {}), "answers": answers or {}},
                                flow_state={"answers": answers or {}})
    session.add(conversation)
    await session.flush()
    return conversation


async def build(rt, row: Row, index: int) -> tuple[int, dict[str, Worker], dict[str, Team]]:
    async with rt.sessionmaker() as session, session.begin():
        organisation = Organisation(slug=f"routing-{index}-{next(_serial)}", name="Org")
        session.add(organisation)
        await session.flush()
        teams = {}
        for spec in row.teams:
            team = Team(organisation_id=organisation.id, name=spec.name, opening_hours=spec.hours,
                        closed_on_holidays=spec.closed_on_holidays, out_of_hours_message=spec.out_of_hours_message)
            session.add(team)
            await session.flush()
            teams[spec.name] = team
            for kind, code in spec.territories:
                session.add(Territory(team_id=team.id, kind=kind, code=code))
        workers = {}
        for spec in row.workers:
            worker = Worker(organisation_id=organisation.id, team_id=teams[spec.team].id if spec.team else None,
                            email=f"{spec.name.lower()}-{next(_serial)}@routing.test", password_hash="x",
                            first_name=spec.name, job_title="médiatrice", languages=spec.languages,
                            topics=spec.topics, capacity=spec.capacity, is_online=spec.online, schedule=spec.schedule,
                            last_seen_at=row.now - spec.seen_ago if spec.seen_ago is not None else None)
            session.add(worker)
            await session.flush()
            workers[spec.name] = worker
            for _ in range(spec.load):
                await person(session, organisation.id, status=ASSIGNED, assignee_id=worker.id)
        conversation = await person(session, organisation.id, answers=row.answers, summary=row.summary,
                                    locale=row.locale)
        if row.previous:
            earlier = await person(session, organisation.id, status=CLOSED, assignee_id=workers[row.previous].id)
            earlier.contact_id, earlier.address_id = conversation.contact_id, conversation.address_id
            earlier.updated_at = row.now - timedelta(days=3)
    return conversation.id, workers, teams


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_routing_rule(settings_for, row):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        conversation_id, workers, teams = await build(rt, row, 0)
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            await request_handoff(session, thread, "talk", Pending.empty(), now=row.now,
                                  presence_seconds=row.presence_seconds)
        async with rt.sessionmaker() as session:
            conversation = await session.get(Conversation, conversation_id)
            told = (await session.execute(select(Message.text).where(
                Message.conversation_id == conversation_id).order_by(Message.id))).scalars().all()
        rule = await rule_of(rt.sessionmaker, conversation_id)
    names = {worker.id: name for name, worker in workers.items()}
    if conversation.status == ASSIGNED:
        got = names[conversation.assignee_id]
    elif conversation.status == WAITING and conversation.team_id:
        got = "team:" + next(name for name, team in teams.items() if team.id == conversation.team_id)
    elif conversation.status == WAITING:
        got = "organisation"
    else:
        got = conversation.status
    assert (got, rule) == (row.expected, row.rule)
    assert len(told) == 1  # one message: arrived, who or when
    for fragment in row.says:
        assert fragment in told[0]


async def rule_of(sessionmaker, conversation_id: int) -> str | None:
    async with sessionmaker() as session:
        rows = (await session.execute(select(Event.type, Event.data).where(
            Event.conversation_id == conversation_id, Event.type.in_(("conversation_assigned", "conversation_queued"))
        ))).all()
    return rows[-1][1].get("rule") if rows else None


# -- end to end, through the web chat's HTTP API --------------------------------------------------
async def places_then_talk(client, postcode: str) -> list[dict]:
    """A person looks for housing help near `postcode`, then asks for a person."""
    from tests.conversations.test_commands import consented

    person = await consented(client)
    await person.send(choice="lieux")
    await person.send(choice="se-loger")
    await person.send(postcode)
    return await person.send(choice="parler")


async def test_web_chat_a_covered_commune_gets_its_team_and_out_of_hours_the_next_opening(settings_for):
    from handoff.hours import DAY_NAMES, DAYS, PARIS

    after_tomorrow = DAYS[(datetime.now(PARIS).date() + timedelta(days=2)).weekday()]
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        async with rt.sessionmaker() as session, session.begin():
            demo = (await session.execute(select(Organisation).where(Organisation.slug == "demo"))).scalar_one()
            reze = Team(organisation_id=demo.id, name="Rezé")
            estuaire = Team(organisation_id=demo.id, name="Estuaire", closed_on_holidays=False,
                            opening_hours={after_tomorrow: [["09:00", "12:00"]]})
            session.add_all([reze, estuaire])
            await session.flush()
            session.add_all([Territory(team_id=reze.id, kind="commune", code="44143"),
                             Territory(team_id=estuaire.id, kind="commune", code="44184")])
            for name, team in (("Noa", reze), ("Zia", estuaire)):
                session.add(Worker(organisation_id=demo.id, team_id=team.id, email=f"{name.lower()}@demo.fr",
                                   password_hash="x", first_name=name, job_title="médiatrice", is_online=True,
                                   structure="CCAS"))
        # Rezé (44400): Noa of the Rezé team answers, not Camille (online, but another team).
        told = await places_then_talk(client, "44400")
        assert "📨 Votre message est bien arrivé." in told[-1]["text"]
        assert "🙋 Noa, médiatrice à CCAS, va s'occuper de votre demande." in told[-1]["text"]
        # Saint-Nazaire (44600): the Estuaire team is closed until the day after tomorrow, 9 h.
        told = await places_then_talk(client, "44600")
        text = told[-1]["text"]
        assert text.startswith("📨 Votre message est bien transmis à l'équipe Estuaire.")
        assert "🌙 L'équipe est fermée en ce moment." in text
        assert f"dès {DAY_NAMES[after_tomorrow]} à 9 h" in text
        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(Conversation.status, Conversation.team_id, Worker.first_name)
                                          .join(Worker, Worker.id == Conversation.assignee_id, isouter=True)
                                          .order_by(Conversation.id))).all()
        assert [tuple(r) for r in rows] == [("assigned", reze.id, "Noa"), ("waiting", estuaire.id, None)]


async def test_an_open_inbox_keeps_its_worker_present(settings_for):
    """The inbox's stream records `last_seen_at` (what presence reads) while it is open."""
    from handoff.inbox import seen_while_streaming

    async def keepalives():
        for _ in range(3):
            yield ": keepalive\n\n"

    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        row = Row("", NORD_SUD, [W("Ana", seen_ago=None)], "Ana", "territory", answers={"commune": commune(NANTES)},
                  now=datetime.now(UTC), presence_seconds=600)
        conversation_id, workers, _ = await build(rt, row, 0)
        chunks = [chunk async for chunk in seen_while_streaming(rt, workers["Ana"].id, keepalives())]
        assert len(chunks) == 3
        async with rt.sessionmaker() as session, session.begin():
            thread = await load_thread(session, conversation_id)
            assert await request_handoff(session, thread, "talk", Pending.empty(), presence_seconds=600) is not None
