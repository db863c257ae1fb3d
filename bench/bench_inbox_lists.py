"""The inbox lists with 1,000 open conversations: server time of GET /inbox and of the live
refresh (GET /inbox/partials/lists), against an empty organisation's render in the same run.

    python bench/bench_inbox_lists.py                      # SQLite (a temporary file)
    python bench/bench_inbox_lists.py --postgres postgresql+asyncpg://postgres@127.0.0.1:5432/bench
    python bench/bench_inbox_lists.py --open 1000 --rounds 60

The app runs in-process (httpx over ASGI: no network, the time is the server's: routing, session,
queries, template). 1,000 open conversations (600 waiting, 300 mine, 100 a colleague's), 5 messages
each, plus 2,000 closed ones in the history. Prints median and p90 per route, in milliseconds: the
wall time of the request and the CPU time the process spent on it (every thread: the database
driver's too), which a loaded machine inflates less.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


async def run(database_url: str, open_count: int, rounds: int) -> None:
    import httpx

    from allervers.app import create_app
    from handoff.auth import hash_password
    from kernel.settings import Settings
    from handoff.models import Organisation, Worker
    from tests.conftest import csrf_of
    from tests.handoff.seeding import organisation_id, seed_conversations, worker_id

    media = tempfile.mkdtemp(prefix="bench-inbox-")
    settings = Settings(_env_file=None, database_url=database_url, media_dir=Path(media), secret_key="bench",
                        rights_backend="off", directory_autoload=False, rate_limits_enabled=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        rt = app.state.rt
        org = await organisation_id(rt)
        camille = await worker_id(rt, settings.demo_worker_email)
        sam = await worker_id(rt, settings.demo_admin_email)
        waiting = open_count * 6 // 10
        mine = open_count * 3 // 10
        await seed_conversations(rt, org, waiting, status="waiting", messages_each=5, names=["Zoé", "Ali", "Léa"])
        await seed_conversations(rt, org, mine, status="assigned", assignee_id=camille, messages_each=5,
                                 start=waiting, channel="whatsapp")
        await seed_conversations(rt, org, open_count - waiting - mine, status="assigned", assignee_id=sam,
                                 messages_each=5, start=waiting + mine, channel="webchat")
        await seed_conversations(rt, org, 2 * open_count, status="closed", assignee_id=camille, messages_each=2,
                                 start=10 * open_count)
        async with rt.sessionmaker() as session, session.begin():
            empty = Organisation(slug="vide", name="Vide")
            session.add(empty)
            await session.flush()
            session.add(Worker(organisation_id=empty.id, email="vide@example.org", first_name="Vide",
                               password_hash=hash_password("bench-password")))

        async def client_for(email: str, password: str) -> httpx.AsyncClient:
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
            page = await client.get("/inbox/login")
            answer = await client.post("/inbox/login", data={"email": email, "password": password,
                                                              "csrf_token": csrf_of(page.text)})
            assert answer.status_code == 303, answer.status_code
            return client

        full = await client_for(settings.demo_worker_email, settings.demo_worker_password)
        bare = await client_for("vide@example.org", "bench-password")
        routes = [("GET /inbox", "/inbox"), ("GET /inbox/partials/lists", "/inbox/partials/lists"),
                  ("GET /inbox?q=zoé", "/inbox?q=zo%C3%A9"), ("GET /inbox?view=closed", "/inbox?view=closed")]
        print(f"backend: {database_url.split(':')[0]}; {open_count} open conversations; {rounds} rounds each; "
              f"load average {open('/proc/loadavg').read().split()[0]}")
        for name, path in routes:
            for label, client in (("empty org", bare), (f"{open_count} open", full)):
                for _ in range(3):  # warm up
                    await client.get(path)
                samples, cpu = [], []
                for _ in range(rounds):
                    started, cpu_started = time.perf_counter(), time.process_time()
                    response = await client.get(path)
                    samples.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - cpu_started) * 1000)
                    assert response.status_code == 200, response.status_code
                median, p90 = quantiles(samples)
                cpu_median, cpu_p90 = quantiles(cpu)
                print(f"  {name:26s} {label:10s} wall median {median:6.1f} p90 {p90:6.1f} ms | "
                      f"CPU median {cpu_median:6.1f} p90 {cpu_p90:6.1f} ms ({len(response.content) // 1024} KiB)")
        await full.aclose()
        await bare.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL (its database is emptied)")
    parser.add_argument("--open", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    if args.postgres:
        from tests.conftest import reset_postgres

        reset_postgres(args.postgres)
        url = args.postgres
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-inbox-')}/bench.db"
    asyncio.run(run(url, args.open, args.rounds))


if __name__ == "__main__":
    main()
