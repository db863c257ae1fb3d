"""`allervers admin ...`: what a deployment operator does before any admin exists (no demo seed needed).

    allervers admin bootstrap --organisation-slug S --organisation-name N --email E --first-name F
    allervers admin create-organisation --slug S --name N [--team NAME]
    allervers admin create-admin --organisation-slug S --email E --first-name F
    allervers admin link --email E          # a new one-time link (lost invitation, forgotten password)

No password is ever given on the command line: each command that creates an admin prints a one-time
invitation link (ALLERVERS_PUBLIC_URL + /invite/<token>, valid 7 days) where the admin chooses it.
Errors (slug or e-mail taken, unknown organisation) print one line on stderr and exit with status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
DEFAULT_TEAM = "Accueil"


class CommandError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="admin_command", required=True)
    boot = commands.add_parser("bootstrap", help="create an organisation, its default team and its first admin")
    boot.add_argument("--organisation-slug", required=True)
    boot.add_argument("--organisation-name", required=True)
    boot.add_argument("--email", required=True)
    boot.add_argument("--first-name", required=True)
    boot.add_argument("--job-title", default="coordination")
    boot.add_argument("--team", default=DEFAULT_TEAM, help=f"name of the default team (default: {DEFAULT_TEAM})")

    org = commands.add_parser("create-organisation", help="create an organisation and its default team")
    org.add_argument("--slug", required=True)
    org.add_argument("--name", required=True)
    org.add_argument("--team", default=DEFAULT_TEAM)

    admin = commands.add_parser("create-admin", help="invite an admin into an existing organisation")
    admin.add_argument("--organisation-slug", required=True)
    admin.add_argument("--email", required=True)
    admin.add_argument("--first-name", required=True)
    admin.add_argument("--job-title", default="coordination")

    link = commands.add_parser("link", help="print a new one-time link for a worker (invitation or new password)")
    link.add_argument("--email", required=True)


def run(args: argparse.Namespace) -> int:
    from kernel.settings import Settings

    settings = Settings()
    try:
        lines = asyncio.run(_run(args, settings))
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


async def _run(args: argparse.Namespace, settings) -> list[str]:
    from kernel.database import make_engine, make_sessionmaker
    from allervers.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            if args.admin_command == "bootstrap":
                organisation = await _organisation(session, args.organisation_slug, args.organisation_name, args.team)
                return [f"organisation {organisation.slug!r} created (id {organisation.id}, team {args.team!r})",
                        *_default_hint(settings, organisation.slug),
                        *await _admin(session, settings, organisation, args.email, args.first_name, args.job_title)]
            if args.admin_command == "create-organisation":
                organisation = await _organisation(session, args.slug, args.name, args.team)
                return [f"organisation {organisation.slug!r} created (id {organisation.id}, team {args.team!r})"]
            if args.admin_command == "create-admin":
                organisation = await _find_organisation(session, args.organisation_slug)
                return await _admin(session, settings, organisation, args.email, args.first_name, args.job_title)
            if args.admin_command == "link":
                return await _link(session, settings, args.email)
            raise CommandError(f"unknown admin command: {args.admin_command}")
    finally:
        await engine.dispose()


async def _organisation(session, slug: str, name: str, team_name: str):
    from sqlalchemy import select

    from admin.audit import record
    from handoff.models import Organisation, Team

    slug, name, team_name = slug.strip().lower(), name.strip(), team_name.strip()
    if not SLUG.match(slug):
        raise CommandError("the slug is 2 to 63 lowercase letters, digits or hyphens (e.g. france-services-reze)")
    if not name or len(name) > 200 or not team_name or len(team_name) > 120:
        raise CommandError("the organisation name (1-200 characters) and team name (1-120) are required")
    if (await session.execute(select(Organisation.id).where(Organisation.slug == slug))).first():
        raise CommandError(f"an organisation with the slug {slug!r} already exists")
    organisation = Organisation(slug=slug, name=name)
    session.add(organisation)
    await session.flush()
    team = Team(organisation_id=organisation.id, name=team_name)
    session.add(team)
    await session.flush()
    record(session, organisation_id=organisation.id, actor_id=None, action="organisation.created",
           target_type="organisation", target_id=organisation.id, details={"by": "cli"})
    return organisation


def _default_hint(settings, slug: str) -> list[str]:
    if settings.default_organisation == slug:
        return []
    return [f"note: set ALLERVERS_DEFAULT_ORGANISATION={slug} so that people writing on a channel that names "
            f"no organisation reach this one (now: {settings.default_organisation!r})"]


async def _find_organisation(session, slug: str):
    from sqlalchemy import select

    from handoff.models import Organisation

    organisation = (await session.execute(select(Organisation).where(Organisation.slug == slug.strip().lower()))).scalar()
    if organisation is None:
        raise CommandError(f"no organisation with the slug {slug!r}")
    return organisation


def _email(value: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) or len(value) > 254:
        raise CommandError(f"invalid e-mail address: {value!r}")
    return value


async def _admin(session, settings, organisation, email: str, first_name: str, job_title: str) -> list[str]:
    from sqlalchemy import select

    from admin.audit import record
    from admin.invitations import INVITATION_VALID_FOR, invitation_url, issue
    from kernel.database import utcnow
    from handoff.models import Team, Worker

    email = _email(email)
    first_name = first_name.strip()
    if not first_name or len(first_name) > 80:
        raise CommandError("the first name is 1 to 80 characters")
    if (await session.execute(select(Worker.id).where(Worker.email == email))).first():
        raise CommandError(f"a worker with the e-mail {email!r} already exists (use `allervers admin link`)")
    team = (await session.execute(select(Team).where(Team.organisation_id == organisation.id)
                                  .order_by(Team.id).limit(1))).scalar()
    worker = Worker(organisation_id=organisation.id, team_id=team.id if team else None, email=email,
                    password_hash="", first_name=first_name, job_title=job_title.strip()[:120] or "coordination",
                    structure=organisation.name, is_admin=True, is_active=False, is_online=False, invited_at=utcnow())
    session.add(worker)
    await session.flush()
    token = await issue(session, worker, "invite", None)
    record(session, organisation_id=organisation.id, actor_id=None, action="worker.invited", target_type="worker",
           target_id=worker.id, details={"by": "cli", "is_admin": True})
    days = INVITATION_VALID_FOR.days
    return [f"admin {email} invited into {organisation.slug!r}; one-time link (valid {days} days):",
            invitation_url(settings.public_url, token)]


async def _link(session, settings, email: str) -> list[str]:
    from sqlalchemy import select

    from admin.audit import record
    from admin.invitations import invitation_url, issue
    from handoff.models import Worker

    worker = (await session.execute(select(Worker).where(Worker.email == _email(email)))).scalar()
    if worker is None:
        raise CommandError(f"no worker with the e-mail {email!r}")
    if worker.state == "deactivated":
        raise CommandError("this worker is deactivated: an admin reactivates them in the console first")
    purpose = "invite" if worker.state == "invited" else "reset"
    token = await issue(session, worker, purpose, None)
    record(session, organisation_id=worker.organisation_id, actor_id=None,
           action="worker.invitation_renewed" if purpose == "invite" else "worker.password_reset_link",
           target_type="worker", target_id=worker.id, details={"by": "cli"})
    return [f"one-time link for {worker.email} ({'invitation' if purpose == 'invite' else 'new password'}):",
            invitation_url(settings.public_url, token)]
