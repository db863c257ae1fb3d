"""The directory in the conversation: what the flow engine and the `find_places` action need.

* `start_directory(rt)` (app start-up): loads the communes in a worker thread, wires the engine's
  commune resolver and position lookup, then loads the places in the background (first run: the
  shipped open data is imported). The app serves meanwhile; a search waits for the places.
  Then every `directory_refresh_seconds` it polls the directory revision that imports bump
  (`LiveDirectory.refresh`): when it changed, a new index is built off the request path and
  swapped in; `stop_directory(rt)` ends the polling at shutdown.
* `commune_resolver(communes)` / `position_locator(communes)`: free text or a shared position ->
  commune candidates {"value": "insee:44143", "label": "Rezé (44400)", ...} for `input: place`.
* `places_for_flow(directory, args, answers)`: the `find_places` action. Its JSON-able result holds
  the texts the flow says (`emergency_text`, `text`) and what the worker sees in the inbox
  (`summary_key: "places"`: need, commune, places shown with their distance, radius, numbers).
  `rich` says how those texts go out: a said text equal to an entry's `says` becomes that entry's
  `messages` (one per place, with links and a venue: conversations/actions.py sends them).
  Words are in the person's language (args `locale`, set by conversations/actions.py).

Nothing here logs what a person wrote or where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from directory.communes import Commune, CommuneIndex
from directory.finder import FALLBACK_KM, Directory, PlacesAnswer, find_places, shipped_communes
from directory.needs import UnknownNeed
from directory.render import PlaceDetails, render_parts

log = logging.getLogger(__name__)

SUMMARY_KEY = "places"
MAX_CANDIDATES = 8
LOAD_WAIT_SECONDS = 120.0  # a search waits this long for the places at most (first run imports)
MAX_SHOWN_KEPT = 50  # places listed in the worker's summary, over all "voir plus" pages


# -- loading -------------------------------------------------------------------------------------


async def open_directory(sessionmaker, autoload: bool = True, departements: frozenset[str] = frozenset()) -> Directory:
    """`Directory.load` with its CPU-heavy parts (communes CSV, record validation, index) in
    worker threads, so that the event loop keeps serving while it loads. The directory notes the
    revision read before the places: an import committed after that read is reloaded later."""
    from directory.importer import read_revision
    from directory.places import PlaceIndex, load_overrides, load_places

    started = time.perf_counter()
    communes = await asyncio.to_thread(shipped_communes)
    report = None
    if autoload:
        from directory.importer import ensure_loaded

        report = await ensure_loaded(sessionmaker, departements=departements)
    revision = await read_revision(sessionmaker)
    places, left_out = await load_places(sessionmaker, communes)
    index = await asyncio.to_thread(PlaceIndex, places)
    index.overrides = await load_overrides(sessionmaker)
    log.info("directory loaded: %d places (%d without position), revision %d, %s, %.1f s", len(places), left_out,
             revision, "first-run import" if report is not None else "no import", time.perf_counter() - started)
    return Directory(communes, index, left_out, revision)


class LiveDirectory:
    """The runtime's handle on the directory: empty until the background load ends, then
    replaced as a whole when an import changed the places (`refresh`)."""

    def __init__(self) -> None:
        self.directory: Directory | None = None
        self.failed = False
        self.seconds: float | None = None  # how long the load took
        self.revision: int | None = None  # the directory revision `directory` was read at
        self.reloads = 0  # reloads done by `refresh`
        self.reload_seconds: float | None = None  # how long the last one took
        self._communes: CommuneIndex | None = None
        self._done = asyncio.Event()
        self._autoload = False  # as asked of the first load (a retry after its failure does the same)
        self._departements: frozenset[str] = frozenset()  # Settings.directory_departements
        self.refresher: asyncio.Task | None = None  # the polling task (`start_refresh`)
        self.listener: asyncio.Task | None = None  # the change announcements task (`start_listening`)
        self._refreshing = asyncio.Lock()  # a poll and an announcement never build two indexes at once
        self.api = None  # directory.live_source.DataInclusionSource when configured

    @property
    def ready(self) -> bool:
        return self.directory is not None

    def communes(self) -> CommuneIndex:
        """The communes for the engine's (synchronous) lookups. Loaded in the background at start;
        a person faster than that waits for them once (well under a second)."""
        if self._communes is None:
            self._communes = shipped_communes()
        return self._communes

    async def load(self, sessionmaker, autoload: bool, departements: frozenset[str] = frozenset()) -> None:
        started = time.perf_counter()
        self._autoload, self._departements = autoload, departements
        try:
            self._communes = await asyncio.to_thread(shipped_communes)
            directory = await load_directory(sessionmaker, autoload, departements)
            self.directory, self.revision = directory, directory.revision
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failed = True
            log.exception("directory load failed")
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()

    async def get(self, timeout: float = LOAD_WAIT_SECONDS) -> Directory | None:
        if self.directory is None and not self.failed:
            try:
                await asyncio.wait_for(self._done.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self.directory

    # -- seeing imports done by other processes ----------------------------------------------------

    async def refresh_once(self, sessionmaker) -> bool:
        """Reload the places when the directory revision is not the one they were read at (or when
        the first load failed). A new Directory is built (database reads, then CPU work in worker
        threads) and swapped in with one assignment: a search holds the Directory it started with.
        A failure is logged (its type only: no place data, no personal data) and keeps the
        previous places; the next poll tries again. True when the places were replaced."""
        from directory.importer import read_revision

        try:
            revision = await read_revision(sessionmaker)
            if self.directory is not None:
                if self.revision is None:  # a loader that did not note it (tests share one Directory)
                    self.revision = revision
                    return False
                if revision == self.revision:
                    return False
            started = time.perf_counter()
            directory = await open_directory(sessionmaker, autoload=self._autoload and self.directory is None,
                                             departements=self._departements)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 (its type only: a message may quote rows)
            log.warning("directory reload failed (%s): the previous places are kept, retried at the next poll",
                        type(error).__name__)
            return False
        previous, self.revision = self.revision, directory.revision
        self.directory, self.failed = directory, False  # the swap
        self.reloads += 1
        self.reload_seconds = time.perf_counter() - started
        log.info("directory reloaded: revision %s -> %s, %d places, %.1f s", previous, directory.revision,
                 len(directory.places), self.reload_seconds)
        return True

    async def refresh(self, sessionmaker, interval: float) -> None:
        """Background loop: after the first load, `refresh_once` every `interval` seconds."""
        await self._done.wait()
        while True:
            await asyncio.sleep(interval)
            await self.refresh_once(sessionmaker)

    def start_refresh(self, sessionmaker, interval: float) -> asyncio.Task | None:
        """Start polling (not a Runtime task: `rt.drain` must not wait for it). 0 or less: never."""
        if interval and interval > 0 and self.refresher is None:
            self.refresher = asyncio.create_task(self.refresh(sessionmaker, interval), name="directory-refresh")
        return self.refresher

    def start_listening(self, notifier, sessionmaker) -> asyncio.Task | None:
        """Reload as soon as any process announces a change (`announce_change`: the console's
        edits), rather than at the next poll. The poll stays the safety net."""
        if notifier is None or self.listener is not None:
            return self.listener

        async def listen() -> None:
            await self._done.wait()
            async with notifier.subscribe(CHANGES_TOPIC) as subscription:
                while True:
                    if await subscription.get() is not None:
                        await self.refresh_once(sessionmaker)

        self.listener = asyncio.create_task(listen(), name="directory-changes")
        return self.listener

    async def close(self) -> None:
        """Stop polling; a reload under way is cancelled (the current places stay)."""
        if self.api is not None:
            await self.api.close()
        for name in ("refresher", "listener"):
            task = getattr(self, name)
            setattr(self, name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


CHANGES_TOPIC = "directory:changes"


async def announce_change(rt, revision: int | None) -> None:
    """After a commit that bumped the directory revision: every process (this one included)
    reloads its places now. Best effort: a lost announcement is caught up by the poll."""
    try:
        await rt.notifier.publish(CHANGES_TOPIC, {"revision": revision})
    except Exception as error:  # noqa: BLE001
        log.warning("directory change not announced (%s): the next poll reloads", type(error).__name__)


# The loader `start_directory` uses (tests replace it to share one loaded Directory).
load_directory = open_directory


async def start_directory(rt) -> LiveDirectory:
    """Wire the directory into a Runtime without delaying start-up: the engine's commune resolver
    and position lookup at once, the communes then the places loaded in the background (worker
    threads for the CPU work; first run: ~18,000 records imported, a few seconds)."""
    live = LiveDirectory()
    from directory.live_source import DataInclusionSource

    live.api = DataInclusionSource.from_settings(rt.settings)  # None unless a token is configured
    rt.directory = live
    rt.flow_engine.resolvers["commune"] = commune_resolver(live.communes)
    rt.flow_engine.locate = position_locator(live.communes)
    rt.spawn(live.load(rt.sessionmaker, rt.settings.directory_autoload, rt.settings.shipped_departements))
    live.start_refresh(rt.sessionmaker, rt.settings.directory_refresh_seconds)
    live.start_listening(getattr(rt, "notifier", None), rt.sessionmaker)
    return live


async def stop_directory(rt) -> None:
    """Shutdown: stop the polling started by `start_directory` (before the engine is disposed)."""
    if isinstance(rt.directory, LiveDirectory):
        await rt.directory.close()


async def ready_directory(directory, timeout: float = LOAD_WAIT_SECONDS) -> Directory | None:
    if directory is None or isinstance(directory, Directory):
        return directory
    return await directory.get(timeout)


# -- the engine's lookups ---------------------------------------------------------------------


def candidate(commune: Commune, postcode: str | None = None) -> dict:
    """A commune as a choice for the engine: value "insee:<code>", label "Rezé (44400)"."""
    if postcode not in commune.postcodes:
        postcode = commune.postcodes[0] if commune.postcodes else commune.departement
    return {
        "value": f"insee:{commune.code_insee}",
        "label": f"{commune.name} ({postcode})",
        "insee": commune.code_insee,
        "name": commune.name,
        "latitude": commune.latitude,
        "longitude": commune.longitude,
    }


Communes = CommuneIndex | Callable[[], CommuneIndex]


def _index(communes: Communes) -> CommuneIndex:
    return communes if isinstance(communes, CommuneIndex) else communes()


def commune_resolver(communes: Communes) -> Callable[[str], list[dict]]:
    """Free text -> [] (unknown), [one commune] (taken), or several (offered as buttons).
    `communes`: the index, or a function returning it (loaded later)."""
    from directory.communes import _POSTCODE

    def resolve(text: str) -> list[dict]:
        communes_index = _index(communes)
        text = (text or "").strip()
        if text.startswith("insee:"):
            commune = communes_index.get(text.removeprefix("insee:").strip())
            return [candidate(commune)] if commune else []
        resolution = communes_index.resolve(text)
        typed = _POSTCODE.search(text)
        postcode = typed.group(1) if typed else None
        if resolution.commune is not None:
            return [candidate(resolution.commune, postcode)]
        return [candidate(commune, postcode) for commune in resolution.candidates[:MAX_CANDIDATES]]

    return resolve


def position_locator(communes: Communes, max_km: float | None = None) -> Callable[[float, float], dict | None]:
    """A shared position -> its commune (None at sea, abroad: the engine asks for a postcode)."""
    from directory.finder import POSITION_MAX_KM

    def locate(latitude: float, longitude: float) -> dict | None:
        nearest = _index(communes).nearest(latitude, longitude, max_km=max_km or POSITION_MAX_KM)
        if nearest is None:
            return None
        found = candidate(nearest[0])
        # The engine puts the person's own position in latitude/longitude.
        from directory.texts import text

        return {**found, "label": text("places.your_position", commune=found["name"]), "from_position": True}

    return locate


# -- the find_places action ---------------------------------------------------------------------


def _where(place) -> object:
    """The saved `place` answer -> what find_places takes."""
    if isinstance(place, dict):
        if place.get("from_position") and place.get("latitude") is not None:
            return (float(place["latitude"]), float(place["longitude"]))
        if place.get("insee"):
            return f"insee:{place['insee']}"
        if str(place.get("value", "")).startswith("insee:"):
            return place["value"]
        if place.get("latitude") is not None and place.get("longitude") is not None:
            return (float(place["latitude"]), float(place["longitude"]))
        return place.get("label") or ""
    return place or ""


PLACE_KEYS = ("id", "name", "distance_km", "address", "phone", "hours_text", "open_now", "map_link",
              "approximate_location", "where_text", "kind", "source", "date_maj")
SHOWN_KEYS = ("id", "name", "distance_km", "address", "phone", "map_link", "approximate_location", "where_text",
              "source", "date_maj")


def _place_line(card: dict) -> dict:
    return {key: card.get(key) for key in PLACE_KEYS}


_DETAILS: "weakref.WeakKeyDictionary" = None  # PlaceIndex -> {id: Place}, built once per index


def details_lookup(directory) -> Callable[[str], PlaceDetails | None] | None:
    """id -> the place's position, hours expression and services, from the loaded directory."""
    import weakref

    global _DETAILS
    index = getattr(directory, "places", None)
    places = getattr(index, "places", None)
    if places is None:
        return None
    if _DETAILS is None:
        _DETAILS = weakref.WeakKeyDictionary()
    try:
        by_id = _DETAILS.get(index)
        if by_id is None:
            by_id = _DETAILS[index] = {place.id: place for place in places}
    except TypeError:  # not weakly referable: built each time
        by_id = {place.id: place for place in places}

    def lookup(place_id: str) -> PlaceDetails | None:
        place = by_id.get(place_id)
        if place is None:
            return None
        return PlaceDetails(None if place.approximate else place.latitude, None if place.approximate else place.longitude,
                            place.hours or "", tuple(place.services or ()), getattr(place, "website", None))

    return lookup


def flow_result(answer: PlacesAnswer, previous: dict | None = None, locale: str | None = "fr",
                lookup: Callable[[str], PlaceDetails | None] | None = None) -> dict:
    """A PlacesAnswer as the flow and the inbox use it (JSON-able)."""
    parts = render_parts(answer, locale, lookup=lookup, more_hint=False)  # the flow offers a "➕ Voir plus" button
    emergency_parts = parts[:1] if answer.emergency_numbers else []
    rest_parts = parts[1:] if answer.emergency_numbers else parts
    emergency = emergency_parts[0].text if emergency_parts else ""
    rest = [part.text for part in rest_parts]
    rich = [{"says": emergency, "messages": [part.to_dict() for part in emergency_parts]}] if emergency else []
    if rest:
        rich.append({"says": "\n\n".join(rest), "messages": [part.to_dict() for part in rest_parts]})
    places = [_place_line(card.to_dict()) for card in answer.places]
    if answer.mairie is not None:
        places.insert(0, _place_line(answer.mairie.to_dict()))
    shown = []
    if previous and answer.offset and previous.get("need") == answer.need and \
            (previous.get("commune") or {}).get("insee") == (answer.commune.code_insee if answer.commune else None):
        shown = list(previous.get("shown") or [])
    known = {entry["id"] for entry in shown}
    shown += [{key: p.get(key) for key in SHOWN_KEYS} for p in places if p["id"] not in known]
    commune = None
    if answer.commune is not None:
        commune = {"insee": answer.commune.code_insee, "name": answer.commune.name,
                   "postcodes": list(answer.commune.postcodes[:3]), "departement": answer.commune.departement}
    where = (commune or {}).get("name") or "?"
    if answer.status != "places":
        label = "lieu non trouvé"
    elif answer.numbers_only:
        label = "numéros donnés"
    elif answer.fallback:
        label = f"rien à moins de {FALLBACK_KM:g} km de {where} : mairie et numéros donnés, équipe proposée"
    elif places:
        label = f"{len(places)} lieu{'x' if len(places) > 1 else ''} proposé{'s' if len(places) > 1 else ''}"
        label += f" près de {where}" + (f", à moins de {answer.radius_km:g} km" if answer.radius_km else "")
    else:
        label = f"aucun lieu à moins de {answer.radius_km:g} km de {where}" if answer.radius_km else "aucun lieu"
    if answer.need_label:
        label = f"{answer.need_label} : {label}"
    return {
        "summary_key": SUMMARY_KEY,
        "title": "📍 Lieux proposés",
        "label": label,  # one readable line for the inbox timeline
        "ok": True,
        "status": answer.status,
        "need": answer.need,
        "need_label": answer.need_label,
        "commune": commune,
        "from_position": answer.from_position,
        "places": places,
        "found": bool(places) and not answer.fallback,  # fallback: the worker is offered first
        "fallback": answer.fallback,
        "honest": answer.honest,
        "numbers": list(answer.numbers),
        "numbers_only": answer.numbers_only,
        "shown": shown[:MAX_SHOWN_KEPT],
        "radius_km": answer.radius_km,
        "widened": answer.widened,
        "has_more": answer.has_more,
        "offset": answer.offset,
        "next_offset": answer.next_offset,
        "emergency_numbers": [entry.number for entry in answer.emergency_numbers],
        "emergency_text": emergency,
        "text": "\n\n".join(rest),
        "rich": rich,
        "locale": locale or "fr",
        "message": answer.message,
    }


async def _with_live_source(live, answer: PlacesAnswer, limit: int) -> PlacesAnswer:
    """The data·inclusion API's places merged into the local answer; the local answer alone when
    it fails or takes longer than its time-out (the person is answered within about 2 s)."""
    from directory.finder import merge_live

    try:
        remote = await asyncio.wait_for(
            live.search(answer.resolved, answer.commune.code_insee if answer.commune else None,
                        *answer.search_point, size=max(limit * 2, 10)),
            timeout=live.timeout + 0.3)
    except Exception as error:  # noqa: BLE001 (time-out or anything else: the shipped data answer)
        log.warning("data·inclusion API not used (%s)", type(error).__name__)
        return answer
    return merge_live(answer, remote or [], limit=limit) if remote else answer


def unavailable(need: str | None = None) -> dict:
    return {
        "summary_key": SUMMARY_KEY, "title": "📍 Lieux proposés", "label": "recherche impossible",
        "ok": False, "status": "unavailable", "need": need, "need_label": None, "commune": None,
        "places": [], "found": False, "shown": [], "emergency_numbers": [], "emergency_text": "", "text": "",
        "has_more": False, "offset": 0, "next_offset": None, "radius_km": None, "widened": False,
    }


async def organisation_of(rt, conversation_id: int) -> str | None:
    """The slug of the organisation a conversation belongs to (what its places search honours)."""
    from sqlalchemy import select

    from conversations.models import Conversation
    from handoff.models import Organisation

    async with rt.sessionmaker() as session:
        return await session.scalar(select(Organisation.slug).join(
            Conversation, Conversation.organisation_id == Organisation.id).where(Conversation.id == conversation_id))


async def places_for_conversation(rt, conversation_id: int, args: dict, answers: dict) -> dict:
    """The `find_places` action of one conversation: what its organisation's people see."""
    organisation = await organisation_of(rt, conversation_id)
    return await places_for_flow(rt.directory, args, answers, organisation=organisation)


async def places_for_flow(directory, args: dict, answers: dict, organisation: str | None = None) -> dict:
    """The `find_places` action. args: need, where (the saved `place` answer), offset, limit.
    `organisation`: its slug (its own places, hides and corrections)."""
    need = args.get("need") if args.get("need") is not None else answers.get("need")
    where = args.get("where") if args.get("where") is not None else answers.get("place")
    try:
        offset = max(int(args.get("offset") or 0), 0)
        limit = int(args.get("limit") or 5)
    except (TypeError, ValueError):
        offset, limit = 0, 5
    loaded = await ready_directory(directory)
    if loaded is None:
        return unavailable(need)
    try:
        answer = find_places(loaded, _where(where), need, offset=offset, limit=limit, organisation=organisation)
    except UnknownNeed:
        return unavailable(need)
    live = getattr(directory, "api", None)
    if live is not None and answer.status == "places" and not offset and answer.resolved is not None \
            and not answer.numbers_only and answer.search_point is not None:
        answer = await _with_live_source(live, answer, limit)
    previous = answers.get(args.get("previous") or "places_result")
    return flow_result(answer, previous if isinstance(previous, dict) else None, args.get("locale") or "fr",
                       details_lookup(loaded))


__all__ = [
    "LiveDirectory",
    "announce_change",
    "candidate",
    "commune_resolver",
    "flow_result",
    "open_directory",
    "places_for_conversation",
    "places_for_flow",
    "position_locator",
    "start_directory",
    "stop_directory",
]
