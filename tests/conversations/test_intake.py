"""Group commit (conversations/intake.py): messages arriving together share one transaction,
through the web chat's real HTTP API; a failing message does not take the others down with it."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack

from sqlalchemy import event, select, update

from conversations.models import Address, Conversation, Message
from tests.conftest import app_client
from tests.webchat import Person


class Statements:
    """The SQL statements sent to the driver that start with one of `prefixes` (and contain
    `containing`), in order."""

    def __init__(self, engine, *prefixes: str, containing: str = "") -> None:
        self.seen: list[str] = []
        self.engine, self.prefixes, self.containing = engine.sync_engine, prefixes, containing

    @property
    def count(self) -> int:
        return len(self.seen)

    @property
    def texts(self) -> set[str]:
        return set(self.seen)

    def __enter__(self) -> "Statements":
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith(self.prefixes) and self.containing in statement:
            self.seen.append(statement)


def inbound_inserts(engine) -> Statements:
    """Counts the statements that insert inbound messages (one per transaction of the intake)."""
    return Statements(engine, "INSERT INTO messages", containing="ON CONFLICT")


async def post_while_held(client, people: list[Person], text: str) -> tuple[int, list[dict]]:
    """Hold the lock of the first person (as a worker's reply holds one), post for them, then for
    everyone else at once: the intake's one writer waits on that lock while the others
    pile up, so the others form the next batch. Returns (number held, the answers)."""
    rt = client.app.state.rt
    held, others = people[:1], people[1:]
    async with AsyncExitStack() as locks:
        for person in held:
            await locks.enter_async_context(rt.locks.hold(f"webchat:{person.uid}"))
        first = []
        for person in held:
            first.append(asyncio.create_task(person.post(text)))
            await asyncio.sleep(0.05)
        rest = [asyncio.create_task(person.post(text)) for person in others]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in first + rest)  # nothing stored yet
    return len(held), await asyncio.gather(*first, *rest)


async def test_messages_arriving_together_share_one_transaction(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        people = [await Person.joined(client) for _ in range(6)]
        with inbound_inserts(rt.engine) as inserts:
            held, answers = await post_while_held(client, people, "bonjour")
        await rt.drain(timeout=15)
        assert [a["duplicate"] for a in answers] == [False] * 6
        assert inserts.count == held + 1  # each held person alone, then the others together
        for person in people:  # each new person got their own welcome and consent question
            lines = await person.bot_lines()
            assert "Bonjour" in lines[0]["text"] and [c[0] for c in lines[1]["choices"]] == ["oui", "non"]
        async with rt.sessionmaker() as session:
            handled = (await session.execute(select(Message.handled_at).where(Message.direction == "in"))).all()
            conversations = (await session.execute(select(Conversation.id))).all()
        assert len(handled) == 6 and all(h is not None for (h,) in handled)
        assert len(conversations) == 6


async def test_a_failing_message_is_kept_unhandled_and_the_others_are_answered(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        people = [await Person.joined(client) for _ in range(4)]
        for person in people:
            await person.send("/start")
            await person.send(choice="oui")
        broken = people[-1]
        async with rt.sessionmaker() as session, session.begin():  # a state the bot cannot read
            contact_id = (await session.execute(select(Address.contact_id).where(
                Address.external_id == broken.uid))).scalar_one()
            await session.execute(update(Conversation).where(Conversation.contact_id == contact_id)
                                  .values(flow_state={"answers": ["not", "a", "mapping"]}))
        with inbound_inserts(rt.engine) as inserts:
            held, _ = await post_while_held(client, people, "menu")
        await rt.drain(timeout=15)
        # each held one; the batch of the others (rolled back); each of them alone; the failing one
        # stored again, unhandled
        others = len(people) - held
        assert inserts.count == held + 1 + others + 1
        for person in people:
            last = await person.last()
            if person is broken:
                assert last["text"] == "Que voulez-vous faire ? 👇"  # from before: nothing new
                assert len(await person.bot_lines()) == 3
            else:
                assert last["text"] == "Que voulez-vous faire ? 👇" and len(await person.bot_lines()) == 4
        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(Message.contact_id, Message.handled_at).where(
                Message.direction == "in", Message.text == "menu"))).all()
        assert len(rows) == 4  # every message stored once
        assert [c for c, h in rows if h is None] == [contact_id]  # only the failing one left unhandled


async def test_a_retry_inside_a_batch_is_not_stored_twice(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        people = [await Person.joined(client) for _ in range(3)]
        body = {"client_id": "same-id-twice", "text": "bonjour"}
        assert (await client.post("/chat/api/messages", json=body, headers=people[1].headers)).json()["duplicate"] is False
        async with rt.locks.hold(f"webchat:{people[0].uid}"), rt.locks.hold(f"webchat:{people[2].uid}"):
            first = [asyncio.create_task(people[0].post("bonjour"))]
            await asyncio.sleep(0.05)
            retry = asyncio.create_task(client.post("/chat/api/messages", json=body, headers=people[1].headers))
            other = asyncio.create_task(people[2].post("bonjour again"))
            await asyncio.sleep(0.05)
        await asyncio.gather(*first)
        assert (await retry).json()["duplicate"] is True
        assert (await other)["duplicate"] is False
        await rt.drain(timeout=15)
        async with rt.sessionmaker() as session:
            stored = (await session.execute(select(Message.id).where(
                Message.external_id == f"{people[1].uid}:same-id-twice"))).all()
        assert len(stored) == 1


async def test_handoffs_in_one_batch_are_spread_over_the_workers(settings_for):
    from handoff.models import Worker
    from tests.handoff.test_inbox import add_worker

    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        await add_worker(rt, "dominique@demo.allervers.fr", "Dominique", online=True)
        people = [await Person.joined(client) for _ in range(5)]
        for person in people:
            await person.send("/start")
            await person.send(choice="oui")
            await person.send(choice="parler")  # "C'est à quel sujet ?"
        with inbound_inserts(rt.engine) as inserts:
            held, _ = await post_while_held(client, people, "logement")
        assert inserts.count == held + 1  # the others were handed over in one transaction
        await rt.drain(timeout=15)
        async with rt.sessionmaker() as session:
            rows = (await session.execute(select(Worker.first_name, Conversation.id).join(
                Conversation, Conversation.assignee_id == Worker.id).where(Conversation.status == "assigned"))).all()
        per_worker = sorted(Counter(name for name, _ in rows).values())
        assert len(rows) == 5 and per_worker == [2, 3]  # the least busy each time, not all to the same


async def test_a_lock_held_for_long_holds_up_only_that_person(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        stuck, others = await Person.joined(client), [await Person.joined(client) for _ in range(3)]
        async with rt.locks.hold(f"webchat:{stuck.uid}"):  # say, by a process that died holding it
            waiting = asyncio.create_task(stuck.post("bonjour"))
            await asyncio.sleep(0.05)
            started = asyncio.get_running_loop().time()
            answered = await asyncio.wait_for(asyncio.gather(*(p.post("bonjour") for p in others)), timeout=10)
            elapsed = asyncio.get_running_loop().time() - started
            assert [a["duplicate"] for a in answered] == [False] * 3
            assert elapsed < rt.intake.lock_patience + 2  # the batch split up; nobody waited for the lock
            assert not waiting.done()  # the stuck person's message waits for their lock only
            follow_up = asyncio.create_task(stuck.post("menu"))  # their next one waits behind it
            await asyncio.sleep(0.1)
            assert not follow_up.done()
        assert (await waiting)["duplicate"] is False
        assert (await follow_up)["duplicate"] is False
        await rt.drain(timeout=15)
        lines = await stuck.bot_lines()
        assert "Bonjour" in lines[0]["text"] and len(lines) >= 2
        async with rt.sessionmaker() as session:
            texts = (await session.execute(select(Message.text).where(Message.direction == "in")
                                           .order_by(Message.id))).scalars().all()
        assert texts.count("bonjour") == 4 and texts[-1] == "menu"  # in order, nothing lost


async def test_batches_of_any_size_look_people_up_with_one_statement_text(settings_for, backend):
    """On PostgreSQL each SQL text is prepared once per connection: an IN list of one placeholder a
    value made a batch of 3 and one of 6 two statements (350 texts over 300 batches, a prepare in
    every batch). `= ANY($1)` (kernel.database.one_of) keeps one text whatever the batch."""
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        groups = [[await Person.joined(client) for _ in range(size)] for size in (3, 6)]
        with Statements(rt.engine, "SELECT addresses.id", "SELECT erasure_tombstones") as lookups:
            for people in groups:
                held, answers = await post_while_held(client, people, "bonjour")
                assert [a["duplicate"] for a in answers] == [False] * len(people)
            await rt.drain(timeout=15)
        for person in [p for people in groups for p in people]:  # each found and answered as before
            assert "Bonjour" in (await person.bot_lines())[0]["text"]
        people_lookups = {t for t in lookups.texts if t.startswith("SELECT addresses.id")}
        if backend == "postgres":
            assert len(people_lookups) == 1 and "= ANY (" in people_lookups.pop()
            assert len({t for t in lookups.texts if t.startswith("SELECT erasure_tombstones")}) == 1
        else:  # SQLite keeps its IN lists (nothing is prepared there): one text per size
            assert len(people_lookups) >= 2
