"""Property-based fuzz of the outreach entry points (hypothesis): the console's source and campaign
routes (logged in as the admin, with CSRF, forms and path values drawn from nasty text, huge
numbers, garbage), the web chat's ?src= and Telegram's `/start <anything>`. Property: never a 5xx,
no ERROR record or traceback in the server's log; a refused form changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.conftest import app_client
from tests.fakes.telegram_api import FakeTelegram
from tests.hardening.payloads import HUGE_INT, SHORT_TEXT, TEXT, ServerLog
from tests.outreach.helpers import SECRET, as_admin, create_source, telegram_settings, update
from tests.webchat import new_identity, COOKIE

EXAMPLES = int(os.environ.get("ALLERVERS_TEST_OUTREACH_FUZZ_EXAMPLES", 250))
FIELDS = ["name", "kind", "team_id", "territory", "start", "line0", "line1", "line2", "source_ids", "topic",
          "language", "active_within_days", "inactive_for_days", "telegram_text", "telegram_buttons",
          "whatsapp_template", "whatsapp_params", "whatsapp_preview", "webchat_text", "reminder_text",
          "reminder_after_hours", "scheduled_at"]
VALUE = st.one_of(TEXT, HUGE_INT.map(str), st.sampled_from(["flyer", "partner", "places:se-nourrir", "cmp:human",
                                                             "2026-13-45T99:99", "44", "2A004", "fr", "0", "-3"]))
FORM = st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=8)
PATH_ID = st.one_of(st.sampled_from(["{source}", "{campaign}", "1"]), HUGE_INT.map(str), SHORT_TEXT.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")))
ROUTES = st.sampled_from([
    ("POST", "/admin/sources"), ("POST", "/admin/sources/{id}"), ("POST", "/admin/sources/{id}/delete"),
    ("GET", "/admin/sources/{id}"), ("GET", "/admin/sources/{id}/qr/{channel}.svg"),
    ("GET", "/admin/sources/{id}/qr/{channel}.png"), ("GET", "/admin/sources/{id}/flyer?size={channel}"),
    ("POST", "/admin/campaigns"), ("POST", "/admin/campaigns/{id}"), ("POST", "/admin/campaigns/{id}/test"),
    ("POST", "/admin/campaigns/{id}/launch"), ("POST", "/admin/campaigns/{id}/{channel}"),
    ("GET", "/admin/campaigns/{id}"), ("GET", "/admin/campaigns/{id}/progress"),
    ("WEBCHAT", "/chat/api/messages"), ("TELEGRAM", "/bots/telegram/webhook"),
])
CHANNEL = st.one_of(st.sampled_from(["telegram", "webchat", "whatsapp", "pause", "resume", "cancel", "a5", "a6"]),
                    SHORT_TEXT.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")))


@pytest.fixture
def fake_telegram():
    with FakeTelegram() as fake:
        yield fake


def test_outreach_routes_never_fail(settings_for, fake_telegram):
    loop = asyncio.new_event_loop()
    context = app_client(telegram_settings(settings_for, fake_telegram))
    client = loop.run_until_complete(context.__aenter__())
    statuses: dict[int, int] = {}
    try:
        csrf = loop.run_until_complete(as_admin(client))
        source_id, code = loop.run_until_complete(create_source(client, csrf))
        created = loop.run_until_complete(client.post("/admin/campaigns", data={"name": "Fuzz", "csrf_token": csrf}))
        campaign_id = created.headers["location"].rsplit("/", 1)[1]
        token, _ = loop.run_until_complete(new_identity(client))

        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        @given(route=ROUTES, form=FORM, path_id=PATH_ID, channel=CHANNEL, src=st.one_of(SHORT_TEXT, st.just(code)),
               with_csrf=st.booleans())
        def one(route, form, path_id, channel, src, with_csrf):
            method, template = route
            path = template.replace("{id}", path_id.replace("{source}", str(source_id))
                                    .replace("{campaign}", campaign_id)).replace("{channel}", channel)

            async def call():
                if method == "WEBCHAT":
                    body = {"client_id": f"fuzz-{abs(hash((src, str(form)))) % 10**12:012d}", "text": "bonjour",
                            "src": src}
                    return await client.post(path, content=json.dumps(body).encode(),
                                             headers={"Cookie": f"{COOKIE}={token}", "Content-Type": "application/json"})
                if method == "TELEGRAM":
                    return await client.post(path, content=json.dumps(update(9100, f"/start {src}")),
                                             headers={"Content-Type": "application/json",
                                                      "X-Telegram-Bot-Api-Secret-Token": SECRET})
                if method == "GET":
                    return await client.get(path)
                data = {**form, **({"csrf_token": csrf} if with_csrf else {})}
                # Encoded by hand: lone surrogates travel as their (invalid) UTF-8 bytes.
                body = "&".join(f"{quote(k)}={quote(str(v).encode('utf-8', 'surrogatepass'), safe='')}"
                                for k, v in data.items())
                return await client.post(path, content=body.encode(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})

            response = loop.run_until_complete(call())
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (method, path, form, response.text[:300])

        with ServerLog(others_from=40) as log:
            one()
            loop.run_until_complete(client.app.state.rt.drain(timeout=30))
        assert not log.problems, log.problems[:5]
        print("outreach fuzz statuses:", dict(sorted(statuses.items())))
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
