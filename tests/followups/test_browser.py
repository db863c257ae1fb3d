"""In Chromium at 390×844 and 1280×800: a worker notes an appointment from the conversation's sheet,
closes the conversation and schedules a "Ça a marché ?" message; an admin opens the dashboard.
axe-core: no serious or critical violation on the sheet and on the dashboard; no CSP violation."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest

from handoff.hours import PARIS
from tests.browser import log_in, open_inbox_actions, TIMEOUT_MS, assert_accessible, chromium, csp_violations, phone_page  # noqa: F401
from tests.conftest import LiveServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}


def new_page(browser, size: str, base_url: str):
    if size == "phone":
        return phone_page(browser, base_url=base_url)
    context = browser.new_context(viewport={"width": SIZES[size][0], "height": SIZES[size][1]}, locale="fr-FR",
                                  base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.js_errors = []
    page.console_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    return page


@pytest.mark.parametrize("backend", ["sqlite"])  # the pages, not the database: both backends run the HTTP tests
@pytest.mark.parametrize("size", list(SIZES))
def test_sheet_and_dashboard_in_chromium(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for(followups_interval=0)
    with LiveServer(settings) as live:
        with httpx.Client(base_url=live.url, timeout=30) as person:  # someone asks for a human on the web chat
            assert person.post("/chat/api/identity", json={}).status_code == 200
            assert person.post("/chat/api/messages", json={"client_id": "client-0001", "text": "humain"}).status_code == 200
        page = new_page(chromium, size, live.url)
        log_in(page, settings.demo_worker_email, settings.demo_worker_password)
        link = wait_until(lambda: page.reload() or page.locator("[data-conversation]").count(), timeout=15)
        assert link
        conversation = page.locator("[data-conversation]").first.get_attribute("data-conversation")
        page.goto(f"/inbox/conversations/{conversation}")
        open_inbox_actions(page)
        page.get_by_text("Noter un rendez-vous").click()
        day = (datetime.now(PARIS) + timedelta(days=10)).strftime("%Y-%m-%d")
        page.locator("#fu-day").fill(day)
        page.locator("#fu-time").fill("14:30")
        page.locator("#fu-address").fill("12 rue de la Paix, 75002 Paris")
        assert_accessible(page)
        page.get_by_role("button", name="📅 Noter le rendez-vous").click()
        expect(page.locator(".appointment").first).to_contain_text("14 h 30")
        expect(page.locator("#timeline")).to_contain_text("Rendez-vous noté")
        # A refusal shows its reason in the sheet.
        open_inbox_actions(page)
        page.get_by_text("Noter un rendez-vous").click()
        page.locator("#fu-day").fill("2020-01-01")
        page.locator("#fu-time").fill("10:00")
        page.locator("#fu-address").fill("Mairie")
        page.get_by_role("button", name="📅 Noter le rendez-vous").click()
        expect(page.get_by_role("alert")).to_contain_text("déjà passé")

        # Close as oriented, then schedule the follow-up with the person's agreement.
        open_inbox_actions(page)
        page.locator("#actions-sheet").get_by_label("✅ Terminer : résultat").select_option("oriented")
        page.locator("#actions-sheet").get_by_role("button", name="Terminer la conversation").click()
        expect(page.locator(".closed-note")).to_be_visible()
        open_inbox_actions(page)
        expect(page.get_by_text("La personne est d'accord")).to_be_visible()
        page.get_by_label("La personne est d'accord").check()
        assert_accessible(page)
        page.get_by_role("button", name="🔁 Prévoir le message").click()
        expect(page.locator(".followups-sheet")).to_contain_text("Prévu")
        assert not page.js_errors and not csp_violations(page)

        admin = new_page(chromium, size, live.url)
        log_in(admin, settings.demo_admin_email, settings.demo_worker_password)
        admin.goto("/admin/stats")
        expect(admin.get_by_role("heading", name="📊 Statistiques de l'organisation")).to_be_visible()
        expect(admin.locator("svg.chart").first).to_be_visible()
        assert_accessible(admin)
        admin.get_by_label("Du").fill("2026-01-01")
        admin.get_by_role("button", name="Afficher").click()
        expect(admin).to_have_url(re.compile(r"start=2026-01-01"))
        assert "&lt; 5" in admin.content() or "< 5" in admin.inner_text("main")
        mine = new_page(chromium, size, live.url)
        log_in(mine, settings.demo_worker_email, settings.demo_worker_password)
        mine.goto("/inbox/stats")
        expect(mine.get_by_role("heading", name="📊 Mes statistiques")).to_be_visible()
        assert_accessible(mine)
        assert not admin.js_errors and not csp_violations(admin) and not mine.js_errors
