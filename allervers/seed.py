"""The demo organisation, its team and one demo worker (embedded defaults)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import select

from handoff.auth import hash_password
from allervers.migrate import startup_lock
from handoff.models import Organisation, Team, Worker


@lru_cache(maxsize=4)
def demo_password_hash(password: str) -> str:
    """The demo password's argon2 hash, computed once per process and shared by the demo workers
    (the password is the documented demo one): a hash takes 0.3-0.4 s, and the test suite starts
    the app on a fresh database about 1,500 times."""
    return hash_password(password)


async def seed_demo(rt) -> None:
    settings = rt.settings
    async with rt.sessionmaker() as session, session.begin():
        await startup_lock(await session.connection())  # another process seeding at the same time waits
        organisation = (await session.execute(select(Organisation).where(
            Organisation.slug == settings.default_organisation))).scalar()
        if organisation is None:
            organisation = Organisation(slug=settings.default_organisation, name="France services Démo",
                                        whatsapp_phone_number_id=settings.whatsapp_phone_number_id)
            session.add(organisation)
            await session.flush()
        team = (await session.execute(select(Team).where(Team.organisation_id == organisation.id))).scalar()
        if team is None:
            team = Team(organisation_id=organisation.id, name="Accueil")
            session.add(team)
            await session.flush()
        worker = (await session.execute(select(Worker).where(Worker.email == settings.demo_worker_email))).scalar()
        if worker is None:
            session.add(Worker(organisation_id=organisation.id, team_id=team.id, email=settings.demo_worker_email,
                               password_hash=demo_password_hash(settings.demo_worker_password), first_name="Camille",
                               job_title="conseillère numérique", structure="France services Démo",
                               is_online=True))
        admin = (await session.execute(select(Worker).where(Worker.email == settings.demo_admin_email))).scalar()
        if admin is None:
            session.add(Worker(organisation_id=organisation.id, team_id=team.id, email=settings.demo_admin_email,
                               password_hash=demo_password_hash(settings.demo_worker_password), first_name="Sam",
                               job_title="coordinateur", structure="France services Démo", is_admin=True,
                               is_online=False))
        from casework.canned import seed_library  # the starter canned answers (casework/data/canned_demo.yaml)

        await seed_library(session, organisation.id)
