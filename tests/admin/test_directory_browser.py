"""The directory room in a real browser (Debian's chromium, Playwright), on a phone (390×844) and a
desktop (1280×800): an admin adds a place with its hours typed as days and times, sees the OSM
string and "ouvert maintenant ?" update as they type (htmx), saves, imports a file and watches its
progress; axe-core finds no serious or critical violation on any page of the room.
"""

from __future__ import annotations

import re

import pytest

from tests.browser import TIMEOUT_MS, assert_accessible, chromium, phone_page  # noqa: F401
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

SIZES = {"phone": None, "desktop": {"width": 1280, "height": 800}}


def page_of(browser, size: str, base_url: str):
    if SIZES[size] is None:
        return phone_page(browser, base_url=base_url)
    context = browser.new_context(viewport=SIZES[size], locale="fr-FR", base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    return page


@pytest.mark.parametrize("size", list(SIZES))
def test_admin_adds_a_place_with_its_hours_and_imports_a_file(settings_for, chromium, size, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        page = page_of(chromium, size, live.url)
        page.goto("/admin/directory")
        expect(page).to_have_url(re.compile(r"/inbox/login$"))
        page.get_by_label("E-mail").fill(settings.demo_admin_email)
        page.get_by_label("Mot de passe").fill(settings.demo_worker_password)
        page.get_by_role("button", name="Se connecter").click()
        page.goto("/admin/directory")
        expect(page.get_by_role("heading", name="Annuaire")).to_be_visible()
        assert_accessible(page)

        page.get_by_role("link", name="➕ Ajouter un lieu").click()
        expect(page.get_by_role("heading", name="Ajouter un lieu")).to_be_visible()
        page.get_by_label("Nom du lieu").fill("Épicerie solidaire de Rezé")
        page.locator("summary", has_text="Équipement et alimentation").click()
        page.get_by_label("Alimentation", exact=True).check()
        page.get_by_label("Rue").fill("12 rue Jean Jaurès")
        page.get_by_label("Code postal ou commune").fill("44400")
        for day in ("Mardi", "Vendredi"):
            page.get_by_label(f"{day}, plage 1, ouverture").fill("09:00")
            page.get_by_label(f"{day}, plage 1, fermeture").fill("12:00")
        page.get_by_label("Vendredi, plage 2, ouverture").fill("14:00")
        page.get_by_label("Vendredi, plage 2, fermeture").fill("17:30")
        preview = page.locator("#dir-hours-preview")
        expect(preview).to_contain_text("Tu 09:00-12:00; Fr 09:00-12:00,14:00-17:30; PH off")
        expect(preview).to_contain_text("Ouvert maintenant ?")
        assert_accessible(page)
        if size == "phone":  # nothing wider than the phone's screen
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_role("button", name="Enregistrer").click()
        expect(page).to_have_url(re.compile(r"/admin/directory\?ok=enregistre$"))
        expect(page.get_by_role("status")).to_contain_text("Lieu enregistré")
        expect(page.locator(".dir-item strong", has_text="Épicerie solidaire de Rezé")).to_be_visible()
        expect(page.get_by_text("🕒 Tu 09:00-12:00; Fr 09:00-12:00,14:00-17:30; PH off")).to_be_visible()
        assert_accessible(page)

        # A refused form: the errors are said at the top and by the field.
        page.goto("/admin/directory/new")
        page.get_by_label("Nom du lieu").fill("Ab")
        page.get_by_role("button", name="Enregistrer").click()
        expect(page.get_by_role("alert")).to_contain_text("Le nom compte de 3 à 150 caractères.")
        assert_accessible(page)

        # A file import: the progress, then the rows accepted and refused.
        upload = tmp_path / "lieux.csv"
        upload.write_text("source,id,nom,date_maj,code_postal,commune\n"
                          "asso,asso--1,Vestiaire solidaire,2026-10-01,44400,Rezé\n"
                          "asso,asso--2,Xy,2026-10-01,44400,Rezé\n", encoding="utf-8")
        page.goto("/admin/directory/import")
        assert_accessible(page)
        page.get_by_label("Fichier").set_input_files(str(upload))
        page.get_by_role("button", name="Importer").click()
        expect(page.get_by_text("Import terminé")).to_be_visible()
        expect(page.locator(".dir-table")).to_contain_text("asso--2")
        expect(page.locator(".dir-table")).to_contain_text("trop court")
        assert_accessible(page)
        assert page.js_errors == []
        assert live.rt.directory.directory is not None
