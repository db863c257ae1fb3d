"""`allervers admin bootstrap` as a deployment operator runs it (a subprocess), then a production
start without the demo seed: the printed link lets the first admin in."""

from __future__ import annotations

import os
import subprocess
import sys


from sqlalchemy import func, select

from handoff.models import Organisation, Team, Worker
from tests.conftest import app_client, csrf_of, login


def allervers(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALLERVERS_DATABASE_URL": settings.database_url, "ALLERVERS_PUBLIC_URL": "https://fs.example",
           "ALLERVERS_SEED_DEMO": "false"}
    env.pop("ALLERVERS_REDIS_URL", None)
    return subprocess.run([sys.executable, "-m", "allervers.cli", "admin", *args], capture_output=True, text=True,
                          env=env, timeout=120)


async def test_bootstrap_then_the_first_admin_logs_in_without_the_demo_seed(settings_for):
    # https public URL (the links), served here over http: Secure cookies off for the test client
    settings = settings_for(seed_demo=False, public_url="https://fs.example", secure_cookies=False)
    done = allervers(settings, "bootstrap", "--organisation-slug", "fs-reze", "--organisation-name",
                     "France services Rezé", "--email", "Ana@fs.example", "--first-name", "Ana")
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert link.startswith("https://fs.example/invite/")
    again = allervers(settings, "bootstrap", "--organisation-slug", "fs-reze", "--organisation-name", "X",
                      "--email", "b@fs.example", "--first-name", "B")
    assert again.returncode == 1 and "already exists" in again.stderr
    second = allervers(settings, "create-organisation", "--slug", "ccas-nantes", "--name", "CCAS de Nantes")
    assert second.returncode == 0, second.stderr
    relink = allervers(settings, "link", "--email", "ana@fs.example")
    assert relink.returncode == 0 and "invitation" in relink.stdout
    link = relink.stdout.strip().splitlines()[-1]  # the first link is revoked by the new one

    async with app_client(settings) as client:
        rt = client.app.state.rt
        async with rt.sessionmaker() as session:
            organisations = (await session.execute(select(Organisation.slug).order_by(Organisation.id))).scalars().all()
            teams = (await session.execute(select(func.count()).select_from(Team))).scalar()
            workers = (await session.execute(select(Worker))).scalars().all()
        assert "demo" not in organisations and organisations[:2] == ["fs-reze", "ccas-nantes"]
        assert teams == 2 and [(w.email, w.is_admin, w.state) for w in workers] == [("ana@fs.example", True, "invited")]
        path = "/invite/" + link.rsplit("/", 1)[1]
        page = await client.get(path)
        assert page.status_code == 200 and "Bienvenue, Ana" in page.text
        done = await client.post(path, data={"csrf_token": csrf_of(page.text), "first_name": "Ana",
                                             "password": "premier-mot-de-passe", "password_again": "premier-mot-de-passe"})
        assert done.status_code == 303
        client.cookies.clear()
        assert (await login(client, "ana@fs.example", "premier-mot-de-passe")).status_code == 303
        home = await client.get("/admin")
        assert home.status_code == 200 and "France services Rezé" in home.text


def test_cli_refusals_in_process(settings_for, capsys):
    """The same command group in-process (fast): unknown organisation, bad slug, e-mail taken."""
    import os as _os

    from allervers.cli import main

    settings = settings_for(seed_demo=False)
    _os.environ["ALLERVERS_DATABASE_URL"] = settings.database_url
    try:
        assert main(["admin", "create-admin", "--organisation-slug", "nowhere", "--email", "c@fs.example",
                     "--first-name", "C"]) == 1
        assert "no organisation" in capsys.readouterr().err
        assert main(["admin", "create-organisation", "--slug", "Bad Slug!", "--name", "X"]) == 1
        assert main(["admin", "create-organisation", "--slug", "ccas", "--name", "CCAS"]) == 0
        assert main(["admin", "create-admin", "--organisation-slug", "ccas", "--email", "c@fs.example",
                     "--first-name", "C"]) == 0
        assert "/invite/" in capsys.readouterr().out
        assert main(["admin", "create-admin", "--organisation-slug", "ccas", "--email", "C@fs.example",
                     "--first-name", "C"]) == 1
        assert "already exists" in capsys.readouterr().err
        assert main(["admin", "link", "--email", "nobody@fs.example"]) == 1
    finally:
        _os.environ.pop("ALLERVERS_DATABASE_URL", None)
