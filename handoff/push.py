"""Web Push to workers' phones (pywebpush, VAPID): a worker whose inbox tab is closed still hears of a
new waiting conversation of their team (or organisation) and of a new message in a conversation
assigned to them.

- Keys come from settings (ALLERVERS_VAPID_PUBLIC_KEY / _PRIVATE_KEY / _SUBJECT); without them push is
  off: the subscribe route answers 404 and nothing is sent.
- `POST /inbox/push/subscribe` (CSRF, capped body, validated JSON) stores the browser's subscription
  for the worker (table push_subscriptions); at most MAX_PER_WORKER, the oldest dropped.
- `dispatch(rt, updates)` is started by Runtime.after_commit as a task of its own (never awaited by
  receive()); the encryption and the POSTs run in threads (pywebpush is synchronous). A push
  service's 404/410 deletes the subscription. The payload carries no personal data: a title, a plain
  sentence and the conversation's address in the inbox.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from handoff.auth import check_csrf, current_worker
from kernel.database import Base, UTCDateTime, utcnow
from bots.base import BadPayload, load_json
from conversations.models import Conversation
from handoff.models import Worker

log = logging.getLogger(__name__)
router = APIRouter(prefix="/push")  # included by handoff/inbox.py under /inbox

MAX_BODY = 4096  # a subscription is ~500 bytes
MAX_PER_WORKER = 5  # phones and browsers of one worker
MAX_ENDPOINT = 1000
SEND_CONCURRENCY = 8
SEND_TIMEOUT = 10


class PushSubscription(Base):
    """A browser's push subscription for a worker (the endpoint is a capability URL: never logged)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (UniqueConstraint("endpoint", name="uq_push_subscriptions_endpoint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(Text)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def enabled(settings) -> bool:
    return bool(settings.vapid_public_key and settings.vapid_private_key)


@lru_cache(maxsize=1)
def texts() -> dict:
    with open(Path(__file__).with_name("inbox_labels.yaml"), encoding="utf-8") as file:
        import yaml

        return yaml.safe_load(file)["push"]


# The subscription -----------------------------------------------------------------------------
def _b64url(value, name: str, low: int, high: int) -> str:
    import re

    if not isinstance(value, str) or not (low <= len(value) <= high) or not re.fullmatch(r"[A-Za-z0-9_\-]+=*", value):
        raise HTTPException(400, f"invalid subscription: {name}")
    return value


def validate(data) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a PushSubscription.toJSON(), or a 400 naming what is wrong."""
    if not isinstance(data, dict):
        raise HTTPException(400, "invalid subscription: an object is expected")
    endpoint = data.get("endpoint")
    keys = data.get("keys")
    if not isinstance(endpoint, str) or not (10 <= len(endpoint) <= MAX_ENDPOINT):
        raise HTTPException(400, "invalid subscription: endpoint")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
        raise HTTPException(400, "invalid subscription: endpoint")
    if not isinstance(keys, dict):
        raise HTTPException(400, "invalid subscription: keys")
    p256dh = _b64url(keys.get("p256dh"), "p256dh", 80, 100)  # 65 bytes in base64url: 87 characters
    auth = _b64url(keys.get("auth"), "auth", 16, 30)  # 16 bytes: 22 characters
    return endpoint, p256dh, auth


@router.get("/key")
async def public_key(request: Request, worker: Worker = Depends(current_worker)):
    settings = request.app.state.settings
    if not enabled(settings):
        raise HTTPException(404, "push is not configured")
    return JSONResponse({"key": settings.vapid_public_key}, headers={"Cache-Control": "no-store"})


@router.post("/subscribe")
async def subscribe(request: Request, worker: Worker = Depends(current_worker)):
    check_csrf(request, request.headers.get("x-csrf-token"))
    rt = request.app.state.rt
    if not enabled(rt.settings):
        raise HTTPException(404, "push is not configured")
    if "json" not in (request.headers.get("content-type") or ""):
        raise HTTPException(415, "a JSON body is expected")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"a subscription holds at most {MAX_BODY} bytes")
    try:
        data = load_json(body)
    except BadPayload:
        raise HTTPException(400, "invalid JSON") from None
    endpoint, p256dh, auth = validate(data)
    async with rt.sessionmaker() as session, session.begin():
        existing = (await session.execute(select(PushSubscription).where(
            PushSubscription.endpoint == endpoint))).scalar()
        if existing is not None:
            existing.worker_id, existing.p256dh, existing.auth, existing.failures = worker.id, p256dh, auth, 0
        else:
            session.add(PushSubscription(worker_id=worker.id, endpoint=endpoint, p256dh=p256dh, auth=auth))
        await session.flush()
        ids = (await session.execute(select(PushSubscription.id).where(PushSubscription.worker_id == worker.id)
                                     .order_by(PushSubscription.id.desc()))).scalars().all()
        if len(ids) > MAX_PER_WORKER:
            await session.execute(delete(PushSubscription).where(PushSubscription.id.in_(ids[MAX_PER_WORKER:])))
    log.info("push subscription saved (worker %s)", worker.id)
    return Response(status_code=204)


@router.post("/unsubscribe")
async def unsubscribe(request: Request, worker: Worker = Depends(current_worker)):
    check_csrf(request, request.headers.get("x-csrf-token"))
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, f"at most {MAX_BODY} bytes")
    try:
        data = load_json(body)
    except BadPayload:
        raise HTTPException(400, "invalid JSON") from None
    endpoint = data.get("endpoint") if isinstance(data, dict) else None
    if not isinstance(endpoint, str) or len(endpoint) > MAX_ENDPOINT:
        raise HTTPException(400, "invalid subscription: endpoint")
    async with request.app.state.rt.sessionmaker() as session, session.begin():
        await session.execute(delete(PushSubscription).where(PushSubscription.endpoint == endpoint,
                                                             PushSubscription.worker_id == worker.id))
    return Response(status_code=204)


# Sending --------------------------------------------------------------------------------------
def wanted(updates: list[tuple[str, dict]]) -> list[tuple[str, int, int | None]]:
    """(kind, conversation id, worker id) of the updates that call for a push."""
    found, seen = [], set()
    for topic, payload in updates:
        event, conversation = payload.get("event"), payload.get("conversation")
        if not isinstance(conversation, int):
            continue
        if topic.startswith("org:") and event == "conversation_queued":
            key = ("waiting", conversation, None)
        elif topic.startswith("worker:") and event == "message_received":
            key = ("message", conversation, int(topic.split(":", 1)[1]))
        else:
            continue
        if key not in seen:
            seen.add(key)
            found.append(key)
    return found


async def dispatch(rt, updates: list[tuple[str, dict]]) -> None:
    """Send the pushes these live updates call for (a task of its own; errors are logged, never raised)."""
    todo = wanted(updates)
    if not todo or not enabled(rt.settings):
        return
    try:
        async with rt.sessionmaker() as session:
            sends = []
            for kind, conversation_id, worker_id in todo:
                conversation = await session.get(Conversation, conversation_id)
                if conversation is None:
                    continue
                if kind == "waiting":
                    query = select(Worker.id).where(Worker.organisation_id == conversation.organisation_id,
                                                    Worker.is_active.is_(True))
                    if conversation.team_id is not None:
                        query = query.where(Worker.team_id == conversation.team_id)
                    workers = (await session.execute(query)).scalars().all()
                else:
                    if conversation.assignee_id != worker_id:
                        continue
                    workers = [worker_id]
                if not workers:
                    continue
                subscriptions = (await session.execute(select(PushSubscription).where(
                    PushSubscription.worker_id.in_(workers)))).scalars().all()
                words = texts()[kind]
                message = json.dumps({"title": words["title"], "body": words["body"].format(n=conversation_id),
                                      "url": f"/inbox/conversations/{conversation_id}",
                                      "tag": f"conversation-{conversation_id}"}, ensure_ascii=False)
                sends += [(s.id, s.endpoint, s.p256dh, s.auth, message) for s in subscriptions]
        if not sends:
            return
        semaphore = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(send):
            async with semaphore:
                return send[0], await asyncio.to_thread(_send, rt.settings, *send[1:])

        results = await asyncio.gather(*(one(send) for send in sends))
        gone = [sid for sid, status in results if status in (404, 410)]
        if gone:
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
        log.info("push: %s sent, %s gone", sum(1 for _, s in results if s and s < 300), len(gone))
    except Exception as error:  # noqa: BLE001 - a push is a courtesy: never break the caller
        log.warning("push not sent (%s)", type(error).__name__)


def _send(settings, endpoint: str, p256dh: str, auth: str, message: str) -> int | None:
    """One encrypted POST to a push service (in a thread). The HTTP status, None on network errors."""
    from pywebpush import WebPushException, webpush

    try:
        response = webpush({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}, data=message,
                           vapid_private_key=settings.vapid_private_key,
                           vapid_claims={"sub": settings.vapid_subject or "mailto:contact@allervers.fr"},
                           ttl=3600, timeout=SEND_TIMEOUT)
        return response.status_code
    except WebPushException as error:
        return getattr(error.response, "status_code", None)
    except Exception as error:  # noqa: BLE001
        log.info("push send failed (%s)", type(error).__name__)
        return None


def notify_after_commit(rt, updates: list[tuple[str, dict]]) -> None:
    """Called by Runtime.after_commit: starts the sending, returns at once."""
    if updates and enabled(rt.settings) and wanted(updates):
        rt.spawn(dispatch(rt, updates))
