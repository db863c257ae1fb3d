"""Property-based fuzz of the new routes (appointments, follow-ups, the dashboard and its CSV):
generated form fields (NUL, long text, any Unicode, numbers of any size), query strings from
arbitrary bytes, path ids of any size, with and without the CSRF token. Property: never a 5xx,
and every change that succeeded is audited while every refusal changed nothing (the number of
appointments + follow-ups changes only with an audit entry)."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func, select

from admin.audit import AuditEntry
from conversations.models import Conversation
from followups.models import Appointment, Followup
from tests.conftest import app_client, csrf_of, login
from tests.followups.helpers import ADMIN_EMAIL, PASSWORD
from tests.webchat import Person

EXAMPLES = int(os.environ.get("ALLERVERS_TEST_FOLLOWUPS_FUZZ_EXAMPLES", 120))
TEXT = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
                 st.text(st.characters(blacklist_categories=("Cs",)), min_size=290, max_size=320),
                 st.sampled_from(["", "\x00", "2027-02-03", "2027-02-31", "10:30", "25:61", "99999-01-01",
                                  "0001-01-01", "7", "-1", "0", "91", "1e9", "9" * 40, "on", "1"]))
ID = st.one_of(st.integers(1, 5), st.integers(-10, 2**40), st.text(max_size=6).map(lambda t: quote_from_bytes(t.encode("utf-8", "surrogatepass"), safe="")))
QUERY = st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe="=&"))


class Driver:
    def __init__(self, settings):
        self.loop = asyncio.new_event_loop()
        self.ctx = app_client(settings)
        self.client = self.loop.run_until_complete(self.ctx.__aenter__())
        self.successes = 0
        self.run(self._prepare())

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    async def _prepare(self):
        person = await Person.joined(self.client)
        await person.post("humain")
        await login(self.client, ADMIN_EMAIL, PASSWORD)
        self.csrf = csrf_of((await self.client.get("/inbox")).text)
        async with self.client.app.state.rt.sessionmaker() as session:
            self.conversation_id = (await session.execute(select(Conversation.id))).scalar()

    async def counts(self) -> tuple[int, int]:
        async with self.client.app.state.rt.sessionmaker() as session:
            rows = (await session.execute(select(func.count()).select_from(Appointment))).scalar() + \
                (await session.execute(select(func.count()).select_from(Followup))).scalar()
            audited = (await session.execute(select(func.count()).where(
                AuditEntry.action.in_(("appointment.noted", "followup.scheduled"))))).scalar()
        return rows, audited

    def close(self):
        self.run(self.ctx.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture
def driver(settings_for):
    d = Driver(settings_for(rate_limits_enabled=False))
    yield d
    d.close()


CALL = st.fixed_dictionaries({
    "route": st.sampled_from(["appointments", "appointments/{id}", "appointments/{id}/cancel", "followup",
                              "followup/{id}/cancel", "followups", "stats"]),
    "id": ID, "conversation": st.one_of(st.just(None), ID), "csrf": st.sampled_from(["good", "good", "good", "", "bad"]),
    "hx": st.booleans(),
    "fields": st.dictionaries(st.sampled_from(["day", "time", "place_ref", "place_name", "place_address", "days",
                                               "agreed"]), TEXT, max_size=7),
    "query": QUERY, "stats": st.sampled_from(["/admin/stats", "/admin/stats.csv", "/inbox/stats", "/inbox/stats.csv"]),
})


@hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                     suppress_health_check=list(HealthCheck))
@given(call=CALL)
def test_new_routes_never_answer_5xx_and_refusals_change_nothing(driver, call):
    conversation = driver.conversation_id if call["conversation"] is None else call["conversation"]
    headers = {"HX-Request": "true"} if call["hx"] else {}
    if call["route"] == "stats":
        response = driver.run(driver.client.get(f"{call['stats']}?{call['query']}"))
        assert response.status_code < 500
        return
    path = f"/inbox/conversations/{conversation}/" + call["route"].replace("{id}", str(call["id"]))
    if call["route"] == "followups":
        response = driver.run(driver.client.get(path, headers=headers))
        assert response.status_code < 500
        return
    before = driver.run(driver.counts())
    data = dict(call["fields"])
    data["csrf_token"] = {"good": driver.csrf, "bad": "x" * 43, "": ""}[call["csrf"]]
    response = driver.run(driver.client.post(path, data=data, headers=headers))
    assert response.status_code < 500, (path, data, response.text[:200])
    after = driver.run(driver.counts())
    if response.status_code >= 400:
        assert after == before, (path, response.status_code)
    else:
        assert after[0] - before[0] == after[1] - before[1]  # a new row comes with its audit entry
        assert call["csrf"] == "good"
