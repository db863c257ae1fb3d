"""The authorisation matrix: every route under /admin (read from app.routes, so rooms added later are
covered) × (anonymous, worker, admin of another organisation, admin) × (GET, POST with and without
CSRF). Refusals: anonymous -> login redirect or 401; worker -> 403; another organisation's admin ->
403/404 on this organisation's objects; no CSRF -> 403. After every refused request, no table has
changed (every row of every table compared, before and after each route)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from handoff.auth import hash_password
from kernel.database import Base
from handoff.models import Organisation, Team, Territory, Worker
from tests.admin.helpers import ADMIN_EMAIL, PASSWORD, WORKER_EMAIL
from tests.conftest import app_client, csrf_of, login

PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
IGNORED_TABLES = re.compile(r"session")  # server-side sessions legitimately change on any request


async def snapshot(rt) -> dict:
    tables = {}
    async with rt.sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            if IGNORED_TABLES.search(table.name):
                continue
            rows = (await session.execute(select(table))).all()
            tables[table.name] = sorted(map(repr, rows))
    return tables


async def seed_matrix(rt) -> dict:
    """Another organisation with its admin; a territory of the demo team. Returns path values."""
    async with rt.sessionmaker() as session, session.begin():
        other = Organisation(slug="ailleurs", name="Ailleurs")
        session.add(other)
        await session.flush()
        session.add(Worker(organisation_id=other.id, email="zoe@ailleurs.fr", password_hash=hash_password(PASSWORD),
                           first_name="Zoé", is_admin=True))
        team = (await session.execute(select(Team).join(Organisation).where(Organisation.slug == "demo"))).scalar()
        territory = Territory(team_id=team.id, kind="commune", code="44143", label="Rezé (44)")
        session.add(territory)
        camille = (await session.execute(select(Worker).where(Worker.email == WORKER_EMAIL))).scalar()
        await session.flush()
        return {"worker_id": camille.id, "team_id": team.id, "territory_id": territory.id}


def flat_routes(routes):
    """Every route with its full path (FastAPI >= 0.16x keeps included routers as one entry each)."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


# Forms of one object named in the query string (?id=...): without one, a clear 404.
NEEDS_QUERY_ID = {"/admin/directory/edit", "/admin/directory/correct"}


def admin_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in flat_routes(app.routes):
        path = getattr(route, "path", "") or ""
        if path == "/admin" or path.startswith("/admin/"):
            for method in sorted(set(getattr(route, "methods", None) or ()) & {"GET", "POST"}):
                found.append((method, path))
    return sorted(set(found))


def concrete(path: str, values: dict) -> str:
    return PARAM.sub(lambda m: str(values.get(m.group(1), 1)), path)


async def test_every_admin_route_refuses_who_must_be_refused(settings_for):
    async with app_client(settings_for()) as admin:
        app, rt = admin.app, admin.app.state.rt
        values = await seed_matrix(rt)
        transport = admin._transport
        clients = {"admin": admin}
        for name in ("anonymous", "worker", "other_admin"):
            clients[name] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        logins = {"admin": ADMIN_EMAIL, "worker": WORKER_EMAIL, "other_admin": "zoe@ailleurs.fr"}
        csrf = {}
        for name, client in clients.items():
            if name in logins:
                assert (await login(client, logins[name], PASSWORD)).status_code == 303
            # a valid token of the client's own session (the login page always has one)
            csrf[name] = csrf_of((await client.get("/inbox/login")).text)

        routes = admin_routes(app)
        assert len(routes) >= 20, routes  # the rooms of this branch at least
        cases = 0
        problems = []
        for method, template in routes:
            path = concrete(template, values)
            has_object = PARAM.search(template) is not None
            before = await snapshot(rt)
            attempts = []  # (actor, csrf?, allowed statuses)
            for with_csrf in ((False,) if method == "GET" else (False, True)):
                attempts.append(("anonymous", with_csrf, {303, 401, 403}))
                attempts.append(("worker", with_csrf, {403}))
                if has_object or (method == "POST" and not with_csrf):
                    attempts.append(("other_admin", with_csrf, {403, 404}))
                if method == "POST" and not with_csrf:
                    attempts.append(("admin", False, {403}))
            for actor, with_csrf, allowed in attempts:
                client = clients[actor]
                if method == "GET":
                    response = await client.get(path)
                else:
                    response = await client.post(path, data={"csrf_token": csrf[actor]} if with_csrf else {})
                cases += 1
                if response.status_code not in allowed:
                    problems.append(f"{method} {path} as {actor} (csrf={with_csrf}): {response.status_code}")
                if actor == "anonymous" and response.status_code == 303:
                    assert response.headers["location"] == "/inbox/login"
            if await snapshot(rt) != before:
                problems.append(f"{method} {template}: a refused request changed the database")
            # the admin of the organisation: served (or a clear 4xx for an empty form), never a 5xx
            if method == "GET":
                response = await admin.get(path)
                cases += 1
                known = all(name in values for name in PARAM.findall(template))  # other rooms' ids: 1, maybe none
                known = known and template not in NEEDS_QUERY_ID  # without ?id=: a clear 404
                if response.status_code >= 500 or (response.status_code >= 400 and known):
                    problems.append(f"GET {path} as admin: {response.status_code}")
        # last, the admin's POSTs with CSRF and an empty form (they may change things): never a 5xx
        for method, template in routes:
            if method == "POST":
                response = await admin.post(concrete(template, values), data={"csrf_token": csrf["admin"]})
                cases += 1
                if response.status_code >= 500:
                    problems.append(f"POST {template} as admin with an empty form: {response.status_code}")
        for name in ("anonymous", "worker", "other_admin"):
            await clients[name].aclose()
        print(f"access matrix: {len(routes)} routes, {cases} requests")
        assert not problems, "\n".join(problems)
