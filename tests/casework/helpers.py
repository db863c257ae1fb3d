"""Shared steps of the casework tests: a person handed to Camille, another organisation with a worker."""

from __future__ import annotations

from sqlalchemy import select

from handoff.auth import hash_password
from conversations.models import Conversation
from handoff.models import Organisation, Worker
from tests.conftest import csrf_of, login
from tests.conversations.test_commands import consented

CAMILLE = ("camille@demo.allervers.fr", "allervers-demo")
ADMIN = ("admin@demo.allervers.fr", "allervers-demo")
ZOE = ("zoe@ailleurs.fr", "pw-123456")


async def other_organisation(rt, *, admin: bool = True) -> tuple[int, int]:
    """Organisation « Ailleurs » with Zoé (online, admin): (organisation id, worker id)."""
    async with rt.sessionmaker() as session, session.begin():
        other = Organisation(slug="ailleurs", name="Ailleurs")
        session.add(other)
        await session.flush()
        zoe = Worker(organisation_id=other.id, email=ZOE[0], password_hash=hash_password(ZOE[1]), first_name="Zoé",
                     job_title="médiatrice", structure="Ailleurs", is_online=True, is_admin=admin)
        session.add(zoe)
        await session.flush()
        return other.id, zoe.id


async def handed_over(client):
    """A web chat person who asked for a human (Camille, online in the demo seed, takes it)."""
    person = await consented(client)
    await person.send("humain")
    async with client.app.state.rt.sessionmaker() as session:
        conversation_id = (await session.execute(select(Conversation.id).order_by(Conversation.id.desc()))).scalar()
    return person, conversation_id


async def logged_in(client, who=CAMILLE) -> str:
    response = await login(client, *who)
    assert response.status_code == 303, response.text
    return csrf_of((await client.get("/inbox/password")).text)
