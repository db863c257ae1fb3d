"""Property-based fuzz of the casework routes (hypothesis), logged in as a worker, on a live server:
path ids of any shape, query strings and form fields from arbitrary text (NUL, surrogates' bytes,
very long), with and without CSRF. Property: never a 5xx, and no ERROR record in the server's log.
Derandomized; CASEWORK_FUZZ_EXAMPLES per backend (250)."""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.conftest import LiveServer

EXAMPLES = int(os.environ.get("CASEWORK_FUZZ_EXAMPLES", 250))
TEXT = st.one_of(st.text(max_size=40), st.text(min_size=4000, max_size=4100),
                 st.binary(max_size=40).map(lambda b: b.decode("latin-1")), st.just("\x00"), st.just("{prénom}"))
PATH_ID = st.one_of(st.integers(-3, 5).map(str), st.just("2147483648"), st.just("99999999999999999999"),
                    st.just("1e3"), st.text(max_size=12).map(lambda s: quote(s.encode("utf-8", "surrogatepass"), safe="")))
FIELDS = ["title", "text", "source_url", "to_organisation", "note", "partner", "summary", "agreed", "method", "status",
          "checked_on", "q"]
ROUTES = [("GET", "/inbox/casework/{id}/canned"), ("POST", "/inbox/casework/canned"),
          ("GET", "/inbox/casework/{id}/transfer"), ("POST", "/inbox/casework/{id}/transfer"),
          ("GET", "/inbox/casework/{id}/referral"), ("GET", "/inbox/casework/{id}/partners"),
          ("POST", "/inbox/casework/{id}/referral"),
          ("GET", "/admin/canned"), ("GET", "/admin/canned/{id}"), ("POST", "/admin/canned"),
          ("POST", "/admin/canned/{id}"), ("POST", "/admin/canned/{id}/status")]


class Errors(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()[:200]}")


def _login(client: httpx.Client, email: str, password: str) -> str:
    page = client.get("/inbox/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert client.post("/inbox/login", data={"email": email, "password": password, "csrf_token": token}).status_code == 303
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get("/inbox/password").text).group(1)


@pytest.mark.slow
def test_casework_routes_never_fail(settings_for):
    settings = settings_for()
    errors = Errors()
    logging.getLogger().addHandler(errors)
    statuses: dict[int, int] = {}
    try:
        with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as person, \
                httpx.Client(base_url=live.url, timeout=30) as worker:
            identity = person.post("/chat/api/identity", json={})
            cookie = {"Cookie": f"allervers_chat={identity.cookies.get('allervers_chat')}"}
            said = person.post("/chat/api/messages", json={"client_id": "fuzz-casework-1", "text": "humain"}, headers=cookie)
            assert said.status_code == 200, said.text
            csrf = _login(worker, settings.demo_admin_email, settings.demo_worker_password)  # admin: both rooms

            @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                 suppress_health_check=list(HealthCheck))
            @given(st.sampled_from(ROUTES), st.one_of(st.just("1"), st.just("2"), PATH_ID),
                   st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=6), st.booleans())
            def one(route, path_id, fields, with_csrf):
                method, template = route
                path = template.replace("{id}", path_id)
                if method == "GET":
                    query = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in fields.items()})
                    response = worker.get(path + ("?" + query if query else ""))
                else:
                    body = dict(fields)
                    if with_csrf:
                        body["csrf_token"] = csrf
                    content = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in body.items()})
                    response = worker.post(path, content=content,
                                           headers={"Content-Type": "application/x-www-form-urlencoded"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert response.status_code < 500, (method, path, fields, response.text[:300])

            one()
    finally:
        logging.getLogger().removeHandler(errors)
    print(f"casework fuzz: {sum(statuses.values())} requests, statuses {sorted(statuses.items())}")
    assert not errors.records, errors.records[:5]
    assert any(200 <= status < 300 for status in statuses) and any(400 <= status < 500 for status in statuses)
