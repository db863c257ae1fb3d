"""Files people and workers exchange (voice notes first): fetched, checked, stored, served, erased.

An inbound attachment is stored as a message by receive() first; its file is fetched from the
platform afterwards, outside that transaction, by a background task with retries. If the download
fails the message stays (the inbox says the file could not be fetched) and the person is told.
Files live under settings.media_dir/<contact id>/ with a Media row: erasing a contact or the
retention purge deletes both. Names, numbers and contents are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import shutil
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from kernel.database import utcnow
from bots.base import DeliveryError, OutboundMessage, TooLarge
from conversations.audio import VoiceLimits, check_voice
from conversations.models import INBOUND, Contact, Media, Message
from conversations.store import Pending, load_thread, queue_message
from words.catalogue import language_of, room

log = logging.getLogger(__name__)
WORDS = room(__file__)  # conversations/words/<language>.yaml

FETCHED_KINDS = {"voice", "audio", "image", "document", "video"}
AUDIO_KINDS = {"voice", "audio"}
FETCH_ATTEMPTS = 5
EXTENSIONS = {"audio/ogg": ".ogg", "audio/webm": ".webm", "audio/mp4": ".m4a", "audio/mpeg": ".mp3",
              "audio/aac": ".aac", "audio/amr": ".amr", "image/jpeg": ".jpg", "image/png": ".png",
              "image/webp": ".webp", "application/pdf": ".pdf", "video/mp4": ".mp4"}


def refusal_text(settings, reason: str, locale: str | None = "fr") -> str:
    """What the person is told when their file is not kept ("too_large", "too_long", "download_failed")."""
    minutes = max(1, settings.max_media_seconds // 60)
    duration = WORDS.text("media.minutes_one" if minutes == 1 else "media.minutes_many", locale, minutes=minutes)
    return WORDS.text(f"media.{reason}", locale, megabytes=max(1, settings.max_media_bytes // (1024 * 1024)),
                      duration=duration)


def extension_for(content_type: str) -> str:
    base = content_type.split(";")[0].strip().lower()
    return EXTENSIONS.get(base) or mimetypes.guess_extension(base) or ".bin"


def media_root(settings) -> Path:
    return Path(settings.media_dir).resolve()


def write_file(settings, contact_id: int, data: bytes, content_type: str) -> Path:
    directory = media_root(settings) / str(contact_id)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}{extension_for(content_type)}"
    path.write_bytes(data)
    return path


def remove_files(paths) -> None:
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def remove_contact_files(settings, contact_ids, paths=()) -> None:
    """Erasure and retention purge: the people's files (listed or not, a fetch's included) and
    their media/<contact id>/ folders. Run after their rows are deleted."""
    remove_files(paths)
    root = media_root(settings)
    for contact_id in contact_ids:
        shutil.rmtree(root / str(int(contact_id)), ignore_errors=True)


def _remove_empty_folder(path: Path) -> None:
    try:
        path.parent.rmdir()  # only if empty: the person is gone (or had no other file)
    except OSError:
        pass


def check_audio(settings, data: bytes, content_type: str, kind: str,
                strict: bool = False) -> tuple[bytes, str, float | None, str | None]:
    """(bytes, content type, duration, refusal) — refusal is None or 'too_large', 'too_long',
    'too_fragmented', 'unreadable' (conversations.audio.check_voice). Runs on the caller's thread:
    the web server uses AudioChecker.check (a child process) instead."""
    return check_voice(VoiceLimits.of(settings), data, content_type, kind, strict)


def check_voice_refusing_light(*args) -> tuple[bytes, str, float | None, str | None]:
    """check_voice in the child process: a refusal sends no bytes back (the caller has them)."""
    checked = check_voice(*args)
    return (b"", *checked[1:]) if checked[3] else checked


class AudioChecker:
    """Voice notes checked and remuxed off the event loop: in a pool of `audio_workers` child
    processes (pure-Python parsing holds the GIL, so a thread would still slow every request),
    at most that many at once; the others wait without blocking anything. Built once per Runtime."""

    def __init__(self, settings):
        self.limits = VoiceLimits.of(settings)
        self.workers = settings.audio_workers
        self._pool = None
        self._slots = asyncio.Semaphore(self.workers)

    def _executor(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: the server has threads (a fork could copy a held lock); the child imports only
            # conversations.audio (struct and zlib), and runs at a lower priority than the server
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=os.nice, initargs=(10,))
        return self._pool

    async def check(self, data: bytes, content_type: str, kind: str,
                    strict: bool = False) -> tuple[bytes, str, float | None, str | None]:
        if len(data) > self.limits.max_media_bytes or not (kind in AUDIO_KINDS or content_type.startswith("audio/")):
            return check_voice(self.limits, data, content_type, kind, strict)  # nothing to parse
        from concurrent.futures.process import BrokenProcessPool

        loop = asyncio.get_running_loop()
        async with self._slots:
            for attempt in (1, 2):
                try:
                    checked = await loop.run_in_executor(self._executor(), check_voice_refusing_light,
                                                         self.limits, data, content_type, kind, strict)
                    return (data, *checked[1:]) if checked[3] else checked
                except BrokenProcessPool:  # a child died (killed, out of memory): a new pool, once
                    log.warning("audio worker lost: restarting the pool")
                    self.close()
                    if attempt == 2:
                        return data, content_type, None, "unreadable"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def media_payload(media: Media) -> dict:
    return {"media_id": media.id, "media_type": media.content_type,
            **({"duration_seconds": media.duration_seconds} if media.duration_seconds is not None else {})}


async def attach(rt, message_id: int, data: bytes, content_type: str, duration: float | None) -> int | None:
    """Store `data` for an existing message: file on disk, Media row, payload media_id. None if gone."""
    async with rt.sessionmaker() as session:
        message = await session.get(Message, message_id)
        if message is None:
            return None
        contact_id, conversation_id = message.contact_id, message.conversation_id
    path = await rt.media.put(contact_id, data, content_type)  # storage.media: local disk or S3
    try:
        async with rt.sessionmaker() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is None:
                raise LookupError("message erased meanwhile")
            media = Media(message_id=message_id, contact_id=contact_id, content_type=content_type, size=len(data),
                          duration_seconds=round(duration) if duration is not None else None, path=str(path),
                          created_at=utcnow())
            session.add(media)
            await session.flush()
            message.payload = {**(message.payload or {}), **media_payload(media)}
            media_id = media.id
    except Exception:
        await rt.media.delete([path])  # never an orphan file of personal data, nor an empty folder
        log.info("media not stored for message %s (erased meanwhile?)", message_id)
        return None
    await rt.notifier.publish(f"conversation:{conversation_id}", {"event": "media_stored",
                                                                  "conversation": conversation_id})
    return media_id


async def refuse(rt, message_id: int, reason: str) -> None:
    """Mark the message's file as not kept and tell the person plainly why (never silence)."""
    pending = Pending.empty()
    async with rt.sessionmaker() as session:
        message = await session.get(Message, message_id)
        if message is None:
            return
        thread = await load_thread(session, message.conversation_id)
        key = f"{thread.address.channel}:{thread.address.external_id}"
    async with rt.locks.hold(key):
        async with rt.sessionmaker() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is None:
                return
            message.payload = {**(message.payload or {}), "media_error": reason}
            thread = await load_thread(session, message.conversation_id)
            if thread is not None and thread.contact.stopped_at is None:
                await queue_message(session, thread, OutboundMessage(
                    refusal_text(rt.settings, reason, thread.contact.locale), locale=language_of(thread.contact.locale)), pending)
            pending.notify.append((f"conversation:{message.conversation_id}",
                                   {"event": "media_refused", "conversation": message.conversation_id}))
    log.info("media of message %s not kept: %s", message_id, reason)
    await rt.after_commit(pending)


def _too_large(error: BaseException) -> bool:
    return isinstance(error, TooLarge)


async def fetch_inbound(rt, message_id: int) -> None:
    """Fetch a person's file from the platform and store it (retried; the message is never lost)."""
    settings = rt.settings
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        async with rt.sessionmaker() as session:
            message = await session.get(Message, message_id)
            if message is None:
                return
            payload = dict(message.payload or {})
        attachment = payload.get("attachment") or {}
        if payload.get("media_id") or payload.get("media_error") or attachment.get("kind") not in FETCHED_KINDS:
            return
        if (attachment.get("size") or 0) > settings.max_media_bytes:
            return await refuse(rt, message_id, "too_large")
        if attachment.get("kind") in AUDIO_KINDS and (attachment.get("duration_seconds") or 0) > settings.max_media_seconds:
            return await refuse(rt, message_id, "too_long")
        channel = rt.channels.get(message.channel)
        fetch = getattr(channel, "fetch_media", None) or getattr(channel, "fetch_file", None)
        if fetch is None or not attachment.get("platform_id"):
            return
        try:
            data, content_type = await fetch(attachment["platform_id"], settings.max_media_bytes)
        except Exception as error:
            if _too_large(error):
                return await refuse(rt, message_id, "too_large")
            retryable = not isinstance(error, DeliveryError) or error.retryable
            log.warning("media fetch for message %s failed (attempt %s): %s", message_id, attempt, type(error).__name__)
            if not retryable or attempt == FETCH_ATTEMPTS:
                return await refuse(rt, message_id, "download_failed")
            delay = getattr(error, "retry_after", None) or settings.delivery_base_backoff * (2 ** (attempt - 1))
            await asyncio.sleep(delay)
            continue
        content_type = (attachment.get("content_type") or content_type or "application/octet-stream")
        data, content_type, duration, refusal = await rt.audio.check(data, content_type, attachment.get("kind", ""))
        if refusal in ("too_large", "too_long"):
            return await refuse(rt, message_id, refusal)
        if refusal:  # too fragmented to be remuxed here: kept as the platform sent it
            content_type = content_type.split(";")[0].strip()
        if duration is None and attachment.get("duration_seconds") is not None:
            duration = float(attachment["duration_seconds"])
        await attach(rt, message_id, data, content_type, duration)
        log.info("media stored for message %s", message_id)
        return


def schedule_fetch(rt, message_id: int) -> None:
    rt.spawn(fetch_inbound(rt, message_id))


async def sweep_fetches(rt, days: int = 7) -> None:
    """At start-up: inbound files a crash left unfetched are fetched again."""
    since = utcnow() - timedelta(days=days)
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Message.id, Message.payload).where(
            Message.direction == INBOUND, Message.kind == "attachment", Message.created_at >= since))).all()
    for message_id, payload in rows:
        payload = payload or {}
        if not payload.get("media_id") and not payload.get("media_error") and \
                (payload.get("attachment") or {}).get("kind") in FETCHED_KINDS:
            schedule_fetch(rt, message_id)


async def media_of_contact(session, contact_id: int) -> list[str]:
    return list((await session.execute(select(Media.path).where(Media.contact_id == contact_id))).scalars().all())


async def contact_of_media(session, media_id: int) -> tuple[Media, Contact] | None:
    row = (await session.execute(select(Media, Contact).join(Contact, Contact.id == Media.contact_id)
                                 .where(Media.id == media_id))).first()
    return (row[0], row[1]) if row else None


def servable(settings, media: Media) -> Path | None:
    """The file of a Media row, only if it lies under media_dir and still exists."""
    path = Path(media.path).resolve()
    root = media_root(settings)
    if root not in path.parents or not path.is_file():
        return None
    return path
