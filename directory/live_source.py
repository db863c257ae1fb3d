"""The data·inclusion API as a live source of places, when a token is configured.

`GET {base}/api/v1/search/services?code_commune=…&lat=…&lon=…&thematiques=…&size=…` (header
`Authorization: Bearer <token>`) answers a page `{"items": [{"service": {…, "structure": {…}},
"distance": …}], "total", "page", "size", "pages"}` (data·inclusion API v1, services as in the
data·inclusion v1 schema, plus `score_qualite`). The answer is cached a short while per commune (or
rounded position) and need. A failure of any kind (network, time-out, 4xx/5xx, a body that is not
that page) returns None: the caller answers from the shipped data, and the person never waits more
than the time-out. Nothing here logs a position or a place: only the error's type or status.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import httpx

from directory.needs import Need
from directory.places import Place, format_address

log = logging.getLogger(__name__)

SEARCH_PATH = "/api/v1/search/services"
CACHE_ENTRIES = 512
LIVE_SOURCE_PREFIX = "data-inclusion"


class DataInclusionSource:
    def __init__(self, base_url: str, token: str, *, timeout: float = 1.5, cache_seconds: float = 300.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=min(timeout, 1.0)),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, transport=transport)
        self._cache: OrderedDict[tuple, tuple[float, list[tuple[Place, float | None]]]] = OrderedDict()
        self.calls = 0  # requests sent (the cache answers the others)
        self.failures = 0

    @classmethod
    def from_settings(cls, settings) -> "DataInclusionSource | None":
        token = getattr(settings, "directory_api_token", None)
        if not token:
            return None
        return cls(settings.directory_api_url, token, timeout=settings.directory_api_timeout_seconds,
                   cache_seconds=settings.directory_api_cache_seconds)

    async def close(self) -> None:
        await self._client.aclose()

    async def search(self, need: Need, code_commune: str | None, latitude: float, longitude: float,
                     size: int = 10) -> list[tuple[Place, float | None]] | None:
        """[(place, distance in km or None)], nearest first; None when the API did not answer well."""
        key = (need.id, code_commune, round(latitude, 3), round(longitude, 3), size)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            return cached[1]
        params: list[tuple[str, str]] = [("size", str(size)), ("exclure_doublons", "true")]
        if code_commune:
            params.append(("code_commune", code_commune))
        params += [("lat", f"{latitude:.5f}"), ("lon", f"{longitude:.5f}")]
        params += [("thematiques", value) for value in need.thematiques]
        self.calls += 1
        try:
            response = await self._client.get(SEARCH_PATH, params=params)
            if response.status_code != 200:
                raise LiveSourceError(f"HTTP {response.status_code}")
            found = parse_page(response.json())
        except (httpx.HTTPError, ValueError, LiveSourceError) as error:
            self.failures += 1
            log.warning("data·inclusion API not used (%s): answered from the shipped data",
                        str(error) if isinstance(error, LiveSourceError) else type(error).__name__)
            return None
        if self.cache_seconds > 0:
            self._cache[key] = (now + self.cache_seconds, found)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return found


class LiveSourceError(Exception):
    pass


def _number(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def parse_page(body) -> list[tuple[Place, float | None]]:
    """The search page -> places; ValueError when it is not that page."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ValueError("not a page of services")
    found = []
    for item in body["items"]:
        if not isinstance(item, dict) or not isinstance(item.get("service"), dict):
            continue
        service = item["service"]
        structure = service.get("structure") if isinstance(service.get("structure"), dict) else {}
        latitude = _number(service.get("latitude")) if service.get("latitude") is not None else _number(structure.get("latitude"))
        longitude = _number(service.get("longitude")) if service.get("longitude") is not None else _number(structure.get("longitude"))
        name = structure.get("nom") or service.get("nom")
        if not isinstance(name, str) or not name.strip():
            continue
        source = str(service.get("source") or structure.get("source") or "")
        address = format_address(service.get("adresse") or structure.get("adresse"),
                                 service.get("complement_adresse") or structure.get("complement_adresse"),
                                 service.get("code_postal") or structure.get("code_postal"),
                                 service.get("commune") or structure.get("commune"))
        place = Place(
            id=f"{LIVE_SOURCE_PREFIX}:{service.get('id') or name}",
            name=name.strip()[:150],
            latitude=latitude if latitude is not None else 0.0,
            longitude=longitude if longitude is not None else 0.0,
            thematiques=frozenset(value for value in (service.get("thematiques") or []) if isinstance(value, str)),
            address=address,
            phone=service.get("telephone") or structure.get("telephone"),
            hours=service.get("horaires_accueil") or structure.get("horaires_accueil"),
            approximate=latitude is None or longitude is None,
            services=(str(service.get("nom") or ""),),
            source=f"{LIVE_SOURCE_PREFIX}:{source}" if source else LIVE_SOURCE_PREFIX,
            sources=(f"{LIVE_SOURCE_PREFIX}:{source}",) if source else (LIVE_SOURCE_PREFIX,),
            date_maj=str(service.get("date_maj") or "") or None,
            commune=service.get("commune") or structure.get("commune"),
            siret=structure.get("siret"),
        )
        distance = _number(item.get("distance"))
        found.append((place, distance))
    return found
