"""`allervers places ...` as subprocesses, on the database built once with the shipped data."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(database_url, *args):
    env = dict(os.environ, ALLERVERS_DATABASE_URL=database_url)
    return subprocess.run([sys.executable, "-m", "allervers.cli", "places", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_near_json(shipped_database_url):
    done = run(shipped_database_url, "near", "44400", "--need", "demarches-et-droits", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["commune"]["code_insee"] == "44143"
    assert "France services de Rezé" in [place["name"] for place in answer["places"]]
    assert answer["radius_km"] == 10


def test_import_then_near_finds_an_admin_place(tmp_path, shipped_database_url):
    shutil.copy(shipped_database_url.split("///", 1)[1], tmp_path / "cli.db")  # already loaded: faster
    database_url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    places = tmp_path / "restos.jsonl"
    places.write_text(
        json.dumps({"source": "asso", "id": "asso--1", "nom": "Restos du Cœur de Rezé", "date_maj": "2026-10-01",
                    "latitude": 47.18, "longitude": -1.55, "horaires_accueil": "Tu,Th 09:00-12:00"}) + "\n"
        + json.dumps({"source": "asso", "id": "asso--1--colis", "structure_id": "asso--1", "nom": "Colis",
                      "description": "Colis alimentaires chaque semaine.", "date_maj": "2026-10-01",
                      "thematiques": ["equipement-et-alimentation--alimentation"]}) + "\n"
        + json.dumps({"source": "asso", "id": "asso--2", "nom": "x", "date_maj": "2026-10-01"}) + "\n",
        encoding="utf-8",
    )
    done = run(database_url, "import", "--admin", str(places))
    assert done.returncode == 1  # one record rejected
    assert "structures : 1 créées" in done.stdout and "asso--2" in done.stdout and "nom" in done.stdout

    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    done = run(database_url, "import", str(places), str(broken))
    assert done.returncode == 2 and "rien n'a été importé" in done.stderr

    done = run(database_url, "near", "Rezé", "--need", "se-nourrir", "--limit", "3")
    assert done.returncode == 0, done.stderr
    assert "commune : Rezé (44143" in done.stdout and "asso--1 | Restos du Cœur de Rezé" in done.stdout


def test_unknown_need(shipped_database_url):
    done = run(shipped_database_url, "near", "44400", "--need", "licornes")
    assert done.returncode == 2 and "besoin inconnu" in done.stderr
