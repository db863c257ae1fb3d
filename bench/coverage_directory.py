"""Coverage of the shipped directory: places per need within 10 and 30 km of 20 communes,
before issue 14 (France services + médiation numérique) and after (+ mairies, Entourage, annuaire 2019).

    .venv/bin/python bench/coverage_directory.py

Reads the shipped files directly (no database), builds the places as the loader does (approximate
positions at the commune centre, duplicates merged) and counts, for each need, the places whose
services match it (specific or generic), by distance from the commune's centre. "sans mairie": the
count without the mairies (which answer "Argent, dettes" and "Démarches et droits").
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMMUNES = [
    ("75056", "Paris"), ("69123", "Lyon"), ("13055", "Marseille"), ("33063", "Bordeaux"), ("44109", "Nantes"),
    ("35238", "Rennes"), ("37261", "Tours"), ("30189", "Nîmes"), ("59350", "Lille"), ("67482", "Strasbourg"),
    ("44143", "Rezé"), ("22113", "Lannion"), ("49099", "Cholet"), ("15120", "Mauriac"), ("23096", "Guéret"),
    ("48095", "Mende"), ("04070", "Digne-les-Bains"), ("42207", "Saint-Bonnet-le-Château"), ("72264", "Sablé-sur-Sarthe"),
    ("32013", "Auch"),
]
NEEDS = ["se-nourrir", "dormir-ce-soir", "sante-soins", "demarches-et-droits", "numerique", "emploi", "famille",
         "argent", "se-loger", "violences"]
SHORT = {"se-nourrir": "manger", "dormir-ce-soir": "dormir", "sante-soins": "soins", "demarches-et-droits": "démarches",
         "numerique": "numérique", "emploi": "emploi", "famille": "famille", "argent": "argent", "se-loger": "logement",
         "violences": "violences"}


def build(paths, communes):
    from directory.importer import read_records
    from directory.places import _build_places

    structures, services = [], []
    for path in paths:
        for _location, record in read_records(path):
            (services if "structure_id" in record else structures).append(record)
    service_rows = [SimpleNamespace(structure_id=s["structure_id"], nom=s["nom"], thematiques=s.get("thematiques") or [],
                                    latitude=s.get("latitude"), longitude=s.get("longitude"),
                                    telephone=s.get("telephone"), horaires_accueil=s.get("horaires_accueil"))
                    for s in services]
    structure_rows = [SimpleNamespace(
        id=s["id"], nom=s["nom"], adresse=s.get("adresse"), complement_adresse=s.get("complement_adresse"),
        code_postal=s.get("code_postal"), code_insee=s.get("code_insee"), commune=s.get("commune"),
        latitude=s.get("latitude"), longitude=s.get("longitude"), telephone=s.get("telephone"),
        horaires_accueil=s.get("horaires_accueil"), origin="open-data", source=s["source"],
        date_maj=None, siret=s.get("siret")) for s in structures]
    places, _left_out = _build_places(service_rows, structure_rows, communes)
    return places


def counts(index, commune, need, km):
    import numpy as np

    from directory.needs import resolve_need

    subset = index._subset(resolve_need(need))
    lat, lon = np.radians(commune.latitude), np.radians(commune.longitude)
    candidates, _ = index._within(subset, commune.latitude, commune.longitude, lat, lon, np.cos(lat), km)
    mairies = sum(1 for i in candidates if index.places[subset.positions[i]].kind == "mairie")
    return len(candidates), len(candidates) - mairies


def main() -> int:
    from directory.finder import shipped_communes
    from directory.importer import SHIPPED_FILES, SHIPPED_SOURCES
    from directory.places import PlaceIndex

    communes = shipped_communes()
    before = PlaceIndex(build(SHIPPED_FILES, communes))
    after = PlaceIndex(build(list(SHIPPED_FILES) + [path for _, path in SHIPPED_SOURCES], communes))
    print(f"places indexed: before {len(before)}, after {len(after)}")
    print()
    header = "| commune | km | " + " | ".join(SHORT[need] for need in NEEDS) + " |"
    print(header)
    print("|" + " --- |" * (len(NEEDS) + 2))
    for code, label in COMMUNES:
        commune = communes.get(code)
        if commune is None or not commune.has_position:
            continue
        for km in (10, 30):
            cells = []
            for need in NEEDS:
                old, _ = counts(before, commune, need, km)
                new, without = counts(after, commune, need, km)
                cell = f"{old} → {new}"
                if new != without:
                    cell += f" ({without})"
                cells.append(cell)
            print(f"| {label} ({commune.departement}) | {km} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
