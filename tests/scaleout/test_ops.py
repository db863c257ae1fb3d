"""Probes, draining, production mode, /metrics and JSON logs, through the app's HTTP routes."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import app_client, csrf_of, eventually, login

ROOT = Path(__file__).resolve().parents[2]


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample of a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def say(client, **body):
    response = await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, **body})
    assert response.status_code == 200, response.text
    return response


async def test_livez_and_readyz(settings_for, backend):
    async with app_client(settings_for(rate_limits_enabled=False)) as client:
        live = await client.get("/livez")
        assert live.status_code == 200 and live.json() == {"ok": True}
        first = (await client.get("/readyz")).json()
        assert first["checks"]["directory"] in ("loading", "ok")  # loaded in the background

        async def is_ready():
            return (await client.get("/readyz")).status_code == 200

        await eventually(is_ready, timeout=30)
        ready = await client.get("/readyz")
        body = ready.json()
        assert body["ready"] is True and body["checks"]["database"] == "ok"
        assert body["checks"]["redis"] == ("ok" if backend == "postgres" and os.environ.get("ALLERVERS_TEST_REDIS_URL")
                                           else "not configured")
        assert body["rights"] == "off"  # reported, never blocking

        # A schema behind the head (an upgrade not yet run): not ready, with the reason.
        from sqlalchemy import text

        async with client.app.state.rt.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0001_initial'"))
        behind = await client.get("/readyz")
        assert behind.status_code == 503 and behind.json()["checks"]["database"] == "schema not at the migrations' head"
        heads = sorted(client.app.state.migration_heads)
        async with client.app.state.rt.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": heads[0]})
        assert (await client.get("/readyz")).status_code == 200


async def test_draining_refuses_webhooks_and_readiness(settings_for):
    from ops.shutdown import begin_draining

    async with app_client(settings_for(rate_limits_enabled=False)) as client:
        assert (await client.post("/chat/api/identity", json={})).status_code == 200
        await say(client, text="/start")
        begin_draining(client.app)
        refused = await client.post("/chat/api/messages", json={"client_id": uuid.uuid4().hex, "text": "bonjour"})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        assert "redémarre" in refused.json()["error"]
        telegram = await client.post("/bots/telegram/webhook", content=b"{}")
        assert telegram.status_code == 503
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/readyz")).json()["checks"]["shutdown"] == "draining"
        assert (await client.get("/livez")).status_code == 200  # still alive: not to be killed
        # Nothing of the refused message was stored.
        from sqlalchemy import func, select

        from conversations.models import INBOUND, Message

        async with client.app.state.rt.sessionmaker() as session:
            texts = (await session.execute(select(Message.text).where(Message.direction == INBOUND))).scalars().all()
        assert texts == ["/start"]


@pytest.mark.parametrize("overrides, expected", [
    ({}, ["no secret key", "demo seed", "not https", "SQLite"]),
    ({"secret_key": "short", "seed_demo": False, "public_url": "https://x.fr",
      "database_url": "postgresql+asyncpg://u@h/db"}, ["too short"]),
])
def test_production_mode_refuses_unsafe_settings(overrides, expected):
    from kernel.settings import Settings
    from ops.production import ProductionRefused, production_problems
    from allervers.app import create_app

    settings = Settings(_env_file=None, env="production", **overrides)
    problems = production_problems(settings)
    assert len(problems) == len(expected)
    for problem, word in zip(problems, expected):
        assert word in problem
    with pytest.raises(ProductionRefused) as refused:
        create_app(settings)
    assert "refuses to start in production mode" in str(refused.value)
    fine = Settings(_env_file=None, env="production", secret_key="k" * 40, seed_demo=False,
                    public_url="https://allervers.example.fr", database_url="postgresql+asyncpg://u@h/db")
    assert production_problems(fine) == []
    assert production_problems(Settings(_env_file=None)) == []  # development: anything goes


def test_production_refusal_through_the_real_server(tmp_path):
    """uvicorn --factory exits non-zero with the reasons, before listening."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLERVERS_")}
    env.update({"ALLERVERS_ENV": "production", "ALLERVERS_PUBLIC_URL": "http://allervers.example.fr",
                "ALLERVERS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a.db", "PYTHONPATH": str(ROOT)})
    done = subprocess.run([sys.executable, "-m", "uvicorn", "--factory", "allervers.app:create_app", "--port", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    for words in ("ALLERVERS_SECRET_KEY", "ALLERVERS_SEED_DEMO=false", "not https", "SQLite"):
        assert words in output, output


async def test_metrics_move_after_real_traffic(settings_for):
    settings = settings_for(rate_limits_enabled=False)
    async with app_client(settings) as client:
        before = (await client.get("/metrics")).text
        assert (await client.post("/chat/api/identity", json={})).status_code == 200
        for body in ({"text": "/start"}, {"choice": "oui"}, {"choice": "parler"}, {"choice": "logement"}):
            await say(client, **body)
        await client.app.state.rt.drain()
        after = (await client.get("/metrics")).text
        assert metric(after, "allervers_inbound_messages_total", channel="webchat") - \
            metric(before, "allervers_inbound_messages_total", channel="webchat") == 4
        assert metric(after, "allervers_inbound_handling_seconds_count", channel="webchat") - \
            metric(before, "allervers_inbound_handling_seconds_count", channel="webchat") == 4
        assert metric(after, "allervers_delivery_outcomes_total", channel="webchat", outcome="sent") > \
            metric(before, "allervers_delivery_outcomes_total", channel="webchat", outcome="sent")
        assert metric(after, "process_resident_memory_bytes") > 0
        for name in ("allervers_outbox_depth", "allervers_outbox_oldest_queued_seconds",
                     "allervers_conversations_waiting", "allervers_conversations_oldest_wait_seconds",
                     "allervers_rights_estimate_seconds", "allervers_delivery_failures_total"):
            assert f"# TYPE {name}" in after or f"# HELP {name}" in after, name

        # A worker answers: time to first human reply observed once (not again for the second reply).
        page = await login(client, settings.demo_worker_email, settings.demo_worker_password)
        assert page.status_code == 303
        inbox = await client.get("/inbox")
        conversation_id = int(inbox.text.split('data-conversation="')[1].split('"')[0])
        first = metric(after, "allervers_first_human_reply_seconds_count")
        for text in ("Bonjour, je suis là.", "Je regarde votre dossier."):
            page = await client.get(f"/inbox/conversations/{conversation_id}")
            reply = await client.post(f"/inbox/conversations/{conversation_id}/reply",
                                      data={"text": text, "csrf_token": csrf_of(page.text)})
            assert reply.status_code == 303, reply.text
        scraped = (await client.get("/metrics")).text
        assert metric(scraped, "allervers_first_human_reply_seconds_count") - first == 1


async def test_metrics_queue_gauges_follow_the_database(settings_for):
    """Queued rows (a platform down: nothing sent) show in the depth and the oldest age."""
    from datetime import timedelta

    from sqlalchemy import update

    from kernel.database import utcnow
    from conversations.models import OUTBOUND, QUEUED, Message

    async with app_client(settings_for(rate_limits_enabled=False)) as client:
        assert (await client.post("/chat/api/identity", json={})).status_code == 200
        await say(client, text="/start")
        await client.app.state.rt.drain()
        async with client.app.state.rt.sessionmaker() as session, session.begin():
            await session.execute(update(Message).where(Message.direction == OUTBOUND).values(
                status=QUEUED, created_at=utcnow() - timedelta(seconds=120)))
        scraped = (await client.get("/metrics")).text
        assert metric(scraped, "allervers_outbox_depth", status="queued") >= 1
        assert metric(scraped, "allervers_outbox_oldest_queued_seconds") >= 119


async def test_metrics_protection(settings_for):
    from allervers.app import create_app

    # Token mode
    async with app_client(settings_for(metrics_token="scrape-token-123")) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
        assert ok.status_code == 200 and "allervers_inbound_messages_total" in ok.text
    # Network mode: a client outside the allowed networks is refused
    app = create_app(settings_for(metrics_allow_networks="10.0.0.0/8"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.168.1.5", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as outside:
            refused = await outside.get("/metrics")
            assert refused.status_code == 403 and "not allowed" in refused.text
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as inside:
            assert (await inside.get("/metrics")).status_code == 200


async def test_json_logs_carry_the_request_id_never_the_body(settings_for):
    from ops.jsonlog import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    old_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        async with app_client(settings_for(rate_limits_enabled=False)) as client:
            assert (await client.post("/chat/api/identity", json={})).status_code == 200
            response = await client.post("/chat/api/messages", headers={"X-Request-ID": "req-abcdef123"},
                                         json={"client_id": uuid.uuid4().hex, "text": "Zoé 06 12 34 56 78 secret"})
            assert response.headers["x-request-id"] == "req-abcdef123"
            generated = await client.get("/livez", headers={"X-Request-ID": "bad id!"})
            assert len(generated.headers["x-request-id"]) == 32  # a bad id is replaced
            logging.getLogger("conversations.test").info("line in a request %s", "x")
            said = "Zoé at " + "zoe@example" + ".org said 'sec" + "ret'"
            try:
                raise ValueError(said)
            except ValueError:
                logging.getLogger("conversations.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    text = stream.getvalue()
    assert "secret" not in text and "06 12 34 56 78" not in text and "zoe@example.org" not in text
    failed = [line for line in lines if line["message"] == "failed"]
    assert failed and "ValueError" in failed[0]["error"]
