"""A file imported from the console: a background job running the CLI's importer, its progress.

The upload is written to a temporary file, then `directory.importer.import_files` runs as a
background task of the runtime (reading and validation in a worker thread: the importer is
CPU-bound and the event loop keeps serving), with `owner` set to the organisation (its records
become its own) and a progress callback. The page polls the job every second (htmx).

Jobs live in the memory of the process that received the upload (at most `MAX_JOBS`, the oldest
forgotten first); the audit entry keeps the counts. Behind several processes, the import page must
reach the same one (sticky sessions), or the poll answers "import introuvable".
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAX_JOBS = 50
ACCEPTED_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".csv.gz", ".json.gz", ".jsonl.gz", ".ndjson.gz")
PHASES = {"attente": "En attente", "lecture": "Lecture du fichier", "validation": "Vérification des lignes",
          "écriture": "Enregistrement", "terminé": "Terminé", "échec": "Échec"}


@dataclass(slots=True)
class ImportJob:
    id: str
    organisation_id: int
    file_name: str
    phase: str = "attente"
    done: int = 0
    total: int = 0
    report: object = None  # directory.importer.ImportReport when finished
    error: str | None = None  # a file that could not be read (nothing imported)
    started: float = field(default_factory=time.perf_counter)
    seconds: float | None = None
    records: int = 0  # records read from the file

    @property
    def finished(self) -> bool:
        return self.phase in ("terminé", "échec")

    @property
    def phase_label(self) -> str:
        return PHASES.get(self.phase, self.phase)

    @property
    def percent(self) -> int:
        if self.finished:
            return 100
        share = {"attente": (0, 0), "lecture": (0, 10), "validation": (10, 80), "écriture": (80, 100)}
        low, high = share.get(self.phase, (0, 0))
        return int(low + (high - low) * (self.done / self.total if self.total else 0))

    @property
    def rows_per_second(self) -> float | None:
        if not self.seconds or not self.records:
            return None
        return self.records / self.seconds

    def progress(self, phase: str, done: int, total: int) -> None:
        """The importer's callback (from a worker thread during validation: plain assignments)."""
        self.phase, self.done, self.total = phase, done, total
        if phase == "validation":
            self.records = total


def jobs_of(app) -> dict[str, ImportJob]:
    jobs = getattr(app.state, "directory_imports", None)
    if jobs is None:
        jobs = app.state.directory_imports = {}
    return jobs


def suffix_of(name: str) -> str | None:
    lowered = (name or "").lower()
    for suffix in sorted(ACCEPTED_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return suffix
    return None


def start(app, rt, *, organisation_id: int, owner: str, actor_id: int, file_name: str, content: bytes,
          suffix: str) -> ImportJob:
    jobs = jobs_of(app)
    while len(jobs) >= MAX_JOBS:
        jobs.pop(next(iter(jobs)))
    job = ImportJob(id=secrets.token_urlsafe(12), organisation_id=organisation_id, file_name=file_name[:120])
    jobs[job.id] = job
    rt.spawn(_run(rt, job, owner, actor_id, content, suffix))
    return job


async def _run(rt, job: ImportJob, owner: str, actor_id: int, content: bytes, suffix: str) -> None:
    from admin.audit import record
    from directory.flow import announce_change
    from directory.importer import ImportFileError, import_files

    directory = Path(tempfile.mkdtemp(prefix="allervers-import-"))
    path = directory / f"import{suffix}"

    async def audit(session, report) -> None:
        record(session, organisation_id=job.organisation_id, actor_id=actor_id, action="directory.imported",
               target_type="places", details={"file": job.file_name, "accepted": report.accepted,
                                              "rejected": len(report.rejected)})

    try:
        await asyncio.to_thread(path.write_bytes, content)
        job.report = await import_files(rt.sessionmaker, [path], owner=owner, progress=False,
                                        on_progress=job.progress, before_commit=audit)
        job.phase = "terminé"
        if job.report.revision is not None:
            await announce_change(rt, job.report.revision)
    except ImportFileError as error:
        job.error, job.phase = str(error).replace(path.name, job.file_name), "échec"
    except Exception as error:  # noqa: BLE001 (its type only: a message may quote rows)
        log.warning("directory import from the console failed (%s)", type(error).__name__)
        job.error, job.phase = "l'import n'a pas pu être enregistré ; rien n'a été importé. Réessayez.", "échec"
    finally:
        job.seconds = time.perf_counter() - job.started
        path.unlink(missing_ok=True)
        directory.rmdir()
