"""The sent journal: a note that a send succeeded, written the moment the platform answers.

The outcome of a send reaches the database later (deliver._Recorder writes the outcomes of many
sends in one transaction, which may wait behind the intake's writes): a crash in between used to
leave the row `sending`, and the start-up sweep queued it again although the person had it. The
journal closes most of that window: right after a send returns, one fast note (an `os.write` to an
append-only file, or one Redis SET) says "message 42 went out as platform id X". The start-up sweep
records the rows it names as sent instead of sending them again; once the database has the outcome,
the note is dropped.

What is left is the time between the platform accepting a request and our process reading its
answer (the platform has no idempotency key to close it; see ARCHITECTURE.md, "Delivery guarantee").

- FileJournal (no Redis, so one host): one file per process in a directory, each held with an
  exclusive flock (released by the kernel when the process dies, whatever its pid), one JSON line
  per send. The kernel keeps what `os.write` wrote when the process is killed; a power cut may lose
  the last notes (no fsync: it would cost a disk flush per message), which then means at most a
  reply sent again, as before. Files are rotated and dropped once every note they hold is recorded.
- RedisJournal: one key per send (`allervers:sent:<message id>`, kept 7 days), deleted in one
  round trip once recorded; shared by every process.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)


class FileJournal:
    def __init__(self, directory: Path, max_bytes: int = 1 << 20) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._path: Path | None = None  # the file written now
        self._size = 0
        self._fds: dict[Path, int] = {}  # our files (the current one, older ones with notes pending)
        self._pending: dict[Path, set[int]] = {}  # file -> ids noted there and not yet recorded
        self._file_of: dict[int, Path] = {}
        self._dead: list[tuple[int, Path]] = []  # files of dead processes read by the sweep

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"sent-{uuid.uuid4().hex}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live
        previous = self._path
        self._path, self._size = path, 0
        self._fds[path], self._pending[path] = fd, set()
        if previous is not None:
            self._drop_if_done(previous)

    async def note(self, message_id: int, entry: dict) -> None:
        if self._path is None or self._size > self.max_bytes:
            self._open()
        line = (json.dumps({"id": message_id, **entry}, separators=(",", ":")) + "\n").encode()
        os.write(self._fds[self._path], line)  # one write call: the kernel has it even if we are killed now
        self._size += len(line)
        self._pending[self._path].add(message_id)
        self._file_of[message_id] = self._path

    async def forget(self, message_ids: Iterable[int]) -> None:
        touched = set()
        for message_id in message_ids:
            path = self._file_of.pop(message_id, None)
            if path is not None:
                self._pending[path].discard(message_id)
                touched.add(path)
        for path in touched:
            if path != self._path:
                self._drop_if_done(path)

    def _drop_if_done(self, path: Path) -> None:
        """An older file of ours goes once every note it holds is recorded."""
        if self._pending.get(path):
            return
        self._pending.pop(path, None)
        fd = self._fds.pop(path, None)
        try:
            path.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)

    async def read(self, message_ids: Iterable[int]) -> dict[int, dict]:
        """Notes about these rows left by any process of this host (at start-up)."""
        wanted = set(message_ids)
        found: dict[int, dict] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("sent-*.jsonl")):
            if path in self._fds:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._dead.append((fd, path))  # its process is gone: dropped once the sweep commits
            except BlockingIOError:
                pass  # a live process's file: read, left alone
            with open(path, "rb") as file:
                for raw in file:
                    try:
                        entry = json.loads(raw)
                    except ValueError:  # a line cut short by the crash: that send was not noted
                        continue
                    if isinstance(entry, dict) and entry.get("id") in wanted:
                        earlier = found.get(entry["id"])
                        # files are read in no particular order: an "in doubt" note never hides
                        # the "sent" one of the same row (a status webhook's, in another file)
                        if earlier is None or entry.get("status") != "in_doubt" or earlier.get("status") == "in_doubt":
                            found[entry["id"]] = entry
            if not any(path == dead for _, dead in self._dead):
                os.close(fd)
        return found

    async def swept(self) -> None:
        """The sweep's outcomes are committed: the dead processes' files can go."""
        for fd, path in self._dead:
            try:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
        self._dead = []

    async def close(self) -> None:
        """Files whose notes are all recorded go; others stay for the next start-up."""
        for path, fd in list(self._fds.items()):
            if not self._pending.get(path):
                path.unlink(missing_ok=True)
            os.close(fd)
        self._fds, self._path = {}, None


class RedisJournal:
    PREFIX = "allervers:sent:"
    TTL_MS = 7 * 24 * 3600 * 1000

    def __init__(self, redis) -> None:
        self.redis = redis

    async def note(self, message_id: int, entry: dict) -> None:
        await self.redis.set(self.PREFIX + str(message_id), json.dumps(entry, separators=(",", ":")), px=self.TTL_MS)

    async def forget(self, message_ids: Iterable[int]) -> None:
        keys = [self.PREFIX + str(message_id) for message_id in message_ids]
        if keys:
            await self.redis.delete(*keys)

    async def read(self, message_ids: Iterable[int]) -> dict[int, dict]:
        ids = list(message_ids)
        if not ids:
            return {}
        values = await self.redis.mget([self.PREFIX + str(message_id) for message_id in ids])
        found = {}
        for message_id, value in zip(ids, values):
            if value is not None:
                try:
                    found[message_id] = {"id": message_id, **json.loads(value)}
                except ValueError:
                    continue
        return found

    async def swept(self) -> None:
        pass

    async def close(self) -> None:
        pass
