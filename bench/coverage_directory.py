"""Coverage of the shipped directory: places per need within 10 and 30 km of 20 communes, before
(a git ref, default `main`: its code and its shipped files) and after (this checkout).

    .venv/bin/python bench/coverage_directory.py [--before main]

Reads the shipped files directly (no database), builds the places as the loader does (approximate
positions at the commune centre, duplicates merged) and counts, for each need, the places that
match it (specific or generic), by distance from the commune's centre (its own centre for
Paris/Lyon/Marseille as a whole). In brackets: the count without the mairies (which answer
"Argent, dettes", "Démarches et droits"). "—": the need does not exist on that side. The "before"
side runs this script's counting in a child process on `git archive <ref>` (its own code and data).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]

# Large cities (the five Entourage cities among them), middle towns, rural communes of five départements.
COMMUNES = [
    ("75056", "large"), ("69123", "large"), ("13055", "large"), ("33063", "large"), ("44109", "large"),
    ("35238", "large"), ("37261", "large"), ("30189", "large"), ("59350", "large"), ("67482", "large"),
    ("44143", "middle"), ("49099", "middle"), ("22113", "middle"), ("23096", "middle"), ("32013", "middle"),
    ("15120", "rural"), ("42204", "rural"), ("69018", "rural"), ("33036", "rural"), ("29081", "rural"),
]
NEEDS = ["se-nourrir", "dormir-ce-soir", "se-laver", "sante-soins", "demarches-et-droits", "numerique", "emploi",
         "famille", "argent", "se-loger", "violences"]
SHORT = {"se-nourrir": "manger", "dormir-ce-soir": "dormir", "se-laver": "se laver", "sante-soins": "soins",
         "demarches-et-droits": "démarches", "numerique": "numérique", "emploi": "emploi", "famille": "famille",
         "argent": "argent", "se-loger": "logement", "violences": "violences"}
KMS = (10, 30)


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


def _within(index, need, latitude, longitude, km):
    import numpy as np

    subset = index._subset(need)
    lat, lon = np.radians(latitude), np.radians(longitude)
    candidates, _ = index._within(subset, latitude, longitude, lat, lon, np.cos(lat), km)
    return [index.places[subset.positions[i]] for i in candidates]


def counts() -> dict:
    """The counts of the code and data importable from sys.path (this checkout, or a snapshot)."""
    from directory.finder import shipped_communes
    from directory.importer import SHIPPED_FILES, SHIPPED_SOURCES
    from directory.needs import UnknownNeed, resolve_need
    from directory.places import PlaceIndex

    communes = shipped_communes()
    index = PlaceIndex(build(list(SHIPPED_FILES) + [path for _, path in SHIPPED_SOURCES], communes))
    needs = {}
    for need in NEEDS:
        try:
            needs[need] = resolve_need(need)
        except UnknownNeed:
            needs[need] = None  # not a need on this side
    rows, by_source = {}, {}
    for code, _size in COMMUNES:
        commune = communes.get(code)
        if commune is None or not commune.has_position:
            continue
        rows[code] = {"name": commune.name, "departement": commune.departement, "population": commune.population}
        for km in KMS:
            cells = {}
            for need, resolved in needs.items():
                if resolved is None:
                    cells[need] = None
                    continue
                found = _within(index, resolved, commune.latitude, commune.longitude, km)
                cells[need] = [len(found), sum(1 for p in found if p.kind != "mairie")]
                if km == KMS[0]:
                    for place in found:
                        for source in (place.sources or (place.source,)):
                            family = _family(source)
                            by_source.setdefault(need, {}).setdefault(family, 0)
                            by_source[need][family] += 1
            rows[code][str(km)] = cells
    return {"indexed": len(index), "rows": rows, "by_source": by_source}


def _family(source: str | None) -> str:
    """Sources grouped as the docs name them."""
    if source in ("dila-mairies", "entourage", "dila-annuaire-2019"):
        return source
    return "france-services + médiation numérique"


def _cell(old, new) -> str:
    def one(value, brackets):
        if value is None:
            return "—"
        return f"{value[0]}" + (f" ({value[1]})" if brackets and value[1] != value[0] else "")

    return f"{one(old, False)} → {one(new, True)}"


def snapshot_counts(ref: str) -> dict:
    """`counts()` of `ref`'s code and shipped files (git archive into a temporary folder)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "allervers", "directory", "words"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--counts-of", folder],
                              check=True, capture_output=True, text=True, cwd=folder)
    return json.loads(done.stdout)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--counts-of"]:
        sys.path.insert(0, argv[1])
        print(json.dumps(counts()))
        return 0
    ref = argv[argv.index("--before") + 1] if "--before" in argv else "main"
    before = snapshot_counts(ref)
    sys.path.insert(0, str(ROOT))
    after = counts()
    print(f"before = {ref} ({before['indexed']} places indexed), after = this checkout ({after['indexed']})")
    print()
    print("| commune | km | " + " | ".join(SHORT[need] for need in NEEDS) + " |")
    print("|" + " --- |" * (len(NEEDS) + 2))
    for code, size in COMMUNES:
        if code not in after["rows"]:
            continue
        row = after["rows"][code]
        population = f"{row['population']:,}".replace(",", " ")
        label = f"{row['name']} ({row['departement']}, {size}, {population} hab.)"
        for km in KMS:
            old_cells = before["rows"].get(code, {}).get(str(km), {})
            cells = [_cell(old_cells.get(need), row[str(km)][need]) for need in NEEDS]
            print(f"| {label} | {km} | " + " | ".join(cells) + " |")
    print()
    print("Places within 10 km of the 20 communes, summed, by source (after; a merged place counts for each source):")
    print()
    families = sorted({family for counts_ in after["by_source"].values() for family in counts_})
    print("| need | " + " | ".join(families) + " |")
    print("|" + " --- |" * (len(families) + 1))
    for need in NEEDS:
        found = after["by_source"].get(need, {})
        print(f"| {SHORT[need]} | " + " | ".join(str(found.get(family, 0)) for family in families) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
