"""The console in Chromium at phone size (390×844) and desktop size (1280×800): the admin logs in,
invites a worker, the worker opens the link, chooses a password and lands in the inbox; the admin
sets a territory and the hours of a team. axe-core: no serious or critical violation on every
console page; each page's main action is visible without scrolling."""

from __future__ import annotations

import re

import pytest

from tests.browser import log_in, TIMEOUT_MS, assert_accessible, chromium, phone_page  # noqa: F401
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~45 s per size on 2 shared cores (axe on 11 pages)

SIZES = {"phone": (390, 844), "desktop": (1280, 800)}


def new_page(browser, size: str, base_url: str):
    if size == "phone":
        return phone_page(browser, base_url=base_url)
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="fr-FR", base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    return page


def assert_in_view(page, locator) -> None:
    """The element is on screen as the page opens (no scrolling needed)."""
    box = locator.bounding_box()
    viewport = page.viewport_size
    assert box is not None, "the main action is not displayed"
    assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], \
        f"the main action is below the fold at {viewport}: {box}"


@pytest.mark.parametrize("size", list(SIZES))
def test_admin_invites_a_worker_and_sets_a_territory_and_hours(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    pages: list[tuple[str, list[str]]] = []

    def audit(page) -> None:
        """axe-core on the page as it is; every page checked, minor/moderate findings noted."""
        others = assert_accessible(page)
        pages.append((page.url, [f"{v['id']} ({v['impact']})" for v in others]))
    with LiveServer(settings) as live:
        admin = new_page(chromium, size, live.url)
        log_in(admin, settings.demo_admin_email, settings.demo_worker_password)
        admin.goto("/admin")
        expect(admin.get_by_role("heading", name="France services Démo")).to_be_visible()
        audit(admin)

        admin.get_by_role("navigation", name="Administration").get_by_role("link", name="👥 Personnes").click()
        invite = admin.get_by_role("link", name="➕ Inviter une personne")
        assert_in_view(admin, invite)
        audit(admin)
        invite.click()
        expect(admin.get_by_role("heading", name="Inviter une personne")).to_be_visible()
        assert_in_view(admin, admin.get_by_role("button", name="Créer le lien d'invitation"))
        audit(admin)
        admin.get_by_label("Prénom").fill("Nadia")
        admin.get_by_label("Rôle ou métier").fill("médiatrice numérique")
        admin.get_by_label("Anglais").check()
        admin.get_by_role("button", name="Créer le lien d'invitation").click()
        expect(admin.get_by_role("heading", name="Invitation de Nadia")).to_be_visible()
        audit(admin)
        link = admin.get_by_label("Lien à copier").input_value()
        assert "/invite/" in link
        admin.get_by_role("button", name="📋 Copier le lien").click()
        expect(admin.locator("[data-copy-status]")).not_to_be_empty()

        # The invitee, in a browser of their own
        worker = new_page(chromium, size, live.url)
        worker.goto("/invite/" + link.rsplit("/invite/", 1)[1])  # public_url is not this test server
        expect(worker.get_by_role("heading", name="Bienvenue, Nadia")).to_be_visible()
        audit(worker)
        worker.get_by_label("Votre e-mail").fill("nadia@demo.fr")
        worker.get_by_label("Mot de passe (10 caractères au moins)").fill("un-long-secret")
        worker.get_by_label("Le même mot de passe, encore une fois").fill("un-long-secret")
        worker.get_by_role("button", name="Activer mon compte").click()
        expect(worker).to_have_url(re.compile(r"/inbox$"))
        expect(worker.get_by_text("Personne n'attend.")).to_be_visible()
        worker.goto("/invite/" + link.rsplit("/invite/", 1)[1])  # used once: gone
        expect(worker.get_by_role("heading", name="Ce lien n'est plus valable")).to_be_visible()
        audit(worker)

        # The admin: the person's page, then a team's territory and hours
        admin.get_by_role("link", name="Voir la fiche de Nadia").click()
        expect(admin.get_by_role("heading", name=re.compile("Nadia"))).to_be_visible()
        expect(admin.get_by_text("Actif", exact=True)).to_be_visible()
        assert_in_view(admin, admin.get_by_role("button", name="Enregistrer"))
        audit(admin)
        admin.get_by_role("link", name="Désactiver…").click()
        expect(admin.get_by_role("heading", name="Désactiver Nadia ?")).to_be_visible()
        assert_in_view(admin, admin.get_by_role("button", name="Désactiver le compte"))
        audit(admin)

        admin.goto("/admin/teams")
        assert_in_view(admin, admin.get_by_role("button", name="➕ Créer"))
        audit(admin)
        admin.get_by_role("link", name=re.compile("Accueil")).click()
        territory = admin.get_by_label("Code postal, commune ou numéro de département")
        assert_in_view(admin, territory)
        territory.fill("Saint-Denis")
        admin.get_by_role("button", name="➕ Ajouter").click()
        expect(admin.get_by_text("Plusieurs territoires correspondent")).to_be_visible()
        audit(admin)
        admin.get_by_label("Code postal, commune ou numéro de département").fill("44400")
        admin.get_by_role("button", name="➕ Ajouter").click()
        expect(admin.locator(".territories")).to_contain_text("Rezé (44)")
        expect(admin.get_by_role("heading", name=re.compile("Territoires couverts : 1 commune"))).to_be_visible()
        admin.get_by_label("Lundi, plage 1, début").fill("09:00")
        admin.get_by_label("Lundi, plage 1, fin").fill("12:30")
        admin.get_by_label("Lundi, plage 2, début").fill("13:30")
        admin.get_by_label("Lundi, plage 2, fin").fill("17:00")
        admin.get_by_label("Message hors horaires").fill("Nous sommes fermés : on vous répond demain.")
        expect(admin.locator("#message-preview")).to_contain_text("on vous répond demain")
        audit(admin)
        admin.get_by_role("button", name="Enregistrer l'équipe").click()
        expect(admin.get_by_role("status")).to_contain_text("Enregistré")
        expect(admin.get_by_label("Lundi, plage 2, fin")).to_have_value("17:00")

        admin.goto("/admin/settings")
        assert_in_view(admin, admin.get_by_label("Nom lu par les personnes"))
        expect(admin.locator(".phone-preview")).to_contain_text("Êtes-vous d'accord")
        audit(admin)
        admin.goto("/admin/audit")
        expect(admin.locator(".audit")).to_contain_text("Territoire ajouté")
        assert_in_view(admin, admin.get_by_role("button", name="Filtrer"))
        audit(admin)
        assert admin.js_errors == [] and worker.js_errors == []
        print(f"\naxe-core at {size}: {len(pages)} page states, 0 serious/critical; others:",
              sorted({finding for _, found in pages for finding in found}) or "none")
