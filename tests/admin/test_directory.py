"""The console's directory room through its real routes, on SQLite and on PostgreSQL + Redis:
an organisation's own places (hours as days and times), hides and corrections of shared places for
that organisation only, a file import with its progress and per-row errors, and who may do what.

Small fixture data (two shared places near Rezé, imported by the importer), directory_autoload off.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import app_client, csrf_of, eventually, login
from tests.webchat import Person, text_of

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "mot-de-passe-solide"
OTHER_ADMIN = "admin@autre-asso.fr"
SHARED = [
    {"source": "fixture", "id": "fixture--mediatheque", "nom": "Médiathèque de Rezé", "date_maj": "2025-01-01",
     "adresse": "2 place Roger Salengro", "code_postal": "44400", "code_insee": "44143", "commune": "Rezé",
     "latitude": 47.1905, "longitude": -1.5690, "horaires_accueil": "Mo-Sa 10:00-18:00"},
    {"source": "fixture", "id": "fixture--mediatheque--numerique", "structure_id": "fixture--mediatheque",
     "nom": "Aide numérique", "description": "Ateliers et aide aux démarches en ligne.", "date_maj": "2025-01-01",
     "thematiques": ["numerique--acceder-a-des-services-en-ligne"]},
    {"source": "fixture", "id": "fixture--cyber", "nom": "Cyber-espace Trentemoult", "date_maj": "2025-01-01",
     "adresse": "1 quai Surcouf", "code_postal": "44400", "code_insee": "44143", "commune": "Rezé",
     "latitude": 47.1955, "longitude": -1.5780},
    {"source": "fixture", "id": "fixture--cyber--numerique", "structure_id": "fixture--cyber",
     "nom": "Accès libre", "description": "Ordinateurs en accès libre.", "date_maj": "2025-01-01",
     "thematiques": ["numerique--acceder-a-des-services-en-ligne"]},
]
FOOD = "equipement-et-alimentation--alimentation"


def place_form(csrf: str, **changes) -> dict:
    """The form as a browser posts it: Tuesday and Thursday mornings, closed on public holidays."""
    data = {"csrf_token": csrf, "id": "", "corrects": "", "nom": "Restos du Cœur de Rezé", "thematiques": [FOOD],
            "adresse": "3 rue de la Paix", "commune": "44400", "position": "centre", "coordonnees": "",
            "telephone": "02 40 11 22 33", "site_web": "", "description": "Colis chaque semaine sur inscription.",
            "h1_o0": "09:00", "h1_c0": "12:00", "h3_o0": "09:00", "h3_c0": "12:00", "jours_feries": "off"}
    data.update(changes)
    return data


async def seed_shared(rt) -> None:
    """Two shared places (open data), through the importer, then the directory reloaded."""
    from directory.importer import import_records

    report = await import_records(rt.sessionmaker, [("fixture", [(f"ligne {i}", r) for i, r in enumerate(SHARED)])])
    assert not report.rejected and report.accepted == 4
    await rt.directory.refresh_once(rt.sessionmaker)


async def add_other_organisation(rt) -> None:
    from handoff.auth import hash_password
    from handoff.models import Organisation, Worker

    async with rt.sessionmaker() as session, session.begin():
        organisation = Organisation(slug="autre", name="Autre association")
        session.add(organisation)
        await session.flush()
        session.add(Worker(organisation_id=organisation.id, email=OTHER_ADMIN, password_hash=hash_password(PASSWORD),
                           first_name="Lou", is_admin=True))


async def as_admin(client, settings) -> str:
    response = await login(client, settings.demo_admin_email, settings.demo_worker_password)
    assert response.status_code == 303
    return csrf_of((await client.get("/admin/directory/new")).text)


def finder(rt):
    return rt.directory.directory


def names(rt, where: str, need: str, organisation: str | None) -> list[str]:
    return [card.name for card in finder(rt).find(where, need, organisation=organisation).places]


async def counts(rt) -> tuple[int, int, int]:
    from admin.audit import AuditEntry
    from directory.models import PlaceOverride, Structure

    async with rt.sessionmaker() as session:
        return (await session.scalar(select(func.count()).select_from(Structure)),
                await session.scalar(select(func.count()).select_from(PlaceOverride)),
                await session.scalar(select(func.count()).select_from(AuditEntry)))


def cli_near(settings, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ALLERVERS_DATABASE_URL=settings.database_url, ALLERVERS_DIRECTORY_AUTOLOAD="false")
    return subprocess.run([sys.executable, "-m", "allervers.cli", "places", "near", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# -- an organisation's own place ------------------------------------------------------------------


async def test_admin_adds_a_place_with_hours_found_by_the_cli_and_the_web_chat(settings_for):
    from directory.models import Structure

    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        await rt.directory.get()
        csrf = await as_admin(client, settings)
        form = await client.get("/admin/directory/new")
        assert form.status_code == 200 and "Lundi" in form.text and "Dimanche" in form.text
        assert "Alimentation" in form.text  # data·inclusion's thématiques with their French labels

        # A bad time is refused in French, naming the day; nothing is written.
        before = await counts(rt)
        refused = await client.post("/admin/directory/save", data=place_form(csrf, h3_c0="25:00"))
        assert refused.status_code == 422
        assert "Jeudi : « 25:00 » n&#39;est pas une heure" in refused.text
        closing_first = await client.post("/admin/directory/save", data=place_form(csrf, h1_o0="14:00"))
        assert closing_first.status_code == 422 and "Mardi : la fermeture (12:00) doit venir après" in closing_first.text
        assert await counts(rt) == before

        # The preview shows the OSM string and "ouvert maintenant ?" (nothing saved).
        preview = await client.post("/admin/directory/hours", data=place_form(csrf))
        assert "Tu,Th 09:00-12:00; PH off" in preview.text and "Ouvert maintenant ?" in preview.text

        started = time.perf_counter()
        saved = await client.post("/admin/directory/save", data=place_form(csrf))
        assert saved.status_code == 303, saved.text
        async with rt.sessionmaker() as session:
            place = (await session.execute(select(Structure).where(Structure.nom == "Restos du Cœur de Rezé"))).scalar_one()
        assert place.horaires_accueil == "Tu,Th 09:00-12:00; PH off"  # days and times -> OSM
        assert place.source == "organisation:demo" and place.id.startswith("organisation:demo--")
        assert place.origin == "organisation" and place.latitude is None and place.code_insee == "44143"
        assert place.date_maj.isoformat() >= "2026-01-01" or place.date_maj is not None

        # The change is announced: this process reloads at once (not at the next 60 s poll).
        await eventually(lambda: "Restos du Cœur de Rezé" in names(rt, "44400", "se-nourrir", "demo"), timeout=10)
        visible_after = time.perf_counter() - started
        print(f"\nplace change visible to the finder after {visible_after:.2f} s")
        card = finder(rt).find("44400", "se-nourrir", organisation="demo").places[0]
        assert card.approximate_location is True  # at its commune's centre: flagged, "environ … km"
        assert names(rt, "44400", "se-nourrir", None) == []  # not another organisation's people
        listing = await client.get("/admin/directory")
        assert "Restos du Cœur de Rezé" in listing.text and "position approximative" in listing.text

        # `allervers places near --organisation` finds it (a subprocess on the same database).
        near, without, unknown = await asyncio.gather(
            asyncio.to_thread(cli_near, settings, "44400", "--need", "se-nourrir", "--organisation", "demo"),
            asyncio.to_thread(cli_near, settings, "44400", "--need", "se-nourrir"),
            asyncio.to_thread(cli_near, settings, "44400", "--organisation", "nulle-part"))
        assert near.returncode == 0, near.stderr
        assert "Restos du Cœur de Rezé" in near.stdout and "ouvert maintenant" in near.stdout
        assert "Restos du Cœur de Rezé" not in without.stdout
        assert unknown.returncode == 2 and "organisation inconnue" in unknown.stderr

        # The places flow of the web chat (the demo organisation's) finds it, with its hours.
        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")
        await person.send(choice="lieux")
        await person.send(choice="se-nourrir")
        shown = text_of(await person.send("44400"))
        # Issue 14: at its commune's centre, it says "à Rezé (adresse à vérifier)", never a distance.
        assert "Restos du Cœur de Rezé — à Rezé (adresse à vérifier)" in shown

        # Editing it: the form shows the days and times back; a changed hour is what people see.
        edit = await client.get("/admin/directory/edit", params={"id": place.id})
        assert edit.status_code == 200 and 'value="09:00"' in edit.text
        changed = await client.post("/admin/directory/save", data=place_form(
            csrf, id=place.id, h1_o0="", h1_c0="", h3_o0="", h3_c0="", h5_o0="10:00", h5_c0="12:30",
            position="exacte", coordonnees="47.1801, -1.5502"))
        assert changed.status_code == 303
        async with rt.sessionmaker() as session:
            place = await session.get(Structure, place.id)
        assert place.horaires_accueil == "Sa 10:00-12:30; PH off" and place.latitude == pytest.approx(47.1801)
        await eventually(lambda: not finder(rt).find("44400", "se-nourrir", organisation="demo").places[0]
                         .approximate_location, timeout=30)  # 46,000 places reloaded (issue 14)

        from admin.audit import AuditEntry

        async with rt.sessionmaker() as session:
            actions = (await session.execute(select(AuditEntry.action).order_by(AuditEntry.id))).scalars().all()
        assert actions[-2:] == ["directory.place_added", "directory.place_updated"]


async def test_commune_by_name_with_a_choice_and_a_far_position_refused(settings_for):
    settings = settings_for()
    async with app_client(settings) as client:
        csrf = await as_admin(client, settings)
        ambiguous = await client.post("/admin/directory/save", data=place_form(csrf, commune="44190"))
        assert ambiguous.status_code == 422 and "Plusieurs communes correspondent" in ambiguous.text
        assert 'name="code_insee" value="44043"' in ambiguous.text  # Clisson offered
        unknown = await client.post("/admin/directory/save", data=place_form(csrf, commune="Zzyzx"))
        assert "Commune introuvable" in unknown.text
        at_sea = await client.post("/admin/directory/save", data=place_form(csrf, position="exacte",
                                                                             coordonnees="46.0, -4.5"))
        assert at_sea.status_code == 422 and "loin de toute commune" in at_sea.text
        chosen = await client.post("/admin/directory/save", data=place_form(csrf, commune="44190", code_insee="44043"))
        assert chosen.status_code == 303
        by_name = await client.post("/admin/directory/save", data=place_form(csrf, commune="st nazaire",
                                                                              nom="Épicerie solidaire"))
        assert by_name.status_code == 303


# -- hides and corrections of shared places ------------------------------------------------------------


async def test_hiding_and_correcting_a_shared_place_changes_only_that_organisation(settings_for):
    from directory.models import Structure

    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        await rt.directory.get()
        await add_other_organisation(rt)
        await seed_shared(rt)
        everyone = ["Médiathèque de Rezé", "Cyber-espace Trentemoult"]
        assert names(rt, "44400", "numerique", "demo") == everyone
        csrf = await as_admin(client, settings)

        search = await client.get("/admin/directory", params={"q": "rezé"})
        assert "Médiathèque de Rezé" in search.text and "Corriger" in search.text

        hidden = await client.post("/admin/directory/hide", data={"csrf_token": csrf, "id": "fixture--mediatheque"})
        assert hidden.status_code == 303
        await eventually(lambda: names(rt, "44400", "numerique", "demo") == ["Cyber-espace Trentemoult"], timeout=10)
        assert names(rt, "44400", "numerique", "autre") == everyone  # another organisation: unchanged
        assert names(rt, "44400", "numerique", None) == everyone
        near = await asyncio.to_thread(cli_near, settings, "44400", "--need", "numerique", "--organisation", "demo")
        assert "Médiathèque" not in near.stdout and "Cyber-espace" in near.stdout
        listing = await client.get("/admin/directory")
        assert "Masqués pour vos interlocuteurs" in listing.text and "Réafficher" in listing.text

        # Correcting the other one: its name and hours, for the demo organisation's people only.
        form = await client.get("/admin/directory/correct", params={"id": "fixture--cyber"})
        assert form.status_code == 200 and "Cyber-espace Trentemoult" in form.text
        corrected = await client.post("/admin/directory/save", data=place_form(
            csrf, corrects="fixture--cyber", nom="Cyber-espace (fermé le lundi)", thematiques=["numerique--acceder-a-des-services-en-ligne"],
            position="exacte", coordonnees="47.1955, -1.5780"))
        assert corrected.status_code == 303, corrected.text
        await eventually(lambda: names(rt, "44400", "numerique", "demo") == ["Cyber-espace (fermé le lundi)"], timeout=10)
        assert names(rt, "44400", "numerique", "autre") == everyone
        async with rt.sessionmaker() as session:
            shipped = await session.get(Structure, "fixture--cyber")
        assert shipped.nom == "Cyber-espace Trentemoult" and shipped.horaires_accueil is None  # shared data untouched

        # The web chat of the demo organisation sees the correction, not the hidden place.
        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")
        await person.send(choice="lieux")
        await person.send(choice="numerique")
        shown = text_of(await person.send("44400"))
        assert "Cyber-espace (fermé le lundi)" in shown and "Médiathèque" not in shown and "Trentemoult" not in shown

        # Another organisation's admin cannot touch these, nor see them.
        client.cookies.clear()
        assert (await login(client, OTHER_ADMIN, PASSWORD)).status_code == 303
        other_csrf = csrf_of((await client.get("/admin/directory/new")).text)
        other_listing = await client.get("/admin/directory")
        assert "Cyber-espace (fermé le lundi)" not in other_listing.text
        async with rt.sessionmaker() as session:
            replacement = (await session.execute(select(Structure.id).where(
                Structure.nom == "Cyber-espace (fermé le lundi)"))).scalar_one()
        before = await counts(rt)
        assert (await client.get("/admin/directory/edit", params={"id": replacement})).status_code == 404
        for path in ("/admin/directory/hide", "/admin/directory/show"):
            assert (await client.post(path, data={"csrf_token": other_csrf, "id": replacement})).status_code == 404
        assert (await client.post("/admin/directory/uncorrect", data={"csrf_token": other_csrf, "id": "fixture--cyber"})
                ).status_code == 404
        assert (await client.post("/admin/directory/save", data=place_form(other_csrf, id=replacement))).status_code == 404
        assert await counts(rt) == before

        # Back as the demo admin: show again, undo the correction.
        client.cookies.clear()
        csrf = await as_admin(client, settings)
        await client.post("/admin/directory/show", data={"csrf_token": csrf, "id": "fixture--mediatheque"})
        undone = await client.post("/admin/directory/uncorrect", data={"csrf_token": csrf, "id": "fixture--cyber"})
        assert undone.status_code == 303
        await eventually(lambda: names(rt, "44400", "numerique", "demo") == everyone, timeout=10)


# -- importing a file from the page ------------------------------------------------------------------


CSV_HEADER = "source,id,nom,date_maj,code_postal,commune,latitude,longitude,horaires_accueil\n"


async def test_csv_import_shows_progress_then_accepted_and_rejected_rows(settings_for):
    from directory.models import Structure

    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        await rt.directory.get()
        csrf = await as_admin(client, settings)
        page = await client.get("/admin/directory/import")
        assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text

        rows = [f"asso,asso--{n},Point d'accueil {n},2026-10-01,44400,Rezé,47.18,-1.55,Mo 09:00-12:00\n"
                for n in range(1, 4)]
        rows.insert(1, "asso,asso--bad-cp,Code postal faux,2026-10-01,4440,Rezé,47.18,-1.55,\n")  # ligne 3
        rows.append("asso,asso--bad-lat,Latitude fausse,2026-10-01,44400,Rezé,95,-1.55,\n")  # ligne 6
        rows.append("asso,asso--bad-date,Date fausse,hier,44400,Rezé,47.18,-1.55,\n")  # ligne 7
        content = (CSV_HEADER + "".join(rows)).encode()
        started = await client.post("/admin/directory/import", data={"csrf_token": csrf},
                                    files={"file": ("lieux.csv", content, "text/csv")})
        assert started.status_code == 303
        job_page = await client.get(started.headers["location"])
        assert job_page.status_code == 200 and "lieux.csv" in job_page.text
        if "Import terminé" not in job_page.text:  # a small file may already be done
            assert 'hx-trigger="every 1s"' in job_page.text and "<progress" in job_page.text  # polling while it runs

        progress_url = started.headers["location"] + "/progress"
        result = await until_finished(client, progress_url)
        assert 'hx-trigger' not in result  # finished: the polling stops
        assert "Import terminé" in result and "3 enregistrements acceptés, 3 refusés" in result
        assert "ligne 3" in result and "asso--bad-cp" in result and "code_postal" in result
        assert "ligne 6" in result and "latitude" in result and "hors limites" in result
        assert "ligne 7" in result and "date non valide" in result
        async with rt.sessionmaker() as session:
            imported = (await session.execute(select(Structure.id, Structure.source).where(
                Structure.nom.like("Point d'accueil %")))).all()
        assert sorted(imported) == [(f"organisation:demo--asso--{n}", "organisation:demo") for n in range(1, 4)]

        # Unreadable files: refused in French, nothing imported.
        before = await counts(rt)
        for name, body, message in (("lieux.pdf", b"%PDF", "Format non reconnu"), ("vide.csv", b"", "vide")):
            refused = await client.post("/admin/directory/import", data={"csrf_token": csrf},
                                        files={"file": (name, body, "application/octet-stream")})
            assert refused.status_code == 400 and message in refused.text
        bad = await client.post("/admin/directory/import", data={"csrf_token": csrf},
                                files={"file": ("manque.csv", b"source,nom\nx,y\n", "text/csv")})
        failed = await until_finished(client, bad.headers["location"] + "/progress")
        assert "Rien n'a été importé" in failed and "colonnes manquantes" in failed and "manque.csv" in failed
        assert (await counts(rt))[:2] == before[:2]


async def until_finished(client, url: str, timeout: float = 30) -> str:
    """Poll the progress fragment (as the page does, faster) until the result replaces it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(url)
        assert response.status_code == 200
        if "hx-trigger" not in response.text:
            return response.text
        await asyncio.sleep(0.05)
    raise AssertionError("the import did not finish")


async def test_import_json_of_structures_and_services(settings_for, tmp_path):
    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        await rt.directory.get()
        csrf = await as_admin(client, settings)
        body = json.dumps({"structures": [dict(SHARED[0], id="local--1", source="local")],
                           "services": [dict(SHARED[1], id="local--1--s", structure_id="local--1", source="local",
                                             thematiques=[FOOD])]}).encode()
        started = await client.post("/admin/directory/import", data={"csrf_token": csrf},
                                    files={"file": ("lieux.json", body, "application/json")})
        result = await until_finished(client, started.headers["location"] + "/progress")
        assert "2 enregistrements acceptés, 0 refusé" in result
        await eventually(lambda: names(rt, "44400", "se-nourrir", "demo") == ["Médiathèque de Rezé"], timeout=10)

        # The CLI imports for an organisation the same way (one implementation).
        from directory.models import Structure

        upload = tmp_path / "cli.csv"
        upload.write_text(CSV_HEADER + "asso,asso--cli,Permanence CLI,2026-10-01,44400,Rezé,47.18,-1.55,\n",
                          encoding="utf-8")
        env = dict(os.environ, ALLERVERS_DATABASE_URL=settings.database_url)
        run = lambda *args: subprocess.run([sys.executable, "-m", "allervers.cli", "places", "import", *args],  # noqa: E731
                                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        done, unknown = await asyncio.gather(asyncio.to_thread(run, "--organisation", "demo", str(upload)),
                                             asyncio.to_thread(run, "--organisation", "nulle-part", str(upload)))
        assert done.returncode == 0, done.stderr
        assert unknown.returncode == 2 and "organisation inconnue" in unknown.stderr
        async with rt.sessionmaker() as session:
            cli_place = await session.get(Structure, "organisation:demo--asso--cli")
        assert cli_place is not None and cli_place.source == "organisation:demo" and cli_place.origin == "organisation"


# -- who may use the room ------------------------------------------------------------------------


GETS = ["/admin/directory", "/admin/directory/new", "/admin/directory/import", "/admin/directory/edit?id=x",
        "/admin/directory/correct?id=fixture--cyber", "/admin/directory/import/nope",
        "/admin/directory/import/nope/progress"]
POSTS = ["/admin/directory/save", "/admin/directory/hours", "/admin/directory/hide", "/admin/directory/show",
         "/admin/directory/uncorrect", "/admin/directory/import"]


async def test_every_directory_route_refuses_anonymous_workers_and_missing_csrf(settings_for):
    settings = settings_for()
    async with app_client(settings) as client:
        rt = client.app.state.rt
        await rt.directory.get()
        await seed_shared(rt)
        before = await counts(rt)
        for path in GETS:
            assert (await client.get(path)).status_code == 303, path  # anonymous: to the login page
            assert (await client.get(path, headers={"HX-Request": "true"})).status_code == 401, path
        for path in POSTS:
            assert (await client.post(path, data={"id": "fixture--cyber"})).status_code in (303, 401), path

        # A worker (not an admin): 403 everywhere, with or without the CSRF token.
        assert (await login(client, settings.demo_worker_email, settings.demo_worker_password)).status_code == 303
        csrf = csrf_of((await client.get("/inbox")).text)
        for path in GETS:
            assert (await client.get(path)).status_code == 403, path
        for path in POSTS:
            assert (await client.post(path, data=place_form(csrf, id="fixture--cyber"))).status_code == 403, path

        # An admin without the CSRF token: 403, nothing changed.
        client.cookies.clear()
        await as_admin(client, settings)
        for path in POSTS:
            response = await client.post(path, data=place_form("wrong", id="fixture--cyber"),
                                         files={"file": ("x.csv", b"source,id,nom,date_maj\n", "text/csv")}
                                         if path.endswith("import") else None)
            assert response.status_code == 403, path
        assert await counts(rt) == before


async def test_a_place_change_reaches_another_process_at_once_through_redis(settings_for, backend):
    """Two apps on one database and one Redis (as two servers): the polling is off (an hour), yet
    the second one's finder sees the first one's change within seconds (the announcement)."""
    from tests.conftest import REDIS_URL

    if backend != "postgres" or not REDIS_URL:
        pytest.skip("across processes: PostgreSQL + Redis (SQLite runs one process; its servers poll)")
    settings = settings_for(directory_refresh_seconds=3600)
    async with app_client(settings) as first, app_client(settings) as second:
        other = second.app.state.rt
        await first.app.state.rt.directory.get()
        await other.directory.get()
        await asyncio.sleep(0.3)  # both listeners subscribed
        csrf = await as_admin(first, settings)
        started = time.perf_counter()
        assert (await first.post("/admin/directory/save", data=place_form(csrf))).status_code == 303
        await eventually(lambda: "Restos du Cœur de Rezé" in names(other, "44400", "se-nourrir", "demo"), timeout=10)
        print(f"\nplace change visible to another process's finder after {time.perf_counter() - started:.2f} s")
