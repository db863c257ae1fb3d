"""In-memory index of places for "nearest places by need" searches.

Places are sorted by latitude in numpy arrays. Each need has its subset of places (found once
with two uint64 bit masks per place: 69 thématiques), still sorted by latitude. A search takes,
radius after radius (10, 20, 50, 100 km), the subset's latitude band with `searchsorted`, keeps
the longitude box and computes haversine distances only there, until a page is full.
Figures: bench/bench_directory.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from directory.needs import Need, all_thematiques, expand

RADII_KM = (10, 20, 50, 100)
SPECIFIC_WIDEN_KM = 20  # up to this radius, the search widens until a page of specific matches
MAIRIE = "mairie"
MAIRIE_SOURCE = "dila-mairies"
EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = EARTH_RADIUS_KM * np.pi / 180


@dataclass(slots=True)
class Place:
    """What the bot shows about a place (a data·inclusion structure and its services)."""

    id: str
    name: str
    latitude: float
    longitude: float
    thematiques: frozenset[str] = frozenset()
    address: str | None = None
    phone: str | None = None
    hours: str | None = None  # OSM opening_hours
    origin: str = "open-data"
    approximate: bool = False  # placed at its commune's centre (no coordinates in the data)
    services: tuple[str, ...] = ()  # service names
    owner: str | None = None  # slug of the organisation whose people only see it (None: everyone)
    source: str | None = None  # data·inclusion source ("france-services", "entourage", ...)
    date_maj: str | None = None  # the data's date (ISO), so a worker can judge it
    commune: str | None = None  # the commune's name ("à Bordeaux (adresse à vérifier)")
    kind: str | None = None  # "mairie": a generic match, the last resort of any need
    siret: str | None = None
    sources: tuple[str, ...] = ()  # every source merged into this place (duplicates shown once)
    kinds: frozenset[str] | None = None  # kinds of service (directory.needs.service_kinds); None: not read yet


def place_kinds(place: Place) -> frozenset[str]:
    """What the place's services are ("douches", "toilettes", ...), from their names (the source's
    own category is kept there: Entourage's "Douches", "Laverie"...). The place's own name counts
    when it carries the hygiene thématique (a console place "Bains-douches municipaux", whose one
    service is "Accueil"), else only for "accueil de jour" (a commune named Fontaine is no fountain).
    A mairie has none."""
    from directory.needs import HYGIENE_THEMATIQUE, service_kinds

    if place.kind == MAIRIE:
        return frozenset()
    kinds = service_kinds(*place.services)
    named = service_kinds(place.name)
    if HYGIENE_THEMATIQUE not in place.thematiques:
        named = named & {"accueil-de-jour"}
    return kinds | named


@dataclass(slots=True)
class Overrides:
    """One organisation's view of the shared places: ids it hides, ids its corrections replace."""

    hidden: set[str] = field(default_factory=set)
    replaced: dict[str, str] = field(default_factory=dict)  # shared id -> the organisation's copy

    @property
    def excluded(self) -> set[str]:
        return self.hidden | set(self.replaced)


@dataclass(slots=True)
class NearestResult:
    hits: list[tuple[Place, float]]  # (place, distance in km), nearest first
    radius_km: float  # the radius the hits were taken from
    widened: bool  # radius larger than the first one tried
    has_more: bool  # more places further in the list ("voir plus")
    total: int = 0  # places matching within `radius_km`
    radii_tried: tuple[float, ...] = field(default_factory=tuple)


@lru_cache(maxsize=1)
def _positions() -> dict[str, int]:
    return {value: index for index, value in enumerate(all_thematiques())}


@lru_cache(maxsize=4096)
def thematique_bits(thematiques: frozenset[str]) -> tuple[int, int]:
    """Thématiques -> two 64-bit words (bit i = i-th thématique of the schema)."""
    positions = _positions()
    low = high = 0
    for thematique in thematiques:
        index = positions.get(thematique)
        if index is None:
            continue
        if index < 64:
            low |= 1 << index
        else:
            high |= 1 << (index - 64)
    return low, high


class _Subset:
    """The places matching one need, still sorted by latitude (positions into PlaceIndex.places)."""

    __slots__ = ("positions", "latitudes", "longitudes", "cos_lat", "tier", "rank")

    def __init__(self, positions, latitudes, longitudes, tier=None, rank=None):
        self.positions = positions.astype(np.int32)
        self.latitudes = latitudes[positions]
        self.longitudes = longitudes[positions]
        self.cos_lat = np.cos(np.radians(self.latitudes))
        # 0: specific match with a real position, 1: specific, approximate position,
        # 2: generic match (a mairie, a place where the need is a side line), 3: generic, approximate.
        self.tier = np.zeros(len(self.positions), dtype=np.int8) if tier is None else tier.astype(np.int8)
        # At the same distance (places sitting on one commune centre), the most wanted kind first
        # (a shower before a toilet for "Se laver, toilettes"); 0 for needs matched by thématiques.
        self.rank = np.zeros(len(self.positions), dtype=np.int8) if rank is None else rank.astype(np.int8)

    @property
    def nbytes(self) -> int:
        return (self.positions.nbytes + self.latitudes.nbytes + self.longitudes.nbytes + self.cos_lat.nbytes
                + self.tier.nbytes + self.rank.nbytes)


class PlaceIndex:
    def __init__(self, places: list[Place], prepare=None):
        """`prepare`: needs whose subsets are built now (default: the flow's needs) rather than
        at their first search."""
        latitudes = np.array([p.latitude for p in places], dtype=np.float64)
        order = np.argsort(latitudes, kind="stable")
        self.places = [places[i] for i in order]
        self.latitudes = latitudes[order]
        self.longitudes = np.array([p.longitude for p in self.places], dtype=np.float64)
        bits = [thematique_bits(p.thematiques) for p in self.places]
        self._low = np.array([b[0] for b in bits], dtype=np.uint64)
        self._high = np.array([b[1] for b in bits], dtype=np.uint64)
        self._approximate = np.fromiter((p.approximate for p in self.places), dtype=bool, count=len(self.places))
        self._mairie = np.fromiter((p.kind == MAIRIE for p in self.places), dtype=bool, count=len(self.places))
        for p in self.places:
            if p.kinds is None:
                p.kinds = place_kinds(p)
        self._subsets: dict[tuple[str, ...] | None, _Subset] = {}
        self._views: dict[str | None, np.ndarray | None] = {}
        self.overrides: dict[str, Overrides] = {}  # organisation slug -> what it hides or corrects
        self._subset(None)
        if prepare is None:
            from directory.needs import NEEDS

            prepare = NEEDS
        for need in prepare:
            self._subset(need)

    def __len__(self) -> int:
        return len(self.places)

    @property
    def array_bytes(self) -> int:
        arrays = (self.latitudes, self.longitudes, self._low, self._high)
        return sum(array.nbytes for array in arrays) + sum(subset.nbytes for subset in self._subsets.values())

    def _subset(self, need: Need | None) -> _Subset:
        key = None if need is None else (("kinds",) + need.kinds if need.kinds else tuple(sorted(need.thematiques)))
        subset = self._subsets.get(key)
        if subset is None and need is not None and need.kinds:
            subset = self._subsets[key] = self._kinds_subset(need)
        elif subset is None:
            if need is None:
                positions = np.arange(len(self.places))
                tier = self._approximate[positions].astype(np.int8)
            else:
                wanted = frozenset(expand(need.thematiques))
                low, high = (np.uint64(word) for word in thematique_bits(wanted))
                positions = np.flatnonzero(((self._low & low) | (self._high & high)) != 0)
                specific = frozenset(expand(need.specific)) if need.specific else wanted
                generic = np.fromiter((self._is_generic(self.places[i], specific) for i in positions), dtype=bool,
                                      count=len(positions))
                tier = generic.astype(np.int8) * 2 + self._approximate[positions]
            subset = self._subsets[key] = _Subset(positions, self.latitudes, self.longitudes, tier)
        return subset

    def _kinds_subset(self, need: Need) -> _Subset:
        """A need matched by kinds of service: the places having one of them; specific when one of
        `specific_kinds`, generic otherwise (a fountain, an accueil de jour)."""
        wanted, specific = set(need.kinds), set(need.specific_kinds or need.kinds)
        positions = np.fromiter((i for i, p in enumerate(self.places) if p.kinds & wanted), dtype=np.int64)
        generic = np.fromiter((not (self.places[i].kinds & specific) for i in positions), dtype=bool,
                              count=len(positions))
        rank = np.fromiter((min(need.kinds.index(k) for k in self.places[i].kinds & wanted) for i in positions),
                           dtype=np.int8, count=len(positions))
        tier = generic.astype(np.int8) * 2 + self._approximate[positions]
        return _Subset(positions, self.latitudes, self.longitudes, tier, rank)

    @staticmethod
    def _is_generic(place: Place, specific: frozenset[str]) -> bool:
        """A mairie, or a place where the need is a side line: less than half of its thématiques
        are the need's (a training body or a digital help place that also lists "santé")."""
        if place.kind == MAIRIE:
            return True
        if not place.thematiques:
            return True
        inside = sum(1 for thematique in place.thematiques if thematique in specific)
        return inside == 0 or inside * 2 < len(place.thematiques)

    def has_specific_within(self, latitude: float, longitude: float, need: Need, max_km: float,
                            organisation: str | None = None) -> bool:
        """Whether a specific match for `need` (not a mairie, not a side line) lies within `max_km`."""
        subset = self._subset(need)
        lat, lon = np.radians(latitude), np.radians(longitude)
        candidates, _ = self._within(subset, latitude, longitude, lat, lon, np.cos(lat), max_km,
                                     self.view(organisation))
        return bool(np.count_nonzero(subset.tier[candidates] < 2))

    def mairies(self) -> _Subset:
        subset = self._subsets.get(MAIRIE)
        if subset is None:
            positions = np.flatnonzero(self._mairie)
            subset = self._subsets[MAIRIE] = _Subset(positions, self.latitudes, self.longitudes)
        return subset

    def nearest_mairie(self, latitude: float, longitude: float, max_km: float = 30.0) -> tuple[Place, float] | None:
        """The nearest mairie (the commune's door to its CCAS), within `max_km`."""
        subset = self.mairies()
        lat, lon = np.radians(latitude), np.radians(longitude)
        candidates, distances = self._within(subset, latitude, longitude, lat, lon, np.cos(lat), max_km)
        if not len(candidates):
            return None
        best = int(np.argmin(distances))
        return self.places[subset.positions[candidates[best]]], float(distances[best])

    def view(self, organisation: str | None) -> np.ndarray | None:
        """Which places the people of `organisation` (a slug; None: no organisation) see, as a
        boolean mask over `places` (None: all of them): the shared places minus those it hides or
        corrects, plus its own (not another organisation's). Built once per index and organisation."""
        if organisation in self._views:
            return self._views[organisation]
        overrides = self.overrides.get(organisation) if organisation else None
        excluded = overrides.excluded if overrides else set()
        visible = np.fromiter(
            ((place.owner is None or place.owner == organisation) and place.id not in excluded
             for place in self.places), dtype=bool, count=len(self.places))
        mask = None if visible.all() else visible
        if len(self._views) > 256:  # organisations come and go: keep the cache bounded
            self._views.clear()
        self._views[organisation] = mask
        return mask

    def nearest(
        self,
        latitude: float,
        longitude: float,
        need: Need | None = None,
        limit: int = 5,
        offset: int = 0,
        radii: tuple[float, ...] = RADII_KM,
        organisation: str | None = None,
    ) -> NearestResult:
        """Places by distance, filtered by need, from the smallest radius holding a full page
        (offset + limit places); the largest radius otherwise. `organisation`: what its people
        see (`view`)."""
        limit, offset = max(int(limit), 1), max(int(offset), 0)
        wanted = offset + limit
        subset = self._subset(need)
        visible = self.view(organisation)
        lat, lon = np.radians(latitude), np.radians(longitude)
        cos_lat = np.cos(lat)
        # Widen step by step: each radius only looks at its own latitude band.
        for step, radius in enumerate(radii):
            candidates, distances = self._within(subset, latitude, longitude, lat, lon, cos_lat, radius, visible)
            if step == len(radii) - 1:
                break
            if radius < SPECIFIC_WIDEN_KM:  # a page of specific matches, else widen a little
                if int(np.count_nonzero(subset.tier[candidates] < 2)) >= wanted:
                    break
            elif len(candidates) >= wanted:
                break
        # Distance bands first (within 10 km, 20, 50, 100), then in each band specific matches
        # before generic ones, real positions before approximate ones (a place without coordinates
        # is never "0 km" ahead of a real one), then by distance.
        bands = np.searchsorted(np.asarray(radii, dtype=np.float64), distances, side="left")
        order = np.lexsort((subset.rank[candidates], distances, subset.tier[candidates], bands))
        top = order[offset:wanted]
        hits = [(self.places[subset.positions[candidates[i]]], float(distances[i])) for i in top]
        if radius == radii[-1]:
            has_more = len(candidates) > wanted
        else:
            has_more = len(candidates) > wanted or bool(
                len(self._within(subset, latitude, longitude, lat, lon, cos_lat, radii[-1], visible)[0]) > wanted
            )
        return NearestResult(
            hits=hits,
            radius_km=radius,
            widened=radius > radii[0],
            has_more=has_more,
            total=len(candidates),
            radii_tried=tuple(r for r in radii if r <= radius),
        )

    @staticmethod
    def _within(subset: _Subset, latitude, longitude, lat, lon, cos_lat, radius, visible=None):
        """(positions in the subset, distances in km) of the visible places within `radius` km."""
        band = radius / KM_PER_DEGREE
        start, stop = np.searchsorted(subset.latitudes, (latitude - band, latitude + band))
        if start == stop:
            return np.empty(0, dtype=np.int64), np.empty(0)
        lon_band = band / np.cos(np.radians(min(abs(latitude) + band, 89.9)))
        longitudes = subset.longitudes[start:stop]
        if lon_band < 180:
            delta = np.abs((longitudes - longitude + 180.0) % 360.0 - 180.0)
            inside = np.flatnonzero(delta <= lon_band)
        else:
            inside = np.arange(stop - start)
        candidates = inside + start
        if visible is not None:
            candidates = candidates[visible[subset.positions[candidates]]]
        half_dlat = np.sin((np.radians(subset.latitudes[candidates]) - lat) * 0.5)
        half_dlon = np.sin((np.radians(subset.longitudes[candidates]) - lon) * 0.5)
        a = half_dlat * half_dlat + cos_lat * subset.cos_lat[candidates] * half_dlon * half_dlon
        distances = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        close = distances <= radius
        return candidates[close], distances[close]


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return float(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(min(a, 1.0))))


# -- building from the database --------------------------------------------------------------


def format_address(adresse, complement, code_postal, commune) -> str | None:
    town = " ".join(part for part in (code_postal, commune) if part)
    parts = [part.strip() for part in (adresse, complement, town) if part and part.strip()]
    return ", ".join(parts) or None


def _commune_position(communes, code_insee, code_postal):
    if communes is None:
        return None
    commune = communes.get(code_insee) if code_insee else None
    if commune is None and code_postal:
        found = communes.by_postcode_code(code_postal)
        commune = found[0] if found else None
    if commune is None or not commune.has_position:
        return None
    return commune.latitude, commune.longitude


async def load_places(sessionmaker, communes=None) -> tuple[list[Place], int]:
    """Places from the database: (places with a position, count of places left out).

    A structure's thématiques are its services' thématiques; without coordinates, the place
    falls back to its services' coordinates, then to its commune's centre (marked approximate)."""
    from sqlalchemy import Text, select, type_coerce

    from directory.models import Service, Structure

    async with sessionmaker() as session:
        service_rows = await session.execute(
            select(
                Service.structure_id,
                Service.nom,
                type_coerce(Service.thematiques, Text).label("thematiques"),  # JSON decoded in the thread
                Service.latitude,
                Service.longitude,
                Service.telephone,
                Service.horaires_accueil,
            )
        )
        service_rows = service_rows.all()
        structure_rows = (
            await session.execute(
                select(
                    Structure.id,
                    Structure.nom,
                    Structure.adresse,
                    Structure.complement_adresse,
                    Structure.code_postal,
                    Structure.code_insee,
                    Structure.commune,
                    Structure.latitude,
                    Structure.longitude,
                    Structure.telephone,
                    Structure.horaires_accueil,
                    Structure.origin,
                    Structure.source,
                    Structure.date_maj,
                    Structure.siret,
                )
            )
        ).all()

    # Building the places is CPU work over ~18,000 rows: in a worker thread, the event loop stays free.
    return await asyncio.to_thread(_build_places, service_rows, structure_rows, communes)


def _json_list(value):
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _build_places(service_rows, structure_rows, communes) -> tuple[list[Place], int]:
    from directory.models import owner_of

    services_by_structure: dict[str, list] = {}
    for row in service_rows:
        services_by_structure.setdefault(row.structure_id, []).append(row)
    places, left_out = [], 0
    for row in structure_rows:
        services = services_by_structure.get(row.id, [])
        latitude, longitude, approximate = row.latitude, row.longitude, False
        if latitude is None:
            located = next((s for s in services if s.latitude is not None), None)
            if located is not None:
                latitude, longitude = located.latitude, located.longitude
            else:
                position = _commune_position(communes, row.code_insee, row.code_postal)
                if position is None:
                    left_out += 1
                    continue
                (latitude, longitude), approximate = position, True
        thematiques = frozenset(t for s in services for t in (_json_list(s.thematiques) or ()))
        places.append(
            Place(
                id=row.id,
                name=row.nom,
                latitude=latitude,
                longitude=longitude,
                thematiques=thematiques,
                address=format_address(row.adresse, row.complement_adresse, row.code_postal, row.commune),
                phone=row.telephone or next((s.telephone for s in services if s.telephone), None),
                hours=row.horaires_accueil or next((s.horaires_accueil for s in services if s.horaires_accueil), None),
                origin=row.origin,
                approximate=approximate,
                services=tuple(dict.fromkeys(s.nom for s in services)),
                owner=owner_of(row.origin, row.source),
                source=row.source,
                date_maj=row.date_maj.isoformat() if row.date_maj is not None else None,
                commune=_commune_name(communes, row.code_insee, row.code_postal) or row.commune,
                kind=MAIRIE if row.source == MAIRIE_SOURCE else None,
                siret=row.siret,
                sources=(row.source,) if row.source else (),
            )
        )
    return merge_duplicates(places), left_out


def _commune_name(communes, code_insee, code_postal) -> str | None:
    if communes is None:
        return None
    commune = communes.get(code_insee) if code_insee else None
    if commune is None and code_postal:
        found = communes.by_postcode_code(code_postal)
        commune = found[0] if len(found) == 1 else None
    return commune.name if commune is not None else None


# -- the same place from several sources ------------------------------------------------------

DUPLICATE_KM = 0.1


def _plain(text: str | None) -> str:
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", (text or "").casefold()).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def _digits(text: str | None) -> str:
    return "".join(character for character in (text or "") if character.isdigit())[-9:]


def _same_place(a: Place, b: Place) -> bool:
    """Same name (checked by the caller) and the same address, phone or SIRET, within 100 m
    (a place without coordinates: in the same commune)."""
    if a.owner != b.owner:
        return False
    same = bool(
        (a.address and _plain(a.address) == _plain(b.address))
        or (_digits(a.phone) and _digits(a.phone) == _digits(b.phone))
        or (a.siret and a.siret == b.siret)
    )
    if not same:
        return False
    if a.approximate or b.approximate:
        return _plain(a.commune) == _plain(b.commune)
    dlat = (a.latitude - b.latitude) * KM_PER_DEGREE
    dlon = (a.longitude - b.longitude) * KM_PER_DEGREE * np.cos(np.radians(a.latitude))
    return float(np.hypot(dlat, dlon)) <= DUPLICATE_KM


def _merge(best: Place, other: Place) -> None:
    """Fold `other` into `best` (the one with a real position and the most data): what it lacks."""
    best.thematiques = best.thematiques | other.thematiques
    best.services = tuple(dict.fromkeys(best.services + other.services))
    best.address = best.address or other.address
    best.phone = best.phone or other.phone
    best.hours = best.hours or other.hours
    best.siret = best.siret or other.siret
    best.commune = best.commune or other.commune
    if other.date_maj and (not best.date_maj or other.date_maj > best.date_maj):
        best.date_maj = other.date_maj
    best.sources = tuple(dict.fromkeys(best.sources + other.sources))


def _richness(place: Place) -> tuple:
    return (not place.approximate, place.hours is not None, place.phone is not None, place.address is not None,
            place.date_maj or "")


def merge_duplicates(places: list[Place]) -> list[Place]:
    """The same place listed by several sources is kept once, with the best data of each."""
    by_name: dict[str, list[int]] = {}
    for position, place in enumerate(places):
        if place.kind != MAIRIE:
            by_name.setdefault(_plain(place.name), []).append(position)
    dropped: set[int] = set()
    for positions in by_name.values():
        if len(positions) < 2:
            continue
        group = sorted(positions, key=lambda i: _richness(places[i]), reverse=True)
        for index, first in enumerate(group):
            if first in dropped:
                continue
            for second in group[index + 1 :]:
                if second not in dropped and _same_place(places[first], places[second]):
                    _merge(places[first], places[second])
                    dropped.add(second)
    return [place for position, place in enumerate(places) if position not in dropped] if dropped else places


async def load_overrides(sessionmaker) -> dict[str, Overrides]:
    """Every organisation's hides and corrections, by organisation slug."""
    from sqlalchemy import select

    from directory.models import PlaceOverride
    from handoff.models import Organisation

    async with sessionmaker() as session:
        rows = (await session.execute(
            select(Organisation.slug, PlaceOverride.place_id, PlaceOverride.hidden, PlaceOverride.replacement_id)
            .join(Organisation, Organisation.id == PlaceOverride.organisation_id))).all()
    overrides: dict[str, Overrides] = {}
    for slug, place_id, hidden, replacement_id in rows:
        entry = overrides.setdefault(slug, Overrides())
        if hidden:
            entry.hidden.add(place_id)
        if replacement_id:
            entry.replaced[place_id] = replacement_id
    return overrides
