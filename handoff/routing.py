"""Who answers: `route` (continuity, territory, language, topic, capacity, hours, presence, then the
team queue, then the organisation queue); `pick_worker` is the least busy available worker (transfers)."""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, inspect, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.database import utcnow
from conversations.models import ASSIGNED, Contact, Conversation
from conversations.store import transaction_memo
from directory.communes import city_of_arrondissement
from handoff.hours import is_open
from handoff.models import Organisation, Team, Territory, Worker


async def open_load(session: AsyncSession, worker_ids: list[int]) -> dict[int, int]:
    """Open conversations per worker: what the database holds, plus what this transaction changed
    and has not written yet (a batch of the intake hands several people over in one transaction)."""
    return (await _load_and_previous(session, worker_ids, None))[0]


async def _load_and_previous(session: AsyncSession, worker_ids: list[int],
                             conversation: Conversation | None) -> tuple[dict[int, int], int | None]:
    """open_load, and (for `conversation`) who answered this person last time (their latest earlier
    conversation with a worker): one round trip for both, a handoff's two questions."""
    if not worker_ids:
        return {}, (await previous_worker_id(session, conversation) if conversation is not None else None)
    counts = (select(Conversation.assignee_id.label("worker_id"), func.count().label("open"))
              .where(Conversation.assignee_id.in_(worker_ids), Conversation.status == ASSIGNED)
              .group_by(Conversation.assignee_id))
    if conversation is None:
        rows = (await session.execute(counts)).all()
        previous = None
    else:
        asked = select(_previous_of(conversation).scalar_subquery().label("previous")).subquery()
        loads = counts.subquery()
        rows = [(worker_id, n, previous) for previous, worker_id, n in (await session.execute(
            select(asked.c.previous, loads.c.worker_id, loads.c.open)
            .select_from(asked.outerjoin(loads, true())))).all()]
        previous = rows[0][2] if rows else None
        rows = [(worker_id, n) for worker_id, n, _ in rows if worker_id is not None]
    load = Counter(dict(rows))
    load.update(_unwritten_load(session))
    return {worker_id: load[worker_id] for worker_id in worker_ids}, previous


def _unwritten_load(session: AsyncSession) -> Counter:
    """+1 / -1 per worker for conversations assigned / unassigned in this session, not flushed yet."""
    delta: Counter = Counter()
    for obj in (*session.new, *session.dirty):
        if not isinstance(obj, Conversation):
            continue
        state = inspect(obj)
        before = (_written(state, "status"), _written(state, "assignee_id"))
        after = (obj.status, obj.assignee_id)
        if before == after:
            continue
        if before[0] == ASSIGNED and before[1] is not None:
            delta[before[1]] -= 1
        if after[0] == ASSIGNED and after[1] is not None:
            delta[after[1]] += 1
    return delta


def _written(state, key: str):
    """The value as the database holds it (None for a row not written yet)."""
    if state.pending or state.transient:
        return None
    history = state.attrs[key].history
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else getattr(state.obj(), key)


async def pick_worker(session: AsyncSession, organisation_id: int, exclude: int | None = None) -> Worker | None:
    """The available (online, active) worker with the fewest open conversations, under capacity."""
    workers = [w for w in await available_workers(session, organisation_id) if w.id != exclude]
    load = await open_load(session, [w.id for w in workers])
    candidates = [w for w in workers if load.get(w.id, 0) < w.capacity]
    if not candidates:
        return None
    return min(candidates, key=lambda w: (load.get(w.id, 0), w.id))


async def queue_team(session: AsyncSession, organisation_id: int) -> Team | None:
    memo = transaction_memo(session)
    key = ("queue_team", organisation_id)
    if key not in memo:
        memo[key] = (await session.execute(
            select(Team).where(Team.organisation_id == organisation_id).order_by(Team.id).limit(1))).scalar()
    return memo[key]


# -- who answers (v2) -----------------------------------------------------------------------------
# Topics the flows save (talk's topic, the places need, the rights flow) -> the words a worker may
# list in their topics (compared without case or accents). A worker with no topics covers all.
TOPIC_WORDS = {
    "argent": {"argent", "aides", "droits", "budget", "dettes"},
    "logement": {"logement", "hebergement"},
    "se-loger": {"logement"},
    "dormir-ce-soir": {"hebergement", "logement", "urgence"},
    "sante": {"sante", "soins"},
    "papiers": {"papiers", "demarches", "droits"},
    "demarches-et-droits": {"papiers", "demarches", "droits"},
    "se-nourrir": {"alimentation", "manger"},
    "se-laver": {"hygiene", "douches", "urgence"},
    "s-equiper": {"vetements", "equipement"},
    "numerique": {"numerique"},
    "emploi": {"emploi", "formation"},
    "famille": {"famille", "enfants"},
    "violences": {"violences", "urgence"},
    "rights": {"droits", "aides", "argent"},
}
NO_TOPIC = {"", "passer", "autre"}


def plain(word: str) -> str:
    word = unicodedata.normalize("NFKD", str(word).casefold()).encode("ascii", "ignore").decode("ascii")
    return word.strip()


def departement_of(insee: str) -> str:
    """The département of an INSEE commune code ("44109" -> "44", "97411" -> "974", "2A004" -> "2A")."""
    return insee[:3] if insee.startswith("97") else insee[:2]


@dataclass(frozen=True)
class Need:
    """What routing knows of the person, read from the conversation (answers and summary)."""

    commune: str | None = None  # INSEE code
    departement: str | None = None
    language: str = "fr"
    topics: frozenset[str] = frozenset()
    need: str | None = None  # the places need, if any (emergency numbers)
    urgent: bool = False


def need_of(conversation: Conversation, contact: Contact | None) -> Need:
    """The commune from the answers (rights' commune, places' place, a shared position located by the
    engine), else from the places summary; the language of the contact; the topic(s)."""
    summary = conversation.summary or {}
    answers = {**(summary.get("answers") or {}), **((conversation.flow_state or {}).get("answers") or {})}
    commune = None
    for key in ("commune", "place"):
        value = answers.get(key)
        if isinstance(value, dict) and value.get("insee"):
            commune = str(value["insee"])
            break
    places = summary.get("places") or answers.get("places_result") or {}
    if commune is None and isinstance(places, dict) and isinstance(places.get("commune"), dict):
        commune = places["commune"].get("insee")
    need = answers.get("need") if isinstance(answers.get("need"), str) else None
    if need is None and isinstance(places, dict):
        need = places.get("need")
    topics: set[str] = set()
    for value in (answers.get("topic"), need):
        if isinstance(value, str) and plain(value) not in NO_TOPIC:
            topics |= {plain(value)} | TOPIC_WORDS.get(plain(value), set())
    if "rights" in summary or "rights_result" in answers:
        topics |= TOPIC_WORDS["rights"]
    from directory.emergency import is_emergency

    language = plain((contact.locale if contact is not None else None) or "fr")[:2] or "fr"
    return Need(commune=commune, departement=departement_of(commune) if commune else None, language=language,
                topics=frozenset(topics), need=need, urgent=bool(need) and is_emergency(need=need))


def source_team_id(conversation: Conversation) -> int | None:
    """The team of the source the person came through (a partner's QR code or link: outreach/),
    recorded on the conversation when the code arrived; it wins over the territory."""
    recorded = (conversation.summary or {}).get("source")
    team_id = recorded.get("team_id") if isinstance(recorded, dict) else None
    return team_id if isinstance(team_id, int) else None


@dataclass
class TeamMap:
    """One organisation as routing sees it (loaded once per transaction)."""

    teams: dict[int, Team]
    communes: dict[str, list[int]]  # INSEE code -> team ids (by id)
    departements: dict[str, list[int]]
    organisation: Organisation | None = None  # its row (a queued person is told its name and hours)

    def covering(self, need: Need) -> Team | None:
        city = city_of_arrondissement(need.commune) if need.commune else None
        for ids in (self.communes.get(need.commune or ""), self.communes.get(city or ""),
                    self.departements.get(need.departement or "")):
            if ids:
                return self.teams[min(ids)]
        return None

    def default_team(self) -> Team | None:
        return self.teams[min(self.teams)] if self.teams else None


async def organisation_map(session: AsyncSession, organisation_id: int) -> TeamMap:
    memo = transaction_memo(session)
    key = ("routing_teams", organisation_id)
    if key not in memo:
        rows = (await session.execute(  # the organisation's row in the same round trip
            select(Organisation, Team, Territory)
            .outerjoin(Team, Team.organisation_id == Organisation.id)
            .outerjoin(Territory, Territory.team_id == Team.id)
            .where(Organisation.id == organisation_id).order_by(Team.id))).all()
        teams, communes, departements = {}, {}, {}
        for _, team, territory in rows:
            if team is None:
                continue
            teams[team.id] = team
            if territory is not None:
                target = departements if territory.kind == "departement" else communes
                target.setdefault(territory.code.strip().upper() if territory.kind == "departement"
                                  else territory.code.strip(), []).append(team.id)
        memo[key] = TeamMap(teams, communes, departements, rows[0][0] if rows else None)
    return memo[key]


@dataclass
class Route:
    """Where a handoff goes: a worker (and why), else a team's queue, else the organisation's."""

    rule: str  # "continuity" | "territory" | "organisation" | "team_queue" | "organisation_queue"
    worker: Worker | None = None
    team: Team | None = None  # the team it goes with (covering team, or the worker's)
    hours_team: Team | None = None  # whose hours the person is told (queues)


class Rules:
    """The checks on one worker at one moment (hours, presence, language, topic)."""

    def __init__(self, org: TeamMap, now: datetime, presence_seconds: float):
        self.org, self.now = org, now
        self.seen_after = now - timedelta(seconds=presence_seconds) if presence_seconds > 0 else None

    def present(self, worker: Worker) -> bool:
        if not (worker.is_active and worker.is_online):
            return False
        return self.seen_after is None or (worker.last_seen_at is not None and worker.last_seen_at >= self.seen_after)

    def within_hours(self, worker: Worker) -> bool:
        team = self.org.teams.get(worker.team_id) if worker.team_id else None
        closed_on_holidays = team.closed_on_holidays if team is not None else True
        if worker.schedule:
            return is_open(worker.schedule, self.now, closed_on_holidays)
        return team is None or is_open(team.opening_hours, self.now, team.closed_on_holidays)

    @staticmethod
    def speaks(worker: Worker, need: Need) -> bool:
        languages = {plain(code)[:2] for code in (worker.languages or [])}
        return not languages or need.language in languages

    @staticmethod
    def covers(worker: Worker, need: Need) -> bool:
        topics = {plain(topic) for topic in (worker.topics or [])}
        return not topics or not need.topics or bool(topics & need.topics)


def _previous_of(conversation: Conversation):
    return (select(Conversation.assignee_id)
            .where(Conversation.contact_id == conversation.contact_id, Conversation.id != conversation.id,
                   Conversation.assignee_id.is_not(None))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(1))


async def previous_worker_id(session: AsyncSession, conversation: Conversation) -> int | None:
    """Who answered this person last time (their latest earlier conversation with a worker)."""
    return await session.scalar(_previous_of(conversation))


async def route(session: AsyncSession, conversation: Conversation, contact: Contact | None, *,
                now: datetime | None = None, presence_seconds: float = 0, new_contact: bool = False) -> Route:
    """Who answers, in order: the previous worker if available; else an available worker of the team
    whose territory covers the person (any team's when none covers them) who speaks their language
    and covers the topic; else the covering team's queue; else the organisation's queue."""
    now = now or utcnow()
    org = await organisation_map(session, conversation.organisation_id)
    rules = Rules(org, now, presence_seconds)
    need = need_of(conversation, contact)
    available = [w for w in await available_workers(session, conversation.organisation_id)
                 if rules.present(w) and rules.within_hours(w)]
    # Who answered last time matters only if someone is available: asked with the load, not apart.
    load, previous = await _load_and_previous(session, [w.id for w in available],
                                              conversation if available and not new_contact else None)
    free = [w for w in available if load.get(w.id, 0) < w.capacity]
    if previous is not None:
        for worker in free:
            if worker.id == previous:
                return Route("continuity", worker, org.teams.get(worker.team_id))
    team_id = source_team_id(conversation)
    team = org.teams.get(team_id) if team_id else org.covering(need)
    pool = [w for w in free if (team is None or w.team_id == team.id) and rules.speaks(w, need)
            and rules.covers(w, need)]
    if pool:
        worker = min(pool, key=lambda w: (load.get(w.id, 0), w.id))
        return Route("territory" if team else "organisation", worker, team or org.teams.get(worker.team_id))
    if team is not None:
        return Route("team_queue", None, team, team)
    return Route("organisation_queue", None, None, org.default_team())


async def available_workers(session: AsyncSession, organisation_id: int) -> list[Worker]:
    """Active, online workers of the organisation: one query per transaction (a batch hands several
    people over in one transaction)."""
    memo = transaction_memo(session)
    key = ("available_workers", organisation_id)
    if key not in memo:
        memo[key] = (
            await session.execute(
                select(Worker).where(and_(Worker.organisation_id == organisation_id, Worker.is_active.is_(True),
                                          Worker.is_online.is_(True)))
                .order_by(Worker.id)
            )
        ).scalars().all()
    return memo[key]
