"""French communes from the shipped CSV: postcode or free-text name -> commune(s), lat/lon -> commune.

Everything lives in memory (about 35,000 communes and 45 arrondissements, built in ~0.3 s).
Names are compared after `normalize_name` (case, accents, hyphens, apostrophes, St/Ste);
small typos (OSA distance: edits and transpositions) go through rapidfuzz on a narrow candidate list.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

DATA = Path(__file__).parent / "data"
COMMUNES_FILE = DATA / "communes.csv.gz"
ARRONDISSEMENTS_FILE = DATA / "communes_arrondissements_municipaux.csv"

# Paris, Lyon, Marseille as a whole: their arrondissements are more precise for postcodes and positions.
CITIES_WITH_ARRONDISSEMENTS = {"75056", "69123", "13055"}

# A name match wins without asking when its population is this many times the next candidate's.
DOMINANCE_RATIO = 10
MAX_CANDIDATES = 8
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Commune:
    code_insee: str
    name: str
    postcodes: tuple[str, ...]
    departement: str
    latitude: float | None
    longitude: float | None
    population: int

    @property
    def label(self) -> str:
        """Button label: "Saint-Nazaire (44)"."""
        return f"{self.name} ({self.departement})"

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    def to_dict(self) -> dict:
        return {
            "code_insee": self.code_insee,
            "name": self.name,
            "label": self.label,
            "postcodes": list(self.postcodes),
            "departement": self.departement,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "population": self.population,
        }


@dataclass(slots=True)
class Resolution:
    """The answer to "where?": one commune, several to choose from, or nothing.

    `commune` is set when the text designates one commune (possibly after typo correction, or
    because it is far more populated than its namesakes: then `candidates` keeps the others
    so the bot can offer "not this one?"). When `commune` is None and `candidates` is not empty,
    the bot offers the candidates as buttons (ordered by population).
    """

    commune: Commune | None
    candidates: list[Commune] = field(default_factory=list)
    corrected: bool = False  # a typo was corrected

    @property
    def is_ambiguous(self) -> bool:
        return self.commune is None and len(self.candidates) > 1

    @property
    def is_unknown(self) -> bool:
        return self.commune is None and not self.candidates


_PUNCTUATION = re.compile(r"[^a-z0-9]+")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "sts": "saints", "stes": "saintes", "s": "sur"}
_POSTCODE = re.compile(r"(?<!\d)(\d{5})(?!\d)")
_DEPARTEMENT = re.compile(r"(?<![\d\w])(\d{2,3}|2[ab])(?![\d\w])")
_FILLER = re.compile(
    r"^(?:(?:je suis|je vis|j habite|j habites|je dors|je reste|on est|nous sommes|suis|habite|vis)\s+)?"
    r"(?:(?:a|au|aux|en|sur|vers|pres de|dans|a cote de|du cote de)\s+)?"
)
_ARRONDISSEMENT = re.compile(r"^(paris|lyon|marseille) (\d{1,2}) ?(?:e|er|eme|ieme)?(?: arrondissement| arr)?$")


def city_of_arrondissement(code: str) -> str | None:
    """Paris, Lyon and Marseille: an arrondissement's INSEE code (75111, 69383, 13201: what a
    postcode resolves to) -> its commune's (75056, 69123, 13055); None for any other code."""
    if not code.isdigit():
        return None
    number = int(code)
    if 75101 <= number <= 75120:
        return "75056"
    if 69381 <= number <= 69389:
        return "69123"
    if 13201 <= number <= 13216:
        return "13055"
    return None


def normalize_name(text: str) -> str:
    """'Saint-Nazaire', "st nazaire", "ST-NAZAIRE" -> 'saint nazaire'."""
    text = text.casefold().replace("œ", "oe").replace("æ", "ae").replace("’", " ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = _PUNCTUATION.sub(" ", text).split()
    return " ".join(_ABBREVIATIONS.get(word, word) if index or word != "s" else word for index, word in enumerate(words))


def _read_rows(path: Path) -> list[dict]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))


def _commune_from_row(row: dict) -> Commune:
    return Commune(
        code_insee=row["code_insee"],
        name=row["nom"],
        postcodes=tuple(row["codes_postaux"].split()),
        departement=row["departement"],
        latitude=float(row["latitude"]) if row["latitude"] else None,
        longitude=float(row["longitude"]) if row["longitude"] else None,
        population=int(row["population"]) if row["population"] else 0,
    )


def _by_population(communes) -> list[Commune]:
    return sorted(communes, key=lambda commune: (-commune.population, commune.code_insee))


class CommuneIndex:
    """Postcode, name and position lookups over the shipped communes."""

    def __init__(self, communes: list[Commune], arrondissements: list[Commune]):
        self.communes = communes
        self.arrondissements = arrondissements
        self.by_insee: dict[str, Commune] = {c.code_insee: c for c in communes + arrondissements}

        by_postcode: dict[str, list[Commune]] = {}
        for commune in communes:
            if commune.code_insee in CITIES_WITH_ARRONDISSEMENTS:
                continue
            for postcode in commune.postcodes:
                by_postcode.setdefault(postcode, []).append(commune)
        for arrondissement in arrondissements:
            for postcode in arrondissement.postcodes:
                by_postcode.setdefault(postcode, []).append(arrondissement)
        self.by_postcode = {code: _by_population(found) for code, found in by_postcode.items()}

        by_name: dict[str, list[Commune]] = {}
        for commune in communes:
            by_name.setdefault(normalize_name(commune.name), []).append(commune)
        self.by_name = {name: _by_population(found) for name, found in by_name.items()}
        self.arrondissement_by_key = {}
        for arrondissement in arrondissements:
            match = re.match(r"(\w+) (\d+)", normalize_name(arrondissement.name))
            if match:
                self.arrondissement_by_key[(match.group(1), int(match.group(2)))] = arrondissement

        # Typo candidates: an inverted index of character bigrams ("^r", "re", "ez", "ze", "e$")
        # keeps only names sharing enough bigrams with the query before computing the edit distance.
        self._names = list(self.by_name)
        self._name_lengths = np.array([len(name) for name in self._names], dtype=np.int16)
        postings: dict[str, list[int]] = {}
        for position, name in enumerate(self._names):
            for gram in _bigrams(name):
                postings.setdefault(gram, []).append(position)
        self._postings = {gram: np.array(found, dtype=np.int32) for gram, found in postings.items()}

        # Positions: communes (without the three whole cities) and arrondissements.
        located = sorted(
            (c for c in communes + arrondissements if c.has_position and c.code_insee not in CITIES_WITH_ARRONDISSEMENTS),
            key=lambda c: c.latitude,
        )
        self._located = located
        self._latitudes = np.array([c.latitude for c in located], dtype=np.float64)
        self._lat = np.radians(self._latitudes)
        self._lon = np.radians(np.array([c.longitude for c in located], dtype=np.float64))
        self._cos_lat = np.cos(self._lat)

    @classmethod
    def load(cls, communes_path: Path = COMMUNES_FILE, arrondissements_path: Path = ARRONDISSEMENTS_FILE) -> "CommuneIndex":
        communes = [_commune_from_row(row) for row in _read_rows(communes_path)]
        arrondissements = [_commune_from_row(row) for row in _read_rows(arrondissements_path)]
        return cls(communes, arrondissements)

    # -- lookups -----------------------------------------------------------------------------

    def get(self, code_insee: str) -> Commune | None:
        return self.by_insee.get(code_insee)

    def by_postcode_code(self, postcode: str) -> list[Commune]:
        return list(self.by_postcode.get(postcode, ()))

    def resolve(self, text: str) -> Resolution:
        """Free text ("44400", "Rezé", "reze", "st nazaire", "44400 Rezé", "Paris 11e") -> Resolution."""
        text = (text or "").strip()[:200]
        postcode_match = _POSTCODE.search(text)
        postcode_communes = self.by_postcode_code(postcode_match.group(1)) if postcode_match else []
        rest = _POSTCODE.sub(" ", text) if postcode_match else text
        name = _FILLER.sub("", normalize_name(rest))

        arrondissement = None if postcode_match else self._arrondissement(name)
        if arrondissement:
            return Resolution(arrondissement, [arrondissement])
        departement = None
        if not postcode_match:
            dep_match = _DEPARTEMENT.search(name)
            if dep_match and dep_match.start() > 0:  # "rezé 44", "Saint-Denis (93)"; a name never starts with it
                departement = dep_match.group(1).upper()
                name = (name[: dep_match.start()] + name[dep_match.end() :]).strip()

        if postcode_communes:
            if not name:
                return self._choice(postcode_communes, dominance=False)
            named = [c for c in postcode_communes if normalize_name(c.name) == name]
            if not named:  # "75011 Paris", "Lyon 69003": the arrondissement, never the whole city's centre
                named = [c for c in postcode_communes if self._city_name(c) == name]
            if not named:
                names = {normalize_name(c.name): c for c in postcode_communes}
                close = process.extractOne(name, list(names), scorer=OSA.distance, score_cutoff=_max_typos(name))
                named = [names[close[0]]] if close else []
            if named:
                return self._choice(named, dominance=False)
            elsewhere, _ = self._by_name(name)  # "44400 Nantes": offer Nantes and the postcode's communes
            if elsewhere:
                options = _by_population(elsewhere)[:3] + postcode_communes
                return Resolution(None, options[:MAX_CANDIDATES])
            return self._choice(postcode_communes, dominance=False)

        if not name:
            return Resolution(None)
        found, corrected = self._by_name(name)
        if departement:
            found = [c for c in found if c.departement == departement] or found
        resolution = self._choice(found, dominance=True)
        resolution.corrected = corrected
        return resolution

    def nearest(self, latitude: float, longitude: float, max_km: float = 25.0) -> tuple[Commune, float] | None:
        """The commune (or arrondissement) whose centre is nearest, with its distance; None when
        every centre is farther than `max_km` (a point at sea, abroad)."""
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            return None
        band = max_km / (EARTH_RADIUS_KM * np.pi / 180)  # only communes within max_km in latitude
        start, stop = np.searchsorted(self._latitudes, (latitude - band, latitude + band))
        if start == stop:
            return None
        lat, lon = np.radians(latitude), np.radians(longitude)
        window = slice(start, stop)
        distances = _haversine_km(lat, lon, np.cos(lat), self._lat[window], self._lon[window], self._cos_lat[window])
        best = int(np.argmin(distances))
        distance = float(distances[best])
        if distance > max_km:
            return None
        return self._located[start + best], distance

    # -- internals ---------------------------------------------------------------------------

    def _choice(self, communes: list[Commune], dominance: bool) -> Resolution:
        communes = _by_population(communes)
        if not communes:
            return Resolution(None)
        if len(communes) == 1:
            return Resolution(communes[0], communes)
        first, second = communes[0], communes[1]
        if dominance and first.population >= DOMINANCE_RATIO * max(second.population, 1):
            return Resolution(first, communes[:MAX_CANDIDATES])
        return Resolution(None, communes[:MAX_CANDIDATES])

    def _city_name(self, arrondissement: Commune) -> str | None:
        """The normalised name of an arrondissement's city ("paris" for Paris 11e), else None."""
        city = city_of_arrondissement(arrondissement.code_insee)
        found = self.by_insee.get(city) if city else None
        return normalize_name(found.name) if found else None

    def _arrondissement(self, name: str) -> Commune | None:
        match = _ARRONDISSEMENT.match(name)
        if not match:
            return None
        return self.arrondissement_by_key.get((match.group(1), int(match.group(2))))

    def _by_name(self, name: str) -> tuple[list[Commune], bool]:
        exact = self.by_name.get(name)
        if exact:
            return list(exact), False
        if len(name) < 3:
            return [], False
        max_typos = _max_typos(name)
        grams = _bigrams(name)
        # An edit removes at most two of the query's distinct bigrams, a transposition three.
        threshold = max(len(grams) - 3 * max_typos, 1)
        lists = [self._postings[gram] for gram in grams if gram in self._postings]
        if not lists:
            return [], False
        shared = np.bincount(np.concatenate(lists), minlength=len(self._names))
        close_length = np.abs(self._name_lengths - len(name)) <= max_typos
        positions = np.flatnonzero((shared >= threshold) & close_length)
        choices = [self._names[position] for position in positions]
        matches = process.extract(name, choices, scorer=OSA.distance, score_cutoff=max_typos, limit=20)
        if not matches:
            return [], False
        best = min(distance for _, distance, _ in matches)
        found = [commune for candidate, distance, _ in matches if distance == best for commune in self.by_name[candidate]]
        return found, True


def _bigrams(name: str) -> set[str]:
    padded = f"^{name}$"
    return {padded[index : index + 2] for index in range(len(padded) - 1)}


def _max_typos(name: str) -> int:
    return 1 if len(name) <= 8 else 2


def _haversine_km(lat, lon, cos_lat, lats, lons, cos_lats):
    """Great-circle distances (km) from one point to arrays of points, all in radians."""
    half_dlat = np.sin((lats - lat) * 0.5)
    half_dlon = np.sin((lons - lon) * 0.5)
    a = half_dlat * half_dlat + cos_lat * cos_lats * half_dlon * half_dlon
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
