"""Shared steps of the admin tests: log in as the demo admin (Sam), read a page's CSRF token."""

from __future__ import annotations

import re

from tests.conftest import csrf_of, login

ADMIN_EMAIL = "admin@demo.allervers.fr"
WORKER_EMAIL = "camille@demo.allervers.fr"
PASSWORD = "allervers-demo"


async def as_admin(client) -> str:
    response = await login(client, ADMIN_EMAIL, PASSWORD)
    assert response.status_code == 303
    return csrf_of((await client.get("/admin/teams")).text)


def invitation_link(html: str) -> str:
    match = re.search(r'value="(https?://[^"]+/invite/[A-Za-z0-9_-]+)"', html)
    assert match, "no invitation link in the page"
    return match.group(1)


def person_form(**overrides) -> dict:
    values = {"first_name": "Nadia", "job_title": "médiatrice numérique", "structure": "France services Démo",
              "languages": ["fr", "ar"], "topics": "logement, CAF", "capacity": "8",
              "schedule_mon_0_start": "09:00", "schedule_mon_0_end": "12:30"}
    values.update(overrides)
    return values
