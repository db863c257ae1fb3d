"""Casework in Chromium at 390×844 and 1280×800: the worker opens « Réponses types », inserts one in
one tap (variables filled, {prénom} left selected to complete, nothing sent), completes and sends
it; opens the transfer and referral panels; the admin reviews the library in the console.
axe-core: no serious or critical violation on each state."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.admin.test_admin_browser import SIZES, assert_in_view, new_page
from tests.browser import log_in, open_inbox_actions, assert_accessible, chromium, csp_violations  # noqa: F401
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def person_asks_for_a_human(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as person:
        identity = person.post("/chat/api/identity", json={})
        cookie = {"Cookie": f"allervers_chat={identity.cookies.get('allervers_chat')}"}
        assert person.post("/chat/api/messages", json={"client_id": "browser-casework-1", "text": "humain"},
                           headers=cookie).status_code == 200


@pytest.mark.parametrize("size", list(SIZES))
def test_worker_inserts_a_canned_answer_and_admin_reviews_the_library(settings_for, backend, chromium, size):  # noqa: F811
    if backend != "sqlite":  # the pages are the same on both; test_casework.py runs the routes on both backends
        pytest.skip("browser pages checked once, on SQLite")
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        person_asks_for_a_human(live.url)
        worker = new_page(chromium, size, live.url)
        log_in(worker, settings.demo_worker_email, settings.demo_worker_password)
        worker.goto("/inbox/conversations/1")
        tools = worker.locator("#casework-canned-1 > summary")
        expect(tools).to_be_visible()
        tools.click()
        first = worker.get_by_role("button", name="➕ Bonjour et présentation")
        expect(first).to_be_visible()
        assert_accessible(worker)
        worker.get_by_label("Chercher une réponse type").fill("domiciliation")
        expect(worker.get_by_role("button", name="➕ Bonjour et présentation")).to_have_count(0)
        worker.get_by_label("Chercher une réponse type").fill("")
        worker.get_by_role("button", name="➕ Bonjour et présentation").click()
        box = worker.locator("#reply-text")
        expect(box).to_have_value(re.compile(r"^Bonjour \{prénom\}, je suis Camille\."))
        assert worker.evaluate("(() => { const b = document.getElementById('reply-text');"
                               " return b.value.slice(b.selectionStart, b.selectionEnd); })()") == "{prénom}"
        expect(worker.locator("[data-canned-status]")).to_contain_text("Complétez {prénom}")
        expect(worker.locator(".timeline")).not_to_contain_text("je suis Camille")  # inserted, not sent
        worker.keyboard.type("Awa")
        expect(box).to_have_value(re.compile(r"^Bonjour Awa, je suis Camille\."))
        worker.get_by_role("button", name="Envoyer", exact=True).click()
        expect(worker.locator(".timeline")).to_contain_text("Bonjour Awa, je suis Camille.")
        # A {variable} left: the first press does not send, it says what to complete
        worker.locator("#casework-canned-1 > summary").click()
        worker.get_by_role("button", name="➕ Ce que nous avons vu ensemble").click()
        worker.get_by_role("button", name="Envoyer", exact=True).click()
        expect(worker.locator("[data-canned-status]")).to_contain_text("Il reste {prénom} à compléter")
        expect(worker.locator(".timeline")).not_to_contain_text("voici ce que nous avons vu ensemble")
        assert "{prénom}" in box.input_value()
        box.fill("")

        open_inbox_actions(worker)

        worker.locator("#casework-referral-1 > summary").click()
        expect(worker.get_by_label("La personne est d'accord pour partager ce résumé")).to_be_visible()
        open_inbox_actions(worker)
        worker.locator("#casework-transfer-1 > summary").click()
        expect(worker.locator("#transfer-box-1")).to_be_visible()
        assert_accessible(worker)
        assert not worker.js_errors, worker.js_errors

        admin = new_page(chromium, size, live.url)
        log_in(admin, settings.demo_admin_email, settings.demo_worker_password)
        admin.goto("/admin")
        admin.get_by_role("navigation", name="Administration").get_by_role("link", name="📚 Réponses types").click()
        expect(admin.get_by_role("heading", name="Réponses types", exact=True)).to_be_visible()
        assert_in_view(admin, admin.get_by_role("link", name="➕ Nouvelle réponse type"))
        assert_accessible(admin)
        admin.get_by_role("link", name="RSA : comment faire la demande").click()
        expect(admin.get_by_label("Titre")).to_have_value("RSA : comment faire la demande")
        assert_accessible(admin)
        admin.get_by_label("État").select_option("archived")
        admin.get_by_role("button", name="Enregistrer").click()
        expect(admin.get_by_role("status")).to_contain_text("Enregistré")
        admin.goto("/admin/canned/new")
        assert_in_view(admin, admin.get_by_label("Titre"))
        assert_accessible(admin)
        assert not admin.js_errors, admin.js_errors
        for page in (worker, admin):  # the phone pages also collect console errors (CSP violations)
            if hasattr(page, "console_errors"):
                assert not csp_violations(page), csp_violations(page)
