"""Directory benchmark: prints figures (not a test).

    python bench/bench_directory.py [--places 100000] [--queries 5000] [--postgres URL]

- first-run import of the shipped data (9,039 structures + 9,039 services) into a fresh SQLite
  file (and PostgreSQL with --postgres URL: its public schema is dropped and recreated);
- nearest places by need over the real places plus synthetic ones (100,000 in all): p50/p99;
- index memory (numpy arrays, and everything the index holds, measured with tracemalloc);
- commune resolution from free text over a mix of inputs: p50/p99;
- find_places end to end (resolution + search + opening hours), p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernel.database import make_engine, make_sessionmaker  # noqa: E402
from allervers.migrate import upgrade  # noqa: E402


def timed(function, *args, **kwargs):
    """(wall seconds, CPU seconds of this thread, result): the machine may be shared, CPU time
    excludes the time other processes held the cores."""
    wall, cpu = time.perf_counter(), time.thread_time()
    result = function(*args, **kwargs)
    return time.perf_counter() - wall, time.thread_time() - cpu, result


def percentiles(durations: list[float]) -> str:
    durations = sorted(durations)
    pick = lambda q: durations[min(int(len(durations) * q), len(durations) - 1)] * 1000  # noqa: E731
    return f"p50 {pick(0.5):.3f} ms, p99 {pick(0.99):.3f} ms, max {durations[-1] * 1000:.3f} ms (n={len(durations)})"


async def first_run(url: str):
    from directory.importer import ensure_loaded

    engine = make_engine(url)
    if url.startswith("postgresql"):
        from sqlalchemy import text

        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    sessionmaker = make_sessionmaker(engine)
    start = time.perf_counter()
    report = await ensure_loaded(sessionmaker)
    elapsed = time.perf_counter() - start
    from directory.places import load_places
    from directory.finder import shipped_communes

    start = time.perf_counter()
    places, left_out = await load_places(sessionmaker, shipped_communes())
    load_elapsed = time.perf_counter() - start
    await engine.dispose()
    return elapsed, report, places, left_out, load_elapsed


def synthetic_places(real, communes, count: int, rng: random.Random):
    from directory.places import Place

    weighted = [c for c in communes.communes if c.has_position and c.population > 0]
    weights = [c.population for c in weighted]
    thematique_sets = [p.thematiques for p in real if p.thematiques]
    extra = [
        frozenset({"equipement-et-alimentation--alimentation"}),
        frozenset({"logement-hebergement--rechercher-une-solution-dhebergement-temporaire"}),
        frozenset({"sante--acces-aux-soins", "sante--sante-mentale"}),
        frozenset({"trouver-un-emploi--repondre-a-des-offres-demploi", "se-former--trouver-sa-formation"}),
        frozenset({"famille--soutien-a-la-parentalite-et-a-leducation"}),
    ]
    chosen = rng.choices(weighted, weights=weights, k=count)
    places = []
    for number, commune in enumerate(chosen):
        thematiques = rng.choice(thematique_sets) if rng.random() < 0.6 else rng.choice(extra)
        places.append(
            Place(
                id=f"synthetic--{number}",
                name=f"Lieu {number}",
                latitude=commune.latitude + rng.uniform(-0.03, 0.03),
                longitude=commune.longitude + rng.uniform(-0.04, 0.04),
                thematiques=thematiques,
                address=f"{rng.randint(1, 99)} rue de la Mairie, {commune.postcodes[0] if commune.postcodes else ''} {commune.name}",
                phone="01 23 45 67 89",
                hours="Mo-Fr 09:00-12:00,14:00-17:00; PH off",
            )
        )
    return places


def commune_inputs(communes, count: int, rng: random.Random) -> list[str]:
    from directory.communes import normalize_name

    located = [c for c in communes.communes if c.postcodes]
    big = sorted(located, key=lambda c: -c.population)[:2000]
    inputs = []
    while len(inputs) < count:
        commune = rng.choice(big if rng.random() < 0.7 else located)
        kind = rng.randrange(8)
        name = commune.name
        if kind == 0:
            inputs.append(rng.choice(commune.postcodes))
        elif kind == 1:
            inputs.append(name)
        elif kind == 2:
            inputs.append(normalize_name(name))  # no accents, no hyphens
        elif kind == 3:
            inputs.append(name.lower().replace("saint-", "st ").replace("sainte-", "ste "))
        elif kind == 4 and len(name) > 5:  # one typo
            position = rng.randrange(1, len(name))
            inputs.append(name[:position] + rng.choice("aeiourstn") + name[position + 1 :])
        elif kind == 5:
            inputs.append(f"{commune.postcodes[0]} {name}")
        elif kind == 6:
            inputs.append(f"je suis à {name}")
        else:
            inputs.append(rng.choice(["xyzzy", "bonjour", "qwertyuiop", "je ne sais pas", "99999", "aide svp"]))
    return inputs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--places", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=5_000)
    parser.add_argument("--postgres", default=None, help="also time the first-run import on this PostgreSQL URL")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    start = time.perf_counter()
    from directory.finder import Directory, find_places, shipped_communes
    from directory.needs import NEEDS

    communes = shipped_communes()
    print(f"communes index: {len(communes.communes)} communes + {len(communes.arrondissements)} arrondissements, "
          f"built in {time.perf_counter() - start:.2f} s (imports included)")

    with tempfile.TemporaryDirectory() as folder:
        elapsed, report, real, left_out, load_elapsed = asyncio.run(first_run(f"sqlite+aiosqlite:///{folder}/bench.db"))
    print(f"first-run import (SQLite): {elapsed:.2f} s for {report.structures_created} structures + "
          f"{report.services_created} services")
    print(f"places loaded from the database: {len(real)} in {load_elapsed:.2f} s ({left_out} without any position)")
    if args.postgres:
        elapsed, report, *_ = asyncio.run(first_run(args.postgres))
        print(f"first-run import (PostgreSQL): {elapsed:.2f} s for {report.structures_created} + {report.services_created}")

    synthetic = synthetic_places(real, communes, max(args.places - len(real), 0), rng)
    all_places = real + synthetic
    tracemalloc.start()
    start = time.perf_counter()
    from directory.places import PlaceIndex

    index = PlaceIndex(all_places)
    build = time.perf_counter() - start
    index_bytes, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    directory = Directory(communes, index)
    print(f"places index: {len(index)} places ({len(real)} real, {len(synthetic)} synthetic), built in {build:.2f} s")
    print(f"index memory: numpy arrays {index.array_bytes / 1e6:.1f} MB; arrays + sorted list, traced while building "
          f"{index_bytes / 1e6:.1f} MB (the Place objects themselves, built before, not counted)")
    tracemalloc.start()
    more = synthetic_places(real, communes, 10_000, random.Random(1))
    per_place = tracemalloc.get_traced_memory()[0] / len(more)
    tracemalloc.stop()
    del more
    print(f"Place objects: about {per_place:.0f} bytes each (synthetic), {per_place * len(index) / 1e6:.0f} MB for {len(index)}")

    gc.collect()
    gc.freeze()  # as the app does after start-up: the 100,000 Place objects leave the GC's scans

    def measure(label, calls):
        walls, cpus = [], []
        for function, call_args, call_kwargs in calls:
            wall, cpu, _ = timed(function, *call_args, **call_kwargs)
            walls.append(wall)
            cpus.append(cpu)
        print(f"{label}:\n  wall {percentiles(walls)}\n  CPU  {percentiles(cpus)}")

    needs = [None] + [need for need in NEEDS]
    points = [c for c in communes.communes if c.has_position and c.population > 0]
    weights = [c.population for c in points]
    queries = [(rng.choices(points, weights=weights)[0], rng.choice(needs)) for _ in range(args.queries)]
    for commune, need in queries[:200]:  # warm-up
        index.nearest(commune.latitude, commune.longitude, need)
    radii = {}
    for commune, need in queries:
        radius = index.nearest(commune.latitude, commune.longitude, need, limit=5).radius_km
        radii[radius] = radii.get(radius, 0) + 1
    measure(
        f"nearest by need over {len(index)} places (limit 5)",
        [(index.nearest, (c.latitude, c.longitude, need), {"limit": 5}) for c, need in queries],
    )
    print("  radius used: " + ", ".join(f"{r:g} km: {n}" for r, n in sorted(radii.items())))
    measure(
        "nearest, 'voir plus' (offset 5)",
        [(index.nearest, (c.latitude, c.longitude, need), {"limit": 5, "offset": 5}) for c, need in queries[:1000]],
    )

    inputs = commune_inputs(communes, args.queries, rng)
    for text in inputs[:200]:
        communes.resolve(text)
    outcomes = {"one": 0, "choice": 0, "unknown": 0}
    for text in inputs:
        resolution = communes.resolve(text)
        outcomes["one" if resolution.commune else "choice" if resolution.candidates else "unknown"] += 1
    measure("commune resolution from free text", [(communes.resolve, (text,), {}) for text in inputs])
    print("  inputs: postcodes, names, without accents, St/Ste, one typo, 'postcode name', 'je suis à ...', junk")
    print(f"  outcomes: {outcomes}")
    positions = []
    for _ in range(2000):
        commune = rng.choice(points)
        positions.append((commune.latitude + rng.uniform(-0.05, 0.05), commune.longitude + rng.uniform(-0.05, 0.05)))
    measure("nearest commune from a position", [(communes.nearest, position, {}) for position in positions])
    measure(
        "find_places end to end (resolution, search, opening hours of 5 places)",
        [
            (find_places, (directory, text, rng.choice(["demarches-et-droits", "numerique", "se-nourrir", "sante"])), {})
            for text in inputs[:1000]
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
