"""A running server sees places imported with `allervers places import` (another process) without a
restart; a broken import changes nothing for it.

The real app (its own first-run import of the shipped data, its background polling every 0.2 s)
asked through the web chat API; the CLI run as a subprocess on the same database. SQLite, and
PostgreSQL + Redis when configured.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import app_client, eventually
from tests.webchat import Person, text_of, values

ROOT = Path(__file__).resolve().parents[2]
RESTOS = "Restos du Cœur de Rezé"


def restos_files(tmp_path: Path) -> tuple[Path, Path]:
    """The admin's CSV pair of docs/directory.md (a food-aid place in Rezé)."""
    structures = tmp_path / "restos_structures.csv"
    structures.write_text(
        "source,id,nom,date_maj,adresse,code_postal,commune,latitude,longitude,telephone,horaires_accueil\n"
        f'asso-locale,asso-locale--1,{RESTOS},2026-10-01,3 rue de la Paix,44400,Rezé,47.18,-1.55,'
        '02 40 11 22 33,"Tu,Th 09:00-12:00; PH off"\n', encoding="utf-8")
    services = tmp_path / "restos_services.csv"
    services.write_text(
        "source,id,structure_id,nom,description,date_maj,thematiques,frais\n"
        "asso-locale,asso-locale--1--colis,asso-locale--1,Colis alimentaires,"
        "Colis chaque semaine sur inscription.,2026-10-01,equipement-et-alimentation--alimentation,gratuit\n",
        encoding="utf-8")
    return structures, services


async def places_import(database_url: str, *files: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLERVERS_")}
    env["ALLERVERS_DATABASE_URL"] = database_url
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "allervers.cli", "places", "import", "--admin", *map(str, files)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


async def food_near_reze(person: Person, first: bool = False) -> str:
    if first:
        await person.send("/start")
        await person.send(choice="oui")
        await person.send(choice="lieux")
        await person.send(choice="se-nourrir")
    else:
        asked = await person.send(choice="ailleurs")  # "🔁 Autre endroit": the same need, asked again
        assert "Où êtes-vous" in text_of(asked) or "code postal" in text_of(asked)
    return text_of(await person.send("Rezé"))


async def test_an_import_from_the_cli_is_seen_by_the_running_server_a_broken_one_changes_nothing(
        settings_for, tmp_path):
    settings = settings_for(directory_autoload=True, directory_refresh_seconds=0.2)
    structures, services = restos_files(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")

    async with app_client(settings) as client:
        live = client.app.state.rt.directory
        person = Person(client)
        before = await food_near_reze(person, first=True)  # waits for the app's first-run import
        assert "Je n'ai pas trouvé de lieu pour « Se nourrir » à moins de 30 km" in before and RESTOS not in before  # issue 14
        assert live.ready and len(live.directory.places) > 1000  # the test territories (tests/conftest.py)
        loaded, revision = live.directory, live.revision

        # A broken file: the CLI imports nothing, the server keeps its places and rebuilds nothing.
        done = await places_import(settings.database_url, structures, services, broken)
        assert done.returncode == 2 and "rien n'a été importé" in done.stderr
        await asyncio.sleep(1.0)  # five polls
        assert live.directory is loaded and live.revision == revision and live.reloads == 0
        still = await food_near_reze(person)
        assert "Je n'ai pas trouvé de lieu pour « Se nourrir » à moins de 30 km" in still and RESTOS not in still

        # The same files without the broken one: imported, then seen without a restart.
        done = await places_import(settings.database_url, structures, services)
        assert done.returncode == 0, done.stderr
        assert "structures : 1 créées" in done.stdout and f"révision {revision + 1}" in done.stdout
        imported = time.monotonic()
        await eventually(lambda: live.directory is not loaded, timeout=60, interval=0.05)
        seen_after = time.monotonic() - imported
        print(f"\nreload of {len(live.directory.places)} places: {live.reload_seconds:.2f} s "
              f"(seen {seen_after:.2f} s after the CLI ended; backend {settings.database_url.split(':')[0]})")
        assert live.revision == revision + 1 and live.reloads == 1

        after = await food_near_reze(person)
        assert f"1. {RESTOS}" in after and "3 rue de la Paix" in after and "+33 2 40 11 22 33" in after
        assert "parler" in values((await person.bot_lines())[-1])
        # The old index was not touched: a search that had started with it answers as before.
        assert not [card for card in loaded.find("Rezé", "se-nourrir").places if card.name == RESTOS]

        polling = live.refresher
        assert polling is not None and not polling.done()
    assert polling.done() and live.refresher is None  # stopped by the app's shutdown
