"""The answer to "find help near me": where -> commune, need -> nearest places, with hours and numbers.

`Directory` bundles the communes and the places index (built once, rebuilt after an import);
`find_places` is what the chat flow calls; `directory.render.render_answer` turns the answer into
short French messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from directory.communes import Commune, CommuneIndex
from directory.emergency import EmergencyNumber, numbers_for
from directory.hours import describe
from directory.needs import Need, resolve_need
from directory.places import RADII_KM, Place, PlaceIndex, load_overrides, load_places

MAX_LIMIT = 10
POSITION_MAX_KM = 25.0  # farther than this from every commune centre: "too far" (sea, abroad)


@dataclass(slots=True)
class PlaceCard:
    id: str
    name: str
    distance_km: float
    address: str | None
    phone: str | None
    hours_text: str
    open_now: bool | None
    map_link: str
    approximate_location: bool = False
    where_text: str | None = None  # approximate: "à Bordeaux (adresse à vérifier)", never a distance
    kind: str | None = None  # "mairie"
    source: str | None = None  # the data's source(s), for the worker ("entourage", "dila-mairies + ...")
    date_maj: str | None = None  # the data's date (ISO)

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class PlacesAnswer:
    """status: "places" (possibly an empty list: nothing within the largest radius),
    "choose_commune" (offer `candidates` as buttons, value "insee:<code>"),
    "unknown_place" (`message` says so kindly)."""

    status: str
    need: str | None = None
    need_label: str | None = None
    commune: Commune | None = None
    candidates: list[Commune] = field(default_factory=list)
    from_position: bool = False
    emergency_numbers: list[EmergencyNumber] = field(default_factory=list)
    places: list[PlaceCard] = field(default_factory=list)
    radius_km: float | None = None
    widened: bool = False
    has_more: bool = False
    offset: int = 0
    next_offset: int | None = None
    message: str | None = None  # in French (the CLI, the worker's summary); `words` for the person
    words: tuple[str, dict] | None = None  # (key in directory/words, values) of `message`
    # Nothing within FALLBACK_KM: said plainly (`honest`), the nearest mairie first, what exists.
    fallback: bool = False
    honest: str | None = None
    honest_words: tuple[str, dict] | None = None
    mairie: PlaceCard | None = None
    numbers: list[str] = field(default_factory=list)  # useful numbers and contacts for the need
    numbers_only: bool = False  # a need answered with numbers (pharmacie, médecin de garde)
    search_point: tuple[float, float] | None = None  # where the search started (not shown)
    resolved: Need | None = None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the commune choice."""
        return [(commune.label, f"insee:{commune.code_insee}") for commune in self.candidates]

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "need": self.need,
            "need_label": self.need_label,
            "commune": self.commune.to_dict() if self.commune else None,
            "candidates": [commune.to_dict() for commune in self.candidates],
            "from_position": self.from_position,
            "emergency_numbers": [entry.to_dict() for entry in self.emergency_numbers],
            "places": [place.to_dict() for place in self.places],
            "radius_km": self.radius_km,
            "widened": self.widened,
            "has_more": self.has_more,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "message": self.message,
            "fallback": self.fallback,
            "honest": self.honest,
            "mairie": self.mairie.to_dict() if self.mairie else None,
            "numbers": list(self.numbers),
            "numbers_only": self.numbers_only,
        }


@lru_cache(maxsize=1)
def shipped_communes() -> CommuneIndex:
    return CommuneIndex.load()


class Directory:
    """Communes + places index. Build with `await Directory.load(sessionmaker)`."""

    def __init__(self, communes: CommuneIndex, places: PlaceIndex, left_out: int = 0, revision: int | None = None):
        self.communes = communes
        self.places = places
        self.left_out = left_out  # places without any usable position
        self.revision = revision  # the directory revision read before the places (None: not noted)

    @classmethod
    def from_places(cls, places: list[Place], communes: CommuneIndex | None = None) -> "Directory":
        return cls(communes or shipped_communes(), PlaceIndex(places))

    @classmethod
    async def load(cls, sessionmaker, *, autoload: bool = True,
                   departements: frozenset[str] = frozenset()) -> "Directory":
        """Import the shipped data on first run (when `autoload`; only `departements` when given),
        then index the places."""
        if autoload:
            from directory.importer import ensure_loaded

            await ensure_loaded(sessionmaker, departements=departements)
        communes = shipped_communes()
        places, left_out = await load_places(sessionmaker, communes)
        index = PlaceIndex(places)
        index.overrides = await load_overrides(sessionmaker)
        return cls(communes, index, left_out)

    def find(self, where, need: str | None = None, offset: int = 0, limit: int = 5, now: datetime | None = None,
             organisation: str | None = None):
        return find_places(self, where, need, offset=offset, limit=limit, now=now, organisation=organisation)


def map_link(latitude: float, longitude: float) -> str:
    lat, lon = f"{latitude:.5f}", f"{longitude:.5f}"
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


def search_link(address: str) -> str:
    """A map search for an address (a place whose exact position is unknown: never the centre)."""
    from urllib.parse import quote

    return f"https://www.openstreetmap.org/search?query={quote(address)}"


def _card(place: Place, distance: float, now: datetime | None) -> PlaceCard:
    from directory.places import MAIRIE
    from directory.texts import text

    hours = describe(place.hours, now)
    where_text = None
    link = map_link(place.latitude, place.longitude)
    if place.approximate:
        where_text = text("approximate_place", commune=place.commune or "?")
        query = place.address or ", ".join(part for part in (place.name, place.commune) if part)
        link = search_link(query)
    name = text("mairie_label", name=place.name) if place.kind == MAIRIE else place.name
    return PlaceCard(
        id=place.id,
        name=name,
        distance_km=round(distance, 2),
        address=place.address,
        phone=place.phone,
        hours_text=hours.text,
        open_now=hours.open_now,
        map_link=link,
        approximate_location=place.approximate,
        where_text=where_text,
        kind=place.kind,
        source=" + ".join(place.sources) if place.sources else place.source,
        date_maj=place.date_maj,
    )


def _position(where) -> tuple[float, float] | None:
    if isinstance(where, dict) and "latitude" in where and "longitude" in where:
        return float(where["latitude"]), float(where["longitude"])
    if isinstance(where, (tuple, list)) and len(where) == 2:
        return float(where[0]), float(where[1])
    if isinstance(where, str):
        parts = where.replace(";", ",").split(",")
        if len(parts) == 2 and all("." in part for part in parts):  # "47.18,-1.55", not "44400, Rezé"
            try:
                return float(parts[0]), float(parts[1])
            except ValueError:
                return None
    return None


# Open data has no food aid and no emergency housing: admins add them (docs/directory.md).
NEEDS_MISSING_FROM_OPEN_DATA = {"se-nourrir", "dormir-ce-soir", "se-loger", "s-equiper"}
FALLBACK_KM = 30.0  # nothing within this distance: said plainly, the mairie and what exists first


def _say(answer: "PlacesAnswer", key: str, **values) -> None:
    """The answer's message, by its key in directory/words: French in `message`, the key kept for
    the person's language (directory/render.py)."""
    from directory.texts import text

    answer.message, answer.words = text(f"finder.{key}", "fr", **values), (f"finder.{key}", values)


def find_places(
    directory: Directory,
    where,
    need: str | None = None,
    offset: int = 0,
    limit: int = 5,
    now: datetime | None = None,
    organisation: str | None = None,
) -> PlacesAnswer:
    """`where`: free text ("44400", "Rezé", "st nazaire"), "insee:44143" (a chosen button),
    a (latitude, longitude) pair or {"latitude", "longitude"} (a shared location), or "47.17,-1.55".
    `need`: a need id (directory.needs), a data·inclusion catégorie or thématique, or None.
    `organisation`: the slug of the person's organisation: its own places, without the shared
    places it hid, with its corrections instead of the places they correct.
    Raises directory.needs.UnknownNeed for anything else."""
    resolved_need: Need | None = resolve_need(need)
    limit = min(max(int(limit), 1), MAX_LIMIT)
    offset = max(int(offset), 0)
    answer = PlacesAnswer(
        status="places",
        need=resolved_need.id if resolved_need else None,
        need_label=resolved_need.label if resolved_need else None,
        offset=offset,
    )
    if resolved_need is not None and resolved_need.emergency:
        answer.emergency_numbers = numbers_for(resolved_need.id)

    position = _position(where)
    if position is not None:
        answer.from_position = True
        nearest = directory.communes.nearest(*position, max_km=POSITION_MAX_KM)
        if nearest is None:
            answer.status = "unknown_place"
            _say(answer, "far_position")
            return answer
        answer.commune = nearest[0]
        latitude, longitude = position
    else:
        text = str(where or "")
        if text.startswith("insee:"):
            commune = directory.communes.get(text.removeprefix("insee:").strip())
            resolution_commune, candidates = commune, [commune] if commune else []
        else:
            resolution = directory.communes.resolve(text)
            resolution_commune, candidates = resolution.commune, resolution.candidates
        if resolution_commune is None:
            if candidates:
                answer.status, answer.candidates = "choose_commune", candidates
                _say(answer, "choose_commune")
            else:
                answer.status = "unknown_place"
                _say(answer, "unknown_place")
            return answer
        answer.commune = resolution_commune
        answer.candidates = [c for c in candidates if c is not resolution_commune]
        if not resolution_commune.has_position:
            answer.status = "unknown_place"
            _say(answer, "no_position")
            return answer
        latitude, longitude = resolution_commune.latitude, resolution_commune.longitude

    from directory.texts import numbers, text

    answer.numbers = numbers(resolved_need.id if resolved_need else None)
    if resolved_need is not None and resolved_need.numbers_only:
        answer.numbers_only = True
        answer.message = text("numbers_only", need=resolved_need.label)
        answer.words = ("numbers_only", {"need": resolved_need.id})
        return answer

    answer.search_point, answer.resolved = (latitude, longitude), resolved_need
    result = directory.places.nearest(latitude, longitude, resolved_need, limit=limit, offset=offset,
                                      organisation=organisation)
    answer.places = [_card(place, distance, now) for place, distance in result.hits]
    answer.radius_km = result.radius_km
    answer.widened = result.widened
    answer.has_more = result.has_more
    answer.next_offset = offset + limit if result.has_more else None
    if offset == 0 and resolved_need is not None and not directory.places.has_specific_within(
            latitude, longitude, resolved_need, FALLBACK_KM, organisation=organisation):
        # Nothing within a sensible distance: say it plainly, give what exists, offer a worker.
        answer.fallback = True
        where_name = answer.commune.name if answer.commune else "chez vous"
        key = "nothing_near_urgent" if resolved_need.urgent else "nothing_near"
        answer.honest = text(key, need=resolved_need.label, km=f"{FALLBACK_KM:g}", commune=where_name)
        answer.honest_words = (key, {"need": resolved_need.id, "km": f"{FALLBACK_KM:g}", "commune": where_name})
        mairie = directory.places.nearest_mairie(latitude, longitude, FALLBACK_KM)
        if mairie is not None:
            answer.mairie = _card(mairie[0], mairie[1], now)
        answer.message = answer.honest
        return answer
    if not answer.places:
        if offset:
            _say(answer, "no_more")
        elif answer.need in NEEDS_MISSING_FROM_OPEN_DATA:
            _say(answer, "none_within_missing", km=f"{result.radius_km:g}")
        else:
            _say(answer, "none_within", km=f"{result.radius_km:g}")
    return answer


def merge_live(answer: PlacesAnswer, remote: list[tuple[Place, float | None]], limit: int = 5,
               now: datetime | None = None) -> PlacesAnswer:
    """Add the live source's places (data·inclusion API) to a first-page answer from the shipped
    data: a place both list is shown once, the same order rules apply (distance band, then real
    positions first, then distance). A live place within FALLBACK_KM lifts the "nothing near"."""
    from directory.places import _digits, haversine_km, place_kinds

    if answer.status != "places" or answer.offset or answer.numbers_only or answer.search_point is None or not remote:
        return answer
    latitude, longitude = answer.search_point
    radius = answer.radius_km or RADII_KM[-1]
    cards = list(answer.places)
    known = [(card.name, card.address, card.phone) for card in cards]
    added = 0
    need = answer.resolved
    for place, distance in remote:
        if need is not None and need.kinds:
            if place.kinds is None:
                place.kinds = place_kinds(place)
            if not place.kinds & set(need.kinds):
                continue  # asked by the closest thématique: only the services of the wanted kinds
        if not place.approximate:
            distance = haversine_km(latitude, longitude, place.latitude, place.longitude)
        elif distance is None:
            continue  # neither a position nor a distance: cannot be placed honestly
        if distance > max(radius, FALLBACK_KM):
            continue
        if any(_plain_name(name) == _plain_name(place.name) and (
                (address and _plain_name(address) == _plain_name(place.address))
                or (_digits(phone) and _digits(phone) == _digits(place.phone))) for name, address, phone in known):
            continue  # the same place in the shipped data: shown once
        card = _card(place, distance, now)
        if place.approximate:
            card.map_link = search_link(place.address or place.name)
        cards.append(card)
        known.append((place.name, place.address, place.phone))
        added += 1
    if not added:
        return answer
    bands = lambda card: next((i for i, r in enumerate(RADII_KM) if card.distance_km <= r), len(RADII_KM))  # noqa: E731
    cards.sort(key=lambda card: (bands(card), card.kind == "mairie", card.approximate_location, card.distance_km))
    answer.has_more = answer.has_more or len(cards) > limit
    answer.places = cards[:limit]
    answer.next_offset = limit if answer.has_more else None
    if answer.fallback and any(card.distance_km <= FALLBACK_KM and card.kind != "mairie" for card in answer.places):
        answer.fallback, answer.honest, answer.mairie, answer.message = False, None, None, None
    return answer


def _plain_name(name: str | None) -> str:
    from directory.places import _plain

    return _plain(name)


__all__ = ["RADII_KM", "merge_live", "Directory", "PlaceCard", "PlacesAnswer", "find_places", "map_link", "shipped_communes"]
