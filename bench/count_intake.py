"""What one intake transaction costs: its statements and round trips to PostgreSQL, in-process.

    python bench/count_intake.py --no-delivery                         # PostgreSQL + Redis (wiped), batches of 16
    python bench/count_intake.py --no-delivery --batch 16 --vary       # batches of varying sizes (~10)
    python bench/count_intake.py --no-delivery --batch 1 --rounds 300  # the unbatched price
    python bench/count_intake.py --statements 200                      # each statement's text, counted
    python bench/count_intake.py --sqlite

The closed loop's load (bench_processes.py's wrk script) without HTTP: people on Telegram, each
sends the five updates of bench_crash.SCRIPT then five free texts, and a new person follows;
`--batch` people at a time go through the intake as one batch (`Intake._write`: the people's
locks, store_and_handle, the after-commit work). Prints per batch the SQL statements by kind
(SQLAlchemy's cursor events) and the round trips to PostgreSQL (asyncpg's calls: statements,
BEGIN/COMMIT, the pool's ping, a statement prepared anew), and the process's CPU per batch — that
figure moves with whatever else the machine runs: compare counts, and CPU only within one session.
`--no-delivery` leaves the replies queued (the closed loop's pacer holds most of them anyway),
so that the CPU is the intake's. PostgreSQL: `--postgres-url` (default
`…/allervers_count_intake`, **wiped**); Redis `--redis-url` (default db 7,
**flushed**): run it under `flock /work/bench.lock`, as the other benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from sqlalchemy import event  # noqa: E402

from bench_crash import SCRIPT, SECRET, TOKEN, reset_postgres, reset_redis  # noqa: E402
from bots.base import InboundMessage  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

PER_PERSON = 10


def kind_of(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper()
    table = ""
    if verb == "SELECT":
        found = re.search(r"\sFROM\s+(\S+)", statement)
        table = found.group(1) if found else ""
    elif verb in ("INSERT", "UPDATE", "DELETE"):
        table = words[2] if verb != "UPDATE" else words[1]
    return f"{verb} {table}".strip()


def message_of(person: int, step: int, update_id: int) -> InboundMessage:
    kind, value = SCRIPT[step] if step < len(SCRIPT) else ("text", f"message {step}")
    user = str(900_000_000 + person)
    if kind == "callback":
        return InboundMessage(channel="telegram", user_id=user, external_id=str(update_id), choice=value,
                              callback_id=f"cb{update_id}", locale="fr", reply_to=str(update_id))
    return InboundMessage(channel="telegram", user_id=user, external_id=str(update_id), text=value, locale="fr")


async def main(args) -> None:
    from allervers.app import create_app
    from kernel.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="allervers-count-"))
    with FakeTelegram() as fake:
        settings = Settings(_env_file=None, database_url=args.postgres_url or f"sqlite+aiosqlite:///{workdir}/a.db",
                            redis_url=args.redis_url or None, telegram_bot_token=TOKEN,
                            telegram_webhook_secret=SECRET, telegram_api_base=fake.base_url,
                            rights_backend="off", directory_autoload=False, secret_key="count-bench",
                            media_dir=workdir / "media")
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            rt = app.state.rt
            if args.no_delivery:  # the intake alone: queued rows stay queued (the closed loop's pacer holds most)
                rt.outbox.can_claim_at_once = lambda *a, **k: False
                rt.outbox.kick = lambda *a: None
            counts: Counter = Counter()
            texts: Counter = Counter()
            counting = [False]

            def seen(conn, cursor, statement, parameters, context, executemany) -> None:
                if counting[0]:
                    counts[kind_of(statement)] += 1
                    if args.statements:
                        texts[" ".join(statement.split())[:args.statements]] += 1

            event.listen(rt.engine.sync_engine, "before_cursor_execute", seen)
            trips: Counter = Counter()  # asyncpg calls, each a round trip to PostgreSQL (prepare: a statement parsed anew)
            if args.postgres_url:
                import asyncpg
                from asyncpg.prepared_stmt import PreparedStatement

                def counted(owner, name: str, label: str) -> None:
                    plain = getattr(owner, name)

                    async def call(self, *a, **k):
                        if counting[0]:
                            what = label
                            if label == "execute" and a and isinstance(a[0], str):
                                what = a[0].split()[0].upper()  # BEGIN, COMMIT, ROLLBACK
                            trips[what] += 1
                        return await plain(self, *a, **k)

                    setattr(owner, name, call)

                counted(asyncpg.Connection, "prepare", "prepare")
                counted(asyncpg.Connection, "execute", "execute")
                counted(asyncpg.Connection, "executemany", "executemany")
                counted(asyncpg.Connection, "fetchrow", "fetchrow (ping)")
                counted(PreparedStatement, "fetch", "statement")
            loop = asyncio.get_running_loop()
            update_ids = iter(range(1, 10**9))
            # `batch` people at once, each at its own step: person i of the batch starts i rounds late
            people = list(range(args.batch))
            steps = [-(i % PER_PERSON) for i in range(args.batch)]
            next_person = [args.batch]
            chance = random.Random(1)

            async def one_round() -> int:
                batch = []
                for slot in range(args.batch):
                    if args.vary and chance.random() < 0.4:  # batches of varying sizes, as under real load
                        continue
                    if steps[slot] < 0:
                        steps[slot] += 1
                        continue
                    batch.append((message_of(people[slot], steps[slot], next(update_ids)), loop.create_future()))
                    steps[slot] += 1
                    if steps[slot] == PER_PERSON:
                        steps[slot], people[slot] = 0, next_person[0]
                        next_person[0] += 1
                if batch:
                    await rt.intake._write(batch)
                return len(batch)

            for _ in range(args.warmup):
                await one_round()
            await rt.drain(timeout=30)
            counting[0] = True
            profile = cProfile.Profile() if args.profile else None
            updates = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            for _ in range(args.rounds):
                updates += await one_round()
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            counting[0] = False
            await rt.drain(timeout=30)
            if profile:
                profile.dump_stats(args.profile)
    total = sum(counts.values())  # noqa
    print(f"batch {args.batch}: {args.rounds} batches, {updates} updates, {cpu / args.rounds * 1000:.2f} ms CPU per batch,"
          f" {cpu / updates * 1000:.3f} ms per update (wall {wall:.1f} s)")
    print(f"statements per batch {total / args.rounds:.1f}, per update {total / updates:.2f};"
          f" round trips to PostgreSQL per batch {sum(trips.values()) / args.rounds:.1f}:"
          f" {', '.join(f'{k} {n / args.rounds:.2f}' for k, n in trips.most_common())}")
    for kind, n in counts.most_common():
        print(f"  {n / args.rounds:7.2f}  {kind}")
    for text, n in texts.most_common():
        print(f"  {n / args.rounds:7.2f}  {text}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "ALLERVERS_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/allervers_count_intake"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")  # the benchmarks' db
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--profile")
    parser.add_argument("--vary", action="store_true", help="each person sits out 40 %% of the rounds")
    parser.add_argument("--no-delivery", action="store_true", help="leave the replies queued (the intake alone)")
    parser.add_argument("--statements", type=int, default=0, help="print each statement's first N characters")
    args = parser.parse_args()
    if args.sqlite:
        args.postgres_url, args.redis_url = "", ""
    if args.postgres_url:
        reset_postgres(args.postgres_url)
    if args.redis_url:
        reset_redis(args.redis_url)
    asyncio.run(main(args))
