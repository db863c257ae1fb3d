"""One small interface for people's files, two backends.

- LocalMediaStore (default): files under settings.media_dir/<contact id>/; a file's reference (the
  Media row's `path`) is its absolute path, as before this interface existed.
- S3MediaStore (ALLERVERS_MEDIA_BACKEND=s3): any S3-compatible object store (AWS S3, Scaleway,
  OVHcloud, MinIO, Garage...), keys <s3_prefix><contact id>/<random>.<ext>; a reference is
  s3://<bucket>/<key>. The bucket stays private: files are streamed to workers and people through
  the app's own routes (which check who may see them), never by a public or pre-signed URL.

Both: `put` (returns the reference), `open` (a Response for the app's routes, or None), `local_copy`
(a file on disk for the platform uploads of the bots, removed after use), `delete`, and
`delete_contacts` (erasure and the retention purge: every object of those people, listed or not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from starlette.responses import FileResponse, Response, StreamingResponse

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
CHUNK = 64 * 1024


def _extension(content_type: str) -> str:
    from conversations.media import extension_for

    return extension_for(content_type)


class LocalMediaStore:
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _write(self, contact_id: int, data: bytes, content_type: str) -> str:
        directory = self.root / str(int(contact_id))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{uuid.uuid4().hex}{_extension(content_type)}"
        path.write_bytes(data)
        return str(path)

    async def put(self, contact_id: int, data: bytes, content_type: str) -> str:
        return await asyncio.to_thread(self._write, contact_id, data, content_type)

    def path_of(self, ref: str) -> Path | None:
        """The file of a reference, only if it lies under the media root and still exists."""
        if not ref or ref.startswith("s3://"):
            return None
        path = Path(ref).resolve()
        if self.root not in path.parents or not path.is_file():
            return None
        return path

    async def open(self, ref: str, content_type: str, range_header: str | None = None) -> Response | None:
        path = self.path_of(ref)
        if path is None:
            return None
        return FileResponse(path, media_type=content_type, headers=NO_STORE)  # Range handled by Starlette

    @contextlib.asynccontextmanager
    async def local_copy(self, ref: str):
        yield ref  # already a local file

    def _delete(self, refs) -> None:
        for ref in refs:
            path = Path(ref)
            try:
                os.remove(path)
            except OSError:
                continue
            try:
                path.parent.rmdir()  # only if empty: no folder named after a person left behind
            except OSError:
                pass

    async def delete(self, refs) -> None:
        await asyncio.to_thread(self._delete, [r for r in refs if r and not str(r).startswith("s3://")])

    def _delete_contacts(self, contact_ids, refs) -> None:
        self._delete([r for r in refs if r and not str(r).startswith("s3://")])
        for contact_id in contact_ids:
            shutil.rmtree(self.root / str(int(contact_id)), ignore_errors=True)

    async def delete_contacts(self, contact_ids, refs=()) -> None:
        await asyncio.to_thread(self._delete_contacts, list(contact_ids), list(refs))


class S3MediaStore:
    """aioboto3 (botocore underneath): one client for the process, opened at start-up."""

    kind = "s3"

    def __init__(self, settings, local: LocalMediaStore) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.local = local  # files stored before the switch to S3 stay readable and erasable
        self._stack: contextlib.AsyncExitStack | None = None
        self.client = None

    async def start(self) -> None:
        import aioboto3
        from botocore.config import Config

        session = aioboto3.Session()
        self._stack = contextlib.AsyncExitStack()
        self.client = await self._stack.enter_async_context(session.client(
            "s3", endpoint_url=self.settings.s3_endpoint_url, region_name=self.settings.s3_region,
            aws_access_key_id=self.settings.s3_access_key_id,
            aws_secret_access_key=self.settings.s3_secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30,
                          s3={"addressing_style": "path"})))

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack, self.client = None, None

    def ref(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def key_of(self, ref: str) -> str | None:
        head = f"s3://{self.bucket}/"
        if not ref or not ref.startswith(head):
            return None
        key = ref[len(head):]
        return key if key.startswith(self.prefix) and ".." not in key.split("/") else None

    async def put(self, contact_id: int, data: bytes, content_type: str) -> str:
        key = f"{self.prefix}{int(contact_id)}/{uuid.uuid4().hex}{_extension(content_type)}"
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self.ref(key)

    async def open(self, ref: str, content_type: str, range_header: str | None = None) -> Response | None:
        key = self.key_of(ref)
        if key is None:
            return await self.local.open(ref, content_type, range_header)
        from botocore.exceptions import ClientError

        extra = {"Range": range_header} if range_header and range_header.startswith("bytes=") else {}
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if code in ("InvalidRange", "416"):
                return Response(status_code=416, headers=NO_STORE)
            raise
        body = answer["Body"]
        headers = {**NO_STORE, "Accept-Ranges": "bytes", "Content-Length": str(answer["ContentLength"])}
        if answer.get("ContentRange"):
            headers["Content-Range"] = answer["ContentRange"]

        async def chunks():
            try:
                while True:
                    chunk = await body.read(CHUNK)
                    if not chunk:
                        return
                    yield chunk
            finally:
                body.close()

        status = 206 if answer.get("ContentRange") else 200
        return StreamingResponse(chunks(), status_code=status, media_type=content_type, headers=headers)

    @contextlib.asynccontextmanager
    async def local_copy(self, ref: str):
        """The object in a temporary file (the platforms' upload APIs take a file), removed after."""
        key = self.key_of(ref)
        if key is None:
            async with self.local.local_copy(ref) as path:
                yield path
            return
        answer = await self.client.get_object(Bucket=self.bucket, Key=key)
        data = await answer["Body"].read()
        suffix = Path(key).suffix
        handle, path = tempfile.mkstemp(prefix="allervers-media-", suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)

    async def delete(self, refs) -> None:
        refs = list(refs)
        keys = [k for k in (self.key_of(r) for r in refs) if k]
        for start in range(0, len(keys), 1000):
            await self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
        await self.local.delete([r for r in refs if self.key_of(r) is None])

    async def delete_contacts(self, contact_ids, refs=()) -> None:
        """Every object under each person's prefix (a fetch's that left no row included)."""
        contact_ids, refs = list(contact_ids), list(refs)
        keys = [k for k in (self.key_of(r) for r in refs) if k]
        paginator = self.client.get_paginator("list_objects_v2")
        for contact_id in contact_ids:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{int(contact_id)}/"):
                keys += [item["Key"] for item in page.get("Contents", [])]
        keys = sorted(set(keys))
        for start in range(0, len(keys), 1000):
            await self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
        await self.local.delete_contacts(contact_ids, [r for r in refs if self.key_of(r) is None])


def build_media_store(settings):
    local = LocalMediaStore(settings.media_dir)
    backend = (settings.media_backend or "local").lower()
    if backend == "local":
        return local
    if backend == "s3":
        return S3MediaStore(settings, local)
    raise ValueError(f"unknown ALLERVERS_MEDIA_BACKEND {settings.media_backend!r} (local or s3)")


async def serve_media(rt, media, range_header: str | None = None) -> Response | None:
    return await rt.media.open(media.path, media.content_type, range_header)


@contextlib.asynccontextmanager
async def sendable(rt, message):
    """An outbound message whose attachment is a file on disk for the bots (an S3 object is copied
    to a temporary file for the upload, removed after)."""
    store = getattr(rt, "media", None)
    ref = getattr(message, "attachment_path", None)
    if store is None or not ref or not str(ref).startswith("s3://"):
        yield message
        return
    import dataclasses

    async with store.local_copy(ref) as path:
        yield dataclasses.replace(message, attachment_path=path)
