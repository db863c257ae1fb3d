"""`allervers places import FILE... [--admin] [--progress]` and
`allervers places near TEXT --need NEED [--organisation SLUG]`.

Imported for every `allervers` command: only argparse at module level.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="places_command", required=True)

    importing = commands.add_parser(
        "import",
        help="import data·inclusion v1 structures and services (JSON, JSONL, CSV, .gz)",
        description="Valide chaque enregistrement (data-inclusion-schema) puis écrit tout en une transaction. "
        "Un fichier illisible n'importe rien. Réimporter met à jour.",
    )
    importing.add_argument("files", nargs="+", metavar="FILE")
    importing.add_argument("--admin", action="store_true", help="places added by admins (not open data)")
    importing.add_argument("--progress", action="store_true", help="show a progress bar (default: on a terminal)")
    importing.add_argument("--organisation", metavar="SLUG", default=None,
                           help="the records become this organisation's own places (as an import from its console)")

    near = commands.add_parser("near", help="resolve a commune and list the nearest places for a need")
    near.add_argument("where", metavar="TEXT", help='postcode, commune name, "insee:44143" or "lat,lon"')
    near.add_argument("--need", default=None, help="need id, data·inclusion catégorie or thématique")
    near.add_argument("--limit", type=int, default=5)
    near.add_argument("--offset", type=int, default=0)
    near.add_argument("--json", action="store_true", help="print the answer as JSON")
    near.add_argument("--text", action="store_true", help="print the messages the bot would send")
    near.add_argument("--organisation", metavar="SLUG", default=None,
                      help="what this organisation's people see: its own places, its hides and corrections")

    commands.add_parser("needs", help="list the needs and their data·inclusion thématiques")


def run(args: argparse.Namespace) -> int:
    if args.places_command == "needs":
        return _needs()
    return asyncio.run(_import(args) if args.places_command == "import" else _near(args))


async def _database():
    from kernel.database import make_engine, make_sessionmaker
    from allervers.migrate import upgrade
    from kernel.settings import Settings

    engine = make_engine(Settings().database_url)
    await upgrade(engine)
    return engine, make_sessionmaker(engine)


async def _import(args) -> int:
    from kernel.settings import Settings
    from directory.importer import ImportFileError, ensure_loaded, import_files
    from directory.models import ORIGIN_ADMIN, ORIGIN_OPEN_DATA

    engine, sessionmaker = await _database()
    try:
        if args.organisation and not await _organisation_exists(sessionmaker, args.organisation):
            print(f"organisation inconnue : {args.organisation}", file=sys.stderr)
            return 2
        await ensure_loaded(sessionmaker, progress=args.progress or None,
                            departements=Settings().shipped_departements)
        report = await import_files(
            sessionmaker,
            args.files,
            origin=ORIGIN_ADMIN if args.admin else ORIGIN_OPEN_DATA,
            progress=True if args.progress else None,
            owner=args.organisation,
        )
    except ImportFileError as error:
        print(f"rien n'a été importé : {error}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    for line in report.summary_lines():
        print(line)
    if report.revision is not None:
        print(f"annuaire : révision {report.revision} ; les serveurs en marche rechargent les lieux "
              "d'ici ALLERVERS_DIRECTORY_REFRESH_SECONDS (60 s par défaut)")
    return 0 if not report.rejected else 1


async def _near(args) -> int:
    from kernel.settings import Settings
    from directory.finder import Directory
    from directory.needs import UnknownNeed, resolve_need

    try:
        resolve_need(args.need)
    except UnknownNeed:
        print(f"besoin inconnu : {args.need} (voir `allervers places needs`)", file=sys.stderr)
        return 2
    engine, sessionmaker = await _database()
    try:
        if args.organisation and not await _organisation_exists(sessionmaker, args.organisation):
            print(f"organisation inconnue : {args.organisation}", file=sys.stderr)
            return 2
        directory = await Directory.load(sessionmaker, departements=Settings().shipped_departements)
    finally:
        await engine.dispose()
    answer = directory.find(args.where, args.need, offset=args.offset, limit=args.limit,
                            organisation=args.organisation)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    elif args.text:
        from directory.render import render_answer

        print("\n\n----\n\n".join(render_answer(answer)))
    else:
        _print_answer(answer)
    return 0 if answer.status == "places" else 1


async def _organisation_exists(sessionmaker, slug: str) -> bool:
    from sqlalchemy import select

    from handoff.models import Organisation

    async with sessionmaker() as session:
        return await session.scalar(select(Organisation.id).where(Organisation.slug == slug)) is not None


def _print_answer(answer) -> None:
    if answer.commune:
        commune = answer.commune
        print(f"commune : {commune.name} ({commune.code_insee}, {' '.join(commune.postcodes[:3])})")
    if answer.status == "choose_commune":
        print("plusieurs communes :")
        for commune in answer.candidates:
            print(f"  {commune.code_insee}  {commune.label}  population {commune.population}")
        return
    if answer.status == "unknown_place":
        print(answer.message)
        return
    for entry in answer.emergency_numbers:
        print(f"urgence : {entry.text}")
    widened = " (élargi)" if answer.widened else ""
    print(f"rayon : {answer.radius_km:g} km{widened}")
    for card in answer.places:
        open_now = {True: "oui", False: "non", None: "?"}[card.open_now]
        print(f"- {card.id} | {card.name} | {card.distance_km:.1f} km | {card.address or '-'}")
        print(f"    {card.hours_text} | ouvert maintenant : {open_now}")
    if not answer.places:
        print(answer.message)
    if answer.has_more:
        print(f"voir plus : --offset {answer.next_offset}")


def _needs() -> int:
    from directory.needs import NEEDS, expand

    for need in NEEDS:
        marker = " (urgence)" if need.emergency else ""
        print(f"{need.id} — {need.label}{marker}: {len(expand(need.thematiques))} thématiques")
        for value in need.thematiques:
            print(f"    {value}")
    return 0
