"""A fake data·inclusion API (v1) on loopback: Starlette served by uvicorn in a background thread.

Built from the API's documented responses (gip-inclusion/data-inclusion, api/…/v1/routes.py and
schemas.py): `GET /api/v1/search/services` needs `Authorization: Bearer <token>` (401 without, 403
with a wrong one), answers 422 for an unknown `code_commune`, else a page
`{"items": [{"service": {... "structure": {...}}, "distance": int}], "total", "page", "size", "pages"}`.

Controls: `mode` = "ok" | "error" (HTTP 500) | "slow" (answers after `delay` s) | "garbage" (not
JSON); `services` (what a search answers); `requests` (the query strings received).
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

TOKEN = "test-data-inclusion-token"


def lyon_food_service(number: int = 1, latitude: float = 45.7597, longitude: float = 4.8422) -> dict:
    """A service as the API gives it (data·inclusion v1 Service + score_qualite + its structure)."""
    structure = {
        "source": "soliguide", "id": f"lyon-food-{number}", "nom": f"Épicerie solidaire du Rhône {number}",
        "date_maj": "2026-11-02", "adresse": f"{number} rue Garibaldi", "code_postal": "69003",
        "code_insee": "69383", "commune": "Lyon", "latitude": latitude, "longitude": longitude,
        "telephone": "04 78 00 00 0" + str(number % 10), "horaires_accueil": "Mo-Fr 09:00-17:00; PH off",
        "reseaux_porteurs": [], "score_qualite": 0.8,
    }
    return {
        "source": "soliguide", "id": f"lyon-food-{number}--colis", "structure_id": f"lyon-food-{number}",
        "nom": "Colis alimentaires", "description": "Colis chaque semaine, sur rendez-vous.",
        "date_maj": "2026-11-02", "type": "aide-materielle",
        "thematiques": ["equipement-et-alimentation--alimentation"], "frais": "gratuit",
        "publics": ["tous-publics"], "modes_accueil": ["en-presentiel"], "latitude": latitude,
        "longitude": longitude, "score_qualite": 0.8, "structure": structure,
    }


class FakeDataInclusion:
    def __init__(self, services: list[dict] | None = None):
        self.services = list(services or [])
        self.mode = "ok"
        self.delay = 5.0
        self.requests: list[str] = []
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/api/v1/search/services", self._search)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _search(self, request: Request):
        import asyncio

        self.requests.append(str(request.url.query))
        authorization = request.headers.get("authorization", "")
        if not authorization:
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        if authorization != f"Bearer {TOKEN}":
            return JSONResponse({"detail": "Not authenticated"}, status_code=403)
        code = request.query_params.get("code_commune")
        if code is not None and (len(code) != 5 or code == "00000"):
            return JSONResponse({"detail": "This `code_commune` does not exist."}, status_code=422)
        if self.mode == "error":
            return PlainTextResponse("Internal Server Error", status_code=500)
        if self.mode == "garbage":
            return PlainTextResponse("<html>maintenance</html>", status_code=200)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        wanted = set(request.query_params.getlist("thematiques"))
        items = [{"service": service, "distance": 1} for service in self.services
                 if not wanted or wanted & set(service["thematiques"])
                 or any(t.split("--")[0] in wanted for t in service["thematiques"])]
        size = int(request.query_params.get("size") or 50)
        return JSONResponse({"items": items[:size], "total": len(items), "page": 1, "size": size,
                             "pages": 1 if items else 0})

    def __enter__(self) -> "FakeDataInclusion":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake data·inclusion API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
