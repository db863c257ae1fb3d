"""N processes that lose nothing: three app processes (uvicorn, real subprocesses) behind a loopback
round-robin proxy, on PostgreSQL + Redis + an S3 server (moto), with the fake Bot API.

Many people send their updates through the proxy (posted again until a 200, as Telegram does);
one process is killed with SIGKILL mid-load and started again. Then: every update that got a 200
is stored once and answered, nothing is left queued or sending; a worker whose inbox stream is open
on process A sees live what arrives through B and C; a voice note that came in through one process
plays from another (the object store is shared); a flow published and places imported in the
console of A, while B is down, are what new people get from each of the three processes.

Kept short: 42 s on this project's 2-core machine when quiet (72 s before; 106-130 s at load
average 8-9, most of it the start of three processes: ~8 s of CPU each, half of it importing
aiogram's types): the processes and the S3 server start together, the load is 6 s, the directory
holds only the imported places (no shipped data: ALLERVERS_DIRECTORY_AUTOLOAD=false), B's restart
overlaps the checks on A and C, the processes stop together. The phases' times are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter

import aiohttp
import pytest

from conversations.audio import silent_ogg_opus
from tests.conftest import POSTGRES_URL, REDIS_URL, bench_module, reset_postgres, reset_redis
from tests.fakes.telegram_api import FakeTelegram

pytestmark = [
    pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis,
    pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL),
                       reason="needs PostgreSQL and Redis shared by three processes: set ALLERVERS_TEST_POSTGRES_URL "
                              "and ALLERVERS_TEST_REDIS_URL"),
]

RATE, SECONDS, GAP = 40, 6, 0.5  # the load: 40 updates/s offered for 6 s, a person's updates 0.5 s apart
PEOPLE = RATE * SECONDS // 5
WORKER_CHAT = 600_000_001


class Phases:
    """How long each part took (printed: where the test's time goes)."""

    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.times: list[str] = []

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.times.append(f"{name} {now - self.last:.1f} s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.times) + f"; total {time.monotonic() - self.started:.1f} s"


async def test_three_processes_one_killed_lose_nothing(tmp_path):
    b = bench_module("bench_processes")
    from tests.scaleout.s3server import S3Server

    phases = Phases()
    reset_postgres(POSTGRES_URL)
    reset_redis(REDIS_URL)
    with contextlib.ExitStack() as stack:
        s3 = S3Server()  # spawned now, waited for while the app processes start (they only use it later)
        stack.callback(s3.__exit__)
        fake = stack.enter_context(FakeTelegram())
        extra = {f"ALLERVERS_{key.upper()}": value for key, value in s3.settings().items()}
        cluster = b.Cluster(3, POSTGRES_URL, REDIS_URL, tmp_path, fake, extra)
        starting = asyncio.create_task(cluster.start())
        await asyncio.to_thread(lambda: s3.__enter__().fresh_bucket())
        try:
            await starting
        except BaseException:
            await cluster.stop()
            raise
        a_app, b_app, c_app = cluster.apps
        phases("3 processes started")
        try:
            # A worker on A, with a person already handed off to them (through the proxy).
            worker, _ = await asyncio.gather(b.worker_session(a_app.url),
                                             b.handed_off_person(cluster.proxy.url, WORKER_CHAT, 1))
            conversation = await b.conversation_of(POSTGRES_URL, WORKER_CHAT)
            async with b.Stream(worker, f"/inbox/stream?conversation={conversation}") as stream, \
                    aiohttp.ClientSession() as session:
                # Live on A, from B and from C (posted to each process directly).
                for update_id, app in ((20, b_app), (21, c_app)):
                    stream.clear()
                    await b.post_until_200(session, app.url, b.update_body(update_id, WORKER_CHAT, "text",
                                                                           f"via {app.port}"))
                    await stream.next(lambda e, d: e == "timeline" and d == str(conversation), timeout=10)

                # A voice note through C, played by the worker on A (shared object store).
                fake.register_file("scale-voice", silent_ogg_opus(1), "voice/file_1.oga")
                voice = {"update_id": 22, "message": {
                    "message_id": 22, "date": 1763800000, "chat": {"id": WORKER_CHAT, "type": "private"},
                    "from": {"id": WORKER_CHAT, "is_bot": False, "first_name": "Alex"},
                    "voice": {"duration": 1, "mime_type": "audio/ogg", "file_id": "scale-voice",
                              "file_unique_id": "sv1"}}}
                await b.post_until_200(session, c_app.url, json.dumps(voice).encode())
                media_id = await wait_media(POSTGRES_URL)
                played = await worker.get(f"/inbox/media/{media_id}")
                assert played.status_code == 200 and played.content == silent_ogg_opus(1)
                assert len(s3.keys()) == 1
                phases("live from B and C, voice through C played on A")

                # Load through the proxy; B is killed mid-load and started again. Meanwhile the
                # admin publishes a new welcome and imports places in the console of A.
                acked: list[int] = []
                stats: dict = {}
                load = asyncio.create_task(b.open_loop(cluster.proxy.url, RATE, SECONDS, 610_000_001, 900_000_001,
                                                       acked=acked, stats=stats, gap=GAP))
                admin = await admin_session(a_app.url)
                await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - phases.last)))
                b_app.kill()
                killed_after = len(acked)
                b_app.start()
                welcome = "👋 Version 2 de l'accueil de {{ organisation }}."
                imported, _ = await asyncio.gather(import_places(admin), publish_welcome(admin, welcome))
                assert "2 enregistrements acceptés, 0 refusé" in imported, imported
                await load
                phases(f"load ({len(acked)} updates; B killed after {killed_after}), publish and import")
                # New people on A and C (running when the flow and the places changed), while B starts again.
                asked = [asyncio.create_task(new_person_finds_food(session, fake, app, 620_000_001 + i, 30 + 10 * i))
                         for i, app in ((0, a_app), (2, c_app))]
                await b_app.wait_ready(timeout=120)
                phases("B up again")

                # The worker's stream on A was never interrupted by B's death.
                stream.clear()
                await b.post_until_200(session, b_app.url, b.update_body(23, WORKER_CHAT, "text", "after"))
                await stream.next(lambda e, d: e == "timeline" and d == str(conversation), timeout=10)
                asked.append(asyncio.create_task(new_person_finds_food(session, fake, b_app, 620_000_002, 40)))
                for app, (first, found) in zip((a_app, c_app, b_app), await asyncio.gather(*asked)):
                    assert "Version 2 de l'accueil" in first, (app.port, first)
                    assert RESTOS in found, (app.port, found)
                phases("new welcome and imported places on A, B and C")
            await asyncio.gather(worker.aclose(), admin.aclose())
            await b.wait_drained(POSTGRES_URL, fake, timeout=60)
            phases("drained")
        finally:
            await cluster.stop()
        inbound, sent, unsent = await b.database_counts(POSTGRES_URL)
    assert killed_after > 0 and len(acked) == PEOPLE * 5
    assert all(cluster.proxy.connections), cluster.proxy.connections  # every process took some
    lost = [u for u in acked if str(u) not in inbound]
    assert lost == [], f"{len(lost)} updates answered 200 but not stored"
    assert all(n == 1 for n in inbound.values()), "an update stored twice"
    assert not unsent.get("queued") and not unsent.get("sending"), unsent
    answered = {str(c.chat_id) for c in fake.sent_messages()}
    people = {str(610_000_001 + i) for i in range(PEOPLE)}
    assert people <= answered, f"{len(people - answered)} people never answered"
    # No reply sent twice beyond what was in flight in the killed process (16 at most).
    received = Counter((str(c.chat_id), c.params.get("text")) for c in fake.sent_messages())
    twice = sum(max(0, n - sent.get(key, 0)) for key, n in received.items())
    assert twice <= 16
    phases("stopped")
    print(f"\n3 processes, B killed after {killed_after} updates: {len(acked)} updates answered 200, "
          f"{stats.get('retried', 0)} posts retried, lost 0, replies sent twice {twice}, "
          f"connections per process {cluster.proxy.connections}\n{phases}")


RESTOS = "Restos du Cœur de Rezé"


async def import_places(admin) -> str:
    """The console's file import on A (admin/directory_import.py): a food-aid place in Rezé, the
    organisation's own. The import announces the change: every process reloads its places. (The
    directory holds nothing else: ALLERVERS_DIRECTORY_AUTOLOAD=false, the smallest there is.)"""
    from tests.admin.test_directory import until_finished

    page = await admin.get("/admin/directory/import")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    body = json.dumps({"structures": [{
        "source": "asso-locale", "id": "asso-locale--1", "nom": RESTOS, "date_maj": "2026-10-01",
        "adresse": "3 rue de la Paix", "code_postal": "44400", "code_insee": "44143", "commune": "Rezé",
        "latitude": 47.18, "longitude": -1.55, "telephone": "02 40 11 22 33"}], "services": [{
        "source": "asso-locale", "id": "asso-locale--1--colis", "structure_id": "asso-locale--1",
        "nom": "Colis alimentaires", "description": "Colis chaque semaine sur inscription.", "date_maj": "2026-10-01",
        "thematiques": ["equipement-et-alimentation--alimentation"]}]}).encode()
    started = await admin.post("/admin/directory/import", data={"csrf_token": token},
                               files={"file": ("lieux.json", body, "application/json")})
    assert started.status_code == 303, started.text
    return await until_finished(admin, started.headers["location"] + "/progress")


async def admin_session(url: str):
    b = bench_module("bench_processes")
    return await b.worker_session(url, "admin@demo.allervers.fr")


async def publish_welcome(admin, text: str) -> None:
    from tests.admin.test_flows_processes import publish_welcome as publish

    await publish(admin, text)


async def new_person_finds_food(session, fake: FakeTelegram, app, chat: int, first_update: int) -> tuple[str, str]:
    """A new person, through `app` only: the welcome they get, and the answer to food near Rezé."""
    b = bench_module("bench_processes")
    steps = [("text", "/start"), ("callback", "oui"), ("callback", "lieux"), ("callback", "se-nourrir"),
             ("text", "Rezé")]
    for offset, (kind, value) in enumerate(steps):
        await b.post_until_200(session, app.url, b.update_body(first_update + offset, chat, kind, value))
        if offset == 0:
            first = (await fake.wait_for_async(lambda: fake.sent_texts(chat), timeout=10))[0]
    deadline = time.monotonic() + 15
    while not any(RESTOS in text for text in fake.sent_texts(chat)) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return first, "\n".join(fake.sent_texts(chat))


async def wait_media(database_url: str, timeout: float = 20.0) -> int:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                found = (await connection.execute(text("SELECT id FROM media ORDER BY id"))).scalar()
            if found:
                return found
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    raise AssertionError("the voice note was not stored")
