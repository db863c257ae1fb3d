"""Import data·inclusion v1 structures and services (JSON, JSON Lines, CSV; optionally gzipped).

Every file is read and every record validated with the data-inclusion-schema package before
anything is written; then everything goes to the database in one transaction. A file that cannot
be read (not JSON, missing columns, corrupt gzip) raises ImportFileError and nothing is written.
A record that does not validate is rejected with its id, field and message; the others are kept.
Re-importing a record (same data·inclusion id) updates it. The same transaction bumps the
directory revision (`bump_revision`): running servers poll it and reload their places index.

Records with a `structure_id` are services, the others structures. In CSV, list fields
(thematiques, publics, reseaux_porteurs, ...) hold values separated by "|" (or by "," when the
cell has no "|"). Only ids, field names and validation messages are reported: never field values,
which may be contact details.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from directory.models import (
    ORIGIN_ADMIN,
    ORIGIN_OPEN_DATA,
    ORIGIN_ORGANISATION,
    SERVICE_FIELDS,
    STRUCTURE_FIELDS,
    DirectoryRevision,
    Service,
    Structure,
    owner_source,
)

DATA = Path(__file__).parent / "data"
SHIPPED_FILES = [DATA / "structures_di-v1.jsonl.gz", DATA / "services_di-v1.jsonl.gz"]
# Sources added later (issue 14; built by `python -m directory.sources`): each is loaded once, when
# none of its places is in the database yet (so an existing deployment gets them at its next start).
SHIPPED_SOURCES = [
    ("dila-mairies", DATA / "mairies_di-v1.jsonl.gz"),
    ("entourage", DATA / "entourage_di-v1.jsonl.gz"),
    ("dila-annuaire-2019", DATA / "annuaire2019_di-v1.jsonl.gz"),
]

LIST_FIELDS = {
    "reseaux_porteurs",
    "thematiques",
    "publics",
    "modes_accueil",
    "zone_eligibilite",
    "modes_mobilisation",
    "mobilisable_par",
}
REQUIRED_STRUCTURE_COLUMNS = {"source", "id", "nom", "date_maj"}
REQUIRED_SERVICE_COLUMNS = {"source", "id", "structure_id", "nom", "description", "date_maj"}
WRITE_BATCH = 2000


class ImportFileError(Exception):
    """A file that cannot be read as a whole: nothing is imported."""


@dataclass(slots=True)
class Rejection:
    file: str
    record: str  # data·inclusion id, or "ligne N" / "enregistrement N" when the id is missing
    errors: list[tuple[str, str]]  # (field, message)
    location: str = ""  # "ligne N" / "enregistrement N" in its file (also when `record` is the id)

    def __str__(self) -> str:
        reasons = "; ".join(f"{name or '-'} : {message}" for name, message in self.errors)
        return f"{self.file} {self.record} — {reasons}"


@dataclass(slots=True)
class ImportReport:
    files: list[str] = field(default_factory=list)
    structures_created: int = 0
    structures_updated: int = 0
    services_created: int = 0
    services_updated: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    revision: int | None = None  # the directory revision the import committed (None: nothing written)
    written_ids: list[str] = field(default_factory=list)  # structures then services written (stored ids)

    @property
    def accepted(self) -> int:
        return self.structures_created + self.structures_updated + self.services_created + self.services_updated

    def summary_lines(self) -> list[str]:
        lines = [
            f"structures : {self.structures_created} créées, {self.structures_updated} mises à jour",
            f"services : {self.services_created} créés, {self.services_updated} mis à jour",
            f"rejetés : {len(self.rejected)}",
        ]
        lines += [f"  {rejection}" for rejection in self.rejected]
        lines += [f"attention : {warning}" for warning in self.warnings]
        return lines


@dataclass(slots=True)
class _Parsed:
    structures: dict[str, dict] = field(default_factory=dict)
    services: dict[str, dict] = field(default_factory=dict)


# -- reading files ---------------------------------------------------------------------------


def read_records(path: Path, warnings: list[str] | None = None) -> list[tuple[str, dict]]:
    """All records of one file as (location, record) pairs; ImportFileError if unreadable.
    Notes for the admin (ignored CSV columns) are appended to `warnings`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ImportFileError(f"{path.name} : fichier illisible ({error.strerror})") from None
    name = path.name.lower()
    if name.endswith(".gz") or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            raise ImportFileError(f"{path.name} : archive gzip corrompue") from None
        name = name.removesuffix(".gz")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFileError(f"{path.name} : le fichier n'est pas en UTF-8") from None

    if name.endswith(".csv"):
        return _read_csv(path.name, text, warnings if warnings is not None else [])
    if name.endswith((".jsonl", ".ndjson")):
        return _read_json_lines(path.name, text)
    if name.endswith(".json"):
        return _read_json(path.name, text)
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _read_json(path.name, text)
    if stripped.startswith("{"):
        return _read_json_lines(path.name, text)
    raise ImportFileError(f"{path.name} : format inconnu (attendu : .json, .jsonl, .csv, éventuellement .gz)")


def _read_json(file: str, text: str) -> list[tuple[str, dict]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFileError(f"{file} : JSON invalide (ligne {error.lineno})") from None
    if isinstance(data, dict) and ("structures" in data or "services" in data):
        records = list(data.get("structures") or []) + list(data.get("services") or [])
    elif isinstance(data, dict):
        records = [data]
    elif isinstance(data, list):
        records = data
    else:
        raise ImportFileError(f"{file} : un tableau JSON d'enregistrements est attendu")
    return [(f"enregistrement {number}", record) for number, record in enumerate(records, start=1)]


def _read_json_lines(file: str, text: str) -> list[tuple[str, dict]]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"ligne {number}", json.loads(line)))
        except json.JSONDecodeError:
            raise ImportFileError(f"{file} : JSON invalide à la ligne {number}") from None
    return records


def _read_csv(file: str, text: str, warnings: list[str]) -> list[tuple[str, dict]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [column.strip() for column in (reader.fieldnames or [])]
    if not columns:
        raise ImportFileError(f"{file} : fichier CSV vide")
    reader.fieldnames = columns
    required = REQUIRED_SERVICE_COLUMNS if "structure_id" in columns else REQUIRED_STRUCTURE_COLUMNS
    missing = sorted(required - set(columns))
    if missing:
        raise ImportFileError(f"{file} : colonnes manquantes : {', '.join(missing)}")
    ignored = unknown_csv_columns(columns)
    if ignored:
        warnings.append(f"{file} : colonnes ignorées : {', '.join(ignored)}")
    records = []
    try:
        for row in reader:
            if None in row:
                raise ImportFileError(f"{file} : ligne {reader.line_num} : plus de cellules que de colonnes")
            record = {}
            for column, value in row.items():
                value = (value or "").strip()
                if not value:
                    continue
                if column in LIST_FIELDS:
                    separator = "|" if "|" in value else ","
                    record[column] = [item.strip() for item in value.split(separator) if item.strip()]
                else:
                    record[column] = value
            if record:
                records.append((f"ligne {reader.line_num}", record))
    except csv.Error as error:
        raise ImportFileError(f"{file} : CSV illisible ({error})") from None
    return records


def unknown_csv_columns(columns: Iterable[str]) -> list[str]:
    known = set(STRUCTURE_FIELDS) | set(SERVICE_FIELDS)
    return sorted(set(columns) - known)


# -- validating ------------------------------------------------------------------------------


def _row(model, fields: list[str]) -> dict:
    dumped = model.model_dump(mode="json")
    row = {name: dumped.get(name) for name in fields}
    for name in LIST_FIELDS & row.keys():
        row[name] = sorted(row[name] or [])
    row["date_maj"] = date.fromisoformat(row["date_maj"])
    return row


def _check_coordinates(row: dict) -> list[tuple[str, str]]:
    errors = []
    if row.get("latitude") is not None and not -90 <= row["latitude"] <= 90:
        errors.append(("latitude", "hors limites (-90 à 90)"))
    if row.get("longitude") is not None and not -180 <= row["longitude"] <= 180:
        errors.append(("longitude", "hors limites (-180 à 180)"))
    if (row.get("latitude") is None) != (row.get("longitude") is None):
        errors.append(("latitude", "latitude et longitude vont ensemble"))
    return errors


_FRENCH_ERRORS = {
    "missing": "champ obligatoire manquant",
    "string_pattern_mismatch": "format non valide",
    "string_type": "du texte est attendu",
    "float_parsing": "un nombre est attendu",
    "float_type": "un nombre est attendu",
    "int_parsing": "un nombre entier est attendu",
    "bool_parsing": "oui ou non est attendu",
    "list_type": "une liste est attendue",
    "enum": "valeur inconnue",
    "literal_error": "valeur inconnue",
    "date_parsing": "date non valide (AAAA-MM-JJ)",
    "date_from_datetime_parsing": "date non valide (AAAA-MM-JJ)",
    "date_type": "date non valide (AAAA-MM-JJ)",
    "url_parsing": "adresse web non valide (https://…)",
    "url_scheme": "adresse web non valide (https://…)",
    "url_type": "adresse web non valide (https://…)",
    "extra_forbidden": "champ inconnu",
}


def french_error(item: dict) -> str:
    """A pydantic validation error in French (the admin reads it); data·inclusion's own
    messages are French already. Never the value."""
    kind, context = item.get("type", ""), item.get("ctx") or {}
    if kind == "string_too_short":
        return f"trop court ({context.get('min_length', '?')} caractères au moins)"
    if kind == "string_too_long":
        return f"trop long ({context.get('max_length', '?')} caractères au plus)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return "valeur hors limites"
    if kind == "value_error":
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        return "adresse e-mail non valide" if "email" in message else message
    return _FRENCH_ERRORS.get(kind, str(item.get("msg", "valeur non valide")))


def _trusted_row(record: dict, fields: list[str]) -> dict:
    row = {name: record.get(name) for name in fields}
    for name in LIST_FIELDS & row.keys():
        row[name] = sorted(row[name] or [])
    row["date_maj"] = date.fromisoformat(row["date_maj"])
    return row


def owned_id(owner: str, record_id: str) -> str:
    """An organisation's record id: "organisation:<slug>--<id>" (kept when already so)."""
    prefix = owner_source(owner) + "--"
    return record_id if record_id.startswith(prefix) else prefix + record_id


def _own(row: dict, owner: str) -> None:
    """Make a validated row the organisation's: its source, its ids in the organisation's namespace
    (an organisation's import can never overwrite a shared place or another organisation's)."""
    row["source"] = owner_source(owner)
    row["id"] = owned_id(owner, row["id"])
    if row.get("structure_id"):
        row["structure_id"] = owned_id(owner, row["structure_id"])


def validate(
    file: str, records: list[tuple[str, dict]], parsed: _Parsed, report: ImportReport, bar=None, trusted: bool = False,
    owner: str | None = None,
) -> None:
    """Validate records with data-inclusion-schema; good ones go to `parsed`, bad ones to the report.

    `trusted` skips the schema (the shipped files, validated by the test suite) to keep the
    first run fast. `owner`: an organisation's slug, whose records these become (`_own`)."""
    from pydantic import ValidationError

    from data_inclusion.schema import v1

    for location, record in records:
        if bar is not None:
            bar.update(1)
        if not isinstance(record, dict):
            report.rejected.append(Rejection(file, location, [("", "un objet JSON est attendu")], location))
            continue
        is_service = "structure_id" in record
        record_id = record.get("id")
        label = str(record_id) if isinstance(record_id, str) and record_id else location
        fields = SERVICE_FIELDS if is_service else STRUCTURE_FIELDS
        if trusted:
            row = _trusted_row(record, fields)
        else:
            try:
                model = (v1.Service if is_service else v1.Structure).model_validate(record)
            except ValidationError as error:
                errors = [(".".join(str(part) for part in item["loc"]), french_error(item)) for item in error.errors()]
                report.rejected.append(Rejection(file, label, errors, location))
                continue
            row = _row(model, fields)
        errors = _check_coordinates(row)
        if errors:
            report.rejected.append(Rejection(file, label, errors, location))
            continue
        if owner is not None:
            _own(row, owner)
        target = parsed.services if is_service else parsed.structures
        if row["id"] in target:
            report.rejected.append(Rejection(file, label, [("id", "en double dans l'import")], location))
            continue
        target[row["id"]] = row


# -- writing ---------------------------------------------------------------------------------


def _upsert(dialect_name: str, table, rows: list[dict]):
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    updated = {
        column.name: statement.excluded[column.name]
        for column in table.columns
        if column.name not in ("id", "created_at")
    }
    return statement.on_conflict_do_update(index_elements=["id"], set_=updated)


async def _existing_ids(session, model) -> set[str]:
    return set((await session.scalars(select(model.id))).all())


class _Bar:
    """tqdm's `update` for a progress callback: progress(phase, done, total)."""

    def __init__(self, callback, phase: str, total: int):
        self.callback, self.phase, self.total, self.done = callback, phase, total, 0
        callback(phase, 0, total)

    def update(self, count: int = 1) -> None:
        self.done += count
        self.callback(self.phase, self.done, self.total)


class _Both:
    def __init__(self, *bars):
        self.bars = [bar for bar in bars if bar is not None]

    def update(self, count: int = 1) -> None:
        for bar in self.bars:
            bar.update(count)


async def import_files(
    sessionmaker,
    paths: Iterable[Path | str],
    *,
    origin: str = ORIGIN_OPEN_DATA,
    progress: bool | None = None,
    trusted: bool = False,
    owner: str | None = None,
    on_progress=None,
    before_commit=None,
) -> ImportReport:
    """Read, validate and write data·inclusion records; ImportFileError writes nothing.

    `progress`: a progress bar on stderr (None: only when stderr is a terminal). The files are
    read in a worker thread; then `import_records` (see there for `owner`, `on_progress` and
    `before_commit`)."""
    paths = [Path(path) for path in paths]
    warnings: list[str] = []

    def read() -> list[tuple[str, list[tuple[str, dict]]]]:  # CPU-bound: in a worker thread
        return [(path.name, read_records(path, warnings)) for path in paths]  # all parsed first

    if on_progress is not None:
        on_progress("lecture", 0, len(paths))
    files = await asyncio.to_thread(read)
    return await import_records(sessionmaker, files, origin=origin, progress=progress, trusted=trusted, owner=owner,
                                on_progress=on_progress, before_commit=before_commit, warnings=warnings)


async def import_records(
    sessionmaker,
    files: list[tuple[str, list[tuple[str, dict]]]],
    *,
    origin: str = ORIGIN_OPEN_DATA,
    progress: bool | None = None,
    trusted: bool = False,
    owner: str | None = None,
    on_progress=None,
    before_commit=None,
    warnings: list[str] | None = None,
) -> ImportReport:
    """Validate and write records already read: [(file name, [(location, record), ...]), ...].
    The one implementation behind the CLI's import, the console's file import and its place form.

    `owner`: an organisation's slug: every record becomes its own (source "organisation:<slug>",
    ids "organisation:<slug>--<id>", origin "organisation"), shown to its people only.
    `on_progress(phase, done, total)`: called as records are validated ("validation", from a
    worker thread) and written ("écriture"). `before_commit(session, report)`: awaited inside the
    import's transaction before it commits, when something is written (the console's audit entry
    and overrides: written with the places or not at all)."""
    from tqdm import tqdm

    from kernel.database import utcnow

    if owner is not None:
        origin = ORIGIN_ORGANISATION
    report = ImportReport()
    report.warnings.extend(warnings or [])
    parsed = _Parsed()
    show = progress if progress is not None else sys.stderr.isatty()

    def validate_all() -> None:  # CPU-bound: in a worker thread, the event loop stays free
        total = sum(len(records) for _, records in files)
        callback = _Bar(on_progress, "validation", total) if on_progress is not None else None
        with tqdm(total=total, desc="validation", unit=" enr.", disable=not show, file=sys.stderr) as bar:
            for name, records in files:
                report.files.append(name)
                validate(name, records, parsed, report, _Both(bar, callback), trusted=trusted, owner=owner)

    await asyncio.to_thread(validate_all)

    async with sessionmaker() as session, session.begin():
        known_structures = await _existing_ids(session, Structure)
        known_services = await _existing_ids(session, Service)
        for service_id, row in list(parsed.services.items()):
            if row["structure_id"] not in parsed.structures and row["structure_id"] not in known_structures:
                del parsed.services[service_id]
                report.rejected.append(Rejection("", service_id, [("structure_id", "structure inconnue")]))

        now = utcnow()
        dialect = session.bind.dialect.name
        written = len(parsed.structures) + len(parsed.services)
        callback = _Bar(on_progress, "écriture", written) if on_progress is not None else None
        for model, rows, known in (
            (Structure, list(parsed.structures.values()), known_structures),
            (Service, list(parsed.services.values()), known_services),
        ):
            for row in rows:
                row.update(origin=origin, created_at=now, updated_at=now)
            created = sum(1 for row in rows if row["id"] not in known)
            if model is Structure:
                report.structures_created, report.structures_updated = created, len(rows) - created
            else:
                report.services_created, report.services_updated = created, len(rows) - created
            report.written_ids += [row["id"] for row in rows]
            with tqdm(total=len(rows), desc=f"écriture {model.__tablename__}", disable=not show, file=sys.stderr) as bar:
                for start in range(0, len(rows), WRITE_BATCH):
                    batch = rows[start : start + WRITE_BATCH]
                    await session.execute(_upsert(dialect, model.__table__, batch), batch)
                    _Both(bar, callback).update(len(batch))
        if parsed.structures or parsed.services:
            if before_commit is not None:
                await before_commit(session, report)
            report.revision = await bump_revision(session)

    await asyncio.to_thread(_warn_about_hours, parsed, report)
    return report


def _warn_about_hours(parsed: _Parsed, report: ImportReport) -> None:
    from opening_hours import validate as is_valid_hours

    unreadable = sum(
        1
        for row in list(parsed.structures.values()) + list(parsed.services.values())
        if row.get("horaires_accueil") and not is_valid_hours(row["horaires_accueil"])
    )
    if unreadable:
        report.warnings.append(
            f"{unreadable} horaires ne suivent pas le format OpenStreetMap : affichés « horaires non connus »"
        )


REVISION_ROW = 1


async def bump_revision(session) -> int:
    """Count one more change of the places, in the caller's transaction (commits with the rows it
    wrote). Returns the new revision. Concurrent imports wait for each other on the row, so no
    bump is lost (an auto-increment id could commit out of order and be missed by a poller)."""
    from kernel.database import utcnow

    table = DirectoryRevision.__table__
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    now = utcnow()
    statement = insert(table).values(id=REVISION_ROW, revision=1, changed_at=now)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["id"], set_={"revision": table.c.revision + 1, "changed_at": now}))
    return await session.scalar(select(table.c.revision).where(table.c.id == REVISION_ROW))


async def read_revision(sessionmaker) -> int:
    """The directory revision now (one primary-key read: cheap enough to poll)."""
    table = DirectoryRevision.__table__
    async with sessionmaker() as session:
        revision = await session.scalar(select(table.c.revision).where(table.c.id == REVISION_ROW))
    return revision or 0


async def count_places(sessionmaker) -> tuple[int, int]:
    async with sessionmaker() as session:
        structures = await session.scalar(select(func.count()).select_from(Structure))
        services = await session.scalar(select(func.count()).select_from(Service))
    return structures, services


# A shipped source's file changed in a way an older import lacks: a condition on its services that
# the new file meets; when none of the source's services meets it, the file is imported again (an
# upsert: the source's places are updated, new ones added). Entourage's hygiene services (toilets
# and fountains added, showers and laundries typed `aide-materielle`: the need "Se laver, toilettes").
SOURCE_VERSIONS = {"entourage": Service.type == "aide-materielle"}


async def missing_sources(sessionmaker) -> list[Path]:
    """The shipped files of `SHIPPED_SOURCES` whose source has no place in the database yet, or
    whose places predate the shipped file (`SOURCE_VERSIONS`)."""
    async with sessionmaker() as session:
        present = set((await session.scalars(
            select(Structure.source).where(Structure.source.in_([source for source, _ in SHIPPED_SOURCES]))
            .distinct())).all())
        for source, condition in SOURCE_VERSIONS.items():
            if source in present and await session.scalar(
                    select(Service.id).where(Service.source == source, condition).limit(1)) is None:
                present.discard(source)
    return [path for source, path in SHIPPED_SOURCES if source not in present and path.exists()]


def departement_of(record: dict) -> str | None:
    """The département of a structure record ("44", "2A", "974"), from its INSEE code, else its
    postcode (Corsica's "20…" postcodes give "20", which matches both 2A and 2B)."""
    code = record.get("code_insee") or record.get("code_postal")
    if not isinstance(code, str) or len(code) < 2:
        return None
    code = code.strip().upper()
    return code[:3] if code.startswith("97") else code[:2]


def within(files: list[tuple[str, list[tuple[str, dict]]]],
           departements: frozenset[str]) -> list[tuple[str, list[tuple[str, dict]]]]:
    """The structures of these départements and the services of those structures only."""
    wanted = set(departements)
    if wanted & {"2A", "2B"}:
        wanted.add("20")
    kept = {record.get("id") for _, records in files for _, record in records
            if "structure_id" not in record and departement_of(record) in wanted}
    return [(name, [(where, record) for where, record in records
                    if record.get("structure_id" if "structure_id" in record else "id") in kept])
            for name, records in files]


async def ensure_loaded(sessionmaker, *, progress: bool | None = False,
                        departements: frozenset[str] = frozenset()) -> ImportReport | None:
    """First run: import the shipped open data when the places tables are empty; later runs: the
    shipped sources not in the database yet (one import, one revision bump). None: nothing to do.
    `departements` (Settings.directory_departements): only those territories' shipped places are
    loaded (an organisation serving one département needs not the 35,000 mairies of France)."""
    structures, _ = await count_places(sessionmaker)
    paths = [] if structures else list(SHIPPED_FILES)
    paths += await missing_sources(sessionmaker)
    if not paths:
        return None
    if not departements:
        return await import_files(sessionmaker, paths, origin=ORIGIN_OPEN_DATA, progress=progress, trusted=True)
    warnings: list[str] = []

    def read() -> list[tuple[str, list[tuple[str, dict]]]]:  # CPU-bound: in a worker thread
        return within([(path.name, read_records(path, warnings)) for path in paths], departements)

    files = await asyncio.to_thread(read)
    if not any(records for _, records in files):
        return None  # a source with no place in these territories (read again at the next start: small)
    return await import_records(sessionmaker, files, origin=ORIGIN_OPEN_DATA, progress=progress, trusted=True,
                                warnings=warnings)


__all__ = [
    "ORIGIN_ADMIN",
    "ORIGIN_OPEN_DATA",
    "ImportFileError",
    "ImportReport",
    "Rejection",
    "bump_revision",
    "count_places",
    "departement_of",
    "ensure_loaded",
    "import_files",
    "import_records",
    "owned_id",
    "read_records",
    "read_revision",
]
