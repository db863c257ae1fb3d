"""/metrics in the Prometheus text format (prometheus-client).

Counters and histograms are per process (Prometheus sums the pods); they are fed by one-line hooks
in the code paths they measure (conversations.receive, conversations.deliver, conversations.actions,
handoff.transitions). The queue gauges are read from the database at scrape time, so every process
reports the same shared truth: outbox depth and its oldest queued row, conversations waiting for a
worker and the oldest wait.

Protection (ops.metrics.allowed): with ALLERVERS_METRICS_TOKEN set, only `Authorization: Bearer
<token>`; without it, only clients in ALLERVERS_METRICS_ALLOW_NETWORKS (loopback by default: a
sidecar or a node-local scraper). Never labels with people's data: channels, reasons, outcomes only.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from contextlib import contextmanager

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,
                               PlatformCollector, ProcessCollector, generate_latest)
from sqlalchemy import func, select

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # RSS, CPU, open files of this process
PlatformCollector(registry=REGISTRY)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
WAIT_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)

INBOUND = Counter("allervers_inbound_messages_total", "Inbound messages received, per channel", ["channel"],
                  registry=REGISTRY)
HANDLING = Histogram("allervers_inbound_handling_seconds",
                     "From receive() to the message committed and handled, per channel", ["channel"],
                     buckets=LATENCY_BUCKETS, registry=REGISTRY)
DELIVERED = Counter("allervers_delivery_outcomes_total", "Outbound send attempts by outcome",
                    ["channel", "outcome"], registry=REGISTRY)
DELIVERY_FAILURES = Counter("allervers_delivery_failures_total",
                            "Failed send attempts (retried or final) by reason", ["channel", "reason", "final"],
                            registry=REGISTRY)
RIGHTS = Histogram("allervers_rights_estimate_seconds", "Rights estimates (OpenFisca), end to end",
                   buckets=LATENCY_BUCKETS, registry=REGISTRY)
FIRST_REPLY = Histogram("allervers_first_human_reply_seconds",
                        "From the hand-off request to a worker's first reply in the conversation",
                        buckets=WAIT_BUCKETS, registry=REGISTRY)
OUTBOX_DEPTH = Gauge("allervers_outbox_depth", "Outbound messages queued or being sent (all processes)",
                     ["status"], registry=REGISTRY)
OUTBOX_OLDEST = Gauge("allervers_outbox_oldest_queued_seconds", "Age of the oldest queued outbound message",
                      registry=REGISTRY)
WAITING = Gauge("allervers_conversations_waiting", "Conversations waiting for a worker", registry=REGISTRY)
WAITING_OLDEST = Gauge("allervers_conversations_oldest_wait_seconds",
                       "How long the longest-waiting conversation has waited", registry=REGISTRY)
READY = Gauge("allervers_rights_ready", "1 once the rights estimator is loaded", registry=REGISTRY)


@contextmanager
def handling(channel: str):
    """Around receive(): counts the message and times its handling."""
    INBOUND.labels(channel).inc()
    started = time.perf_counter()
    try:
        yield
    finally:
        HANDLING.labels(channel).observe(time.perf_counter() - started)


def failure_reason(error: str | None) -> str:
    """A short, bounded label from a delivery error (never its text: it may name a person)."""
    text = (error or "").lower()
    for needle, reason in (("429", "rate_limited"), ("rate", "rate_limited"), ("window", "window_closed"),
                           ("timeout", "timeout"), ("timed out", "timeout"), ("connect", "network"),
                           ("network", "network"), ("too large", "too_large"), ("blocked", "blocked"),
                           ("forbidden", "blocked"), ("not configured", "not_configured"),
                           ("still failing", "gave_up")):
        if needle in text:
            return reason
    for code in ("500", "502", "503", "504"):
        if code in text:
            return "server_error"
    for code in ("400", "401", "403", "404"):
        if code in text:
            return "rejected"
    return "other"


def delivery_outcomes(outcomes) -> None:
    """After a runner's sends: (job, outcome) pairs of conversations.deliver."""
    for job, outcome in outcomes:
        channel = job.address.channel
        DELIVERED.labels(channel, outcome.status).inc()
        if outcome.status == "failed" or (outcome.status == "queued" and outcome.error):
            DELIVERY_FAILURES.labels(channel, failure_reason(outcome.error),
                                     "yes" if outcome.status == "failed" else "no").inc()


@contextmanager
def rights_timer():
    started = time.perf_counter()
    try:
        yield
    finally:
        RIGHTS.observe(time.perf_counter() - started)


async def first_reply(session, conversation_id: int, message_id: int) -> None:
    """In handoff.transitions.reply: the first worker message of the conversation since its latest
    hand-off request is timed from that request."""
    from kernel.database import utcnow
    from conversations.models import Event, Message

    asked = (await session.execute(select(func.max(Event.created_at)).where(
        Event.conversation_id == conversation_id, Event.type == "handoff_requested"))).scalar()
    if asked is None:
        return
    earlier = (await session.execute(select(func.count(Message.id)).where(
        Message.conversation_id == conversation_id, Message.author_worker_id.is_not(None),
        Message.id != message_id, Message.created_at >= asked))).scalar()
    if not earlier:
        FIRST_REPLY.observe(max(0.0, (utcnow() - _aware(asked)).total_seconds()))


def _aware(value):
    from datetime import timezone

    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


async def refresh_gauges(rt) -> None:
    from kernel.database import utcnow
    from conversations.models import OUTBOUND, QUEUED, SENDING, WAITING as WAITING_STATUS, Conversation, Message

    now = utcnow()
    async with rt.sessionmaker() as session:
        rows = (await session.execute(select(Message.status, func.count(Message.id)).where(
            Message.direction == OUTBOUND, Message.status.in_((QUEUED, SENDING))).group_by(Message.status))).all()
        oldest = (await session.execute(select(func.min(Message.created_at)).where(
            Message.direction == OUTBOUND, Message.status == QUEUED))).scalar()
        waiting, oldest_wait = (await session.execute(select(func.count(Conversation.id), func.min(
            Conversation.updated_at)).where(Conversation.status == WAITING_STATUS))).one()
    counts = dict(rows)
    for status in (QUEUED, SENDING):
        OUTBOX_DEPTH.labels(status).set(counts.get(status, 0))
    OUTBOX_OLDEST.set(max(0.0, (now - _aware(oldest)).total_seconds()) if oldest else 0)
    WAITING.set(waiting or 0)
    WAITING_OLDEST.set(max(0.0, (now - _aware(oldest_wait)).total_seconds()) if oldest_wait else 0)
    READY.set(1 if getattr(rt.rights, "ready", False) else 0)


def allowed(request: Request, settings) -> bool:
    token = settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for network in settings.metrics_allow_networks.split(","):
        network = network.strip()
        if network:
            try:
                if address in ipaddress.ip_network(network, strict=False):
                    return True
            except ValueError:
                continue
    return False


router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request):
    settings = request.app.state.settings
    if not allowed(request, settings):
        if settings.metrics_token:
            raise HTTPException(401, "metrics: a valid bearer token is required",
                                headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "metrics: this address is not allowed (ALLERVERS_METRICS_ALLOW_NETWORKS)")
    await refresh_gauges(request.app.state.rt)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST,
                    headers={"Cache-Control": "no-store"})
