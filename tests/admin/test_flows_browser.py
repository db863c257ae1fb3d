"""The flows room in Chromium at 390×844 and 1280×800: an admin logs in, changes the welcome text,
sees a validation error, fixes it, simulates, publishes; a person on /chat gets the new text.
axe-core: no serious or critical violation on the room's pages. One server for both sizes (its
start-up is most of the time on 2 shared cores)."""

from __future__ import annotations

import re

import pytest

from tests.browser import TIMEOUT_MS, assert_accessible, chromium, phone_page  # noqa: F401
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def desktop_page(browser, **options):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-FR", **options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def journey(chromium, live, settings, page, new: str, old_start: str, full: bool) -> None:
    from playwright.sync_api import expect

    page.goto("/admin/flows")
    expect(page).to_have_url(re.compile(r"/inbox/login$"))
    page.get_by_label("E-mail").fill(settings.demo_admin_email)
    page.get_by_label("Mot de passe").fill(settings.demo_worker_password)
    page.get_by_role("button", name="Se connecter").click()
    page.goto("/admin/flows")
    expect(page.get_by_role("link", name="Accueil et accord")).to_be_visible()
    if full:  # axe-core is slow on 2 shared cores: every page once, the editor at both sizes
        assert_accessible(page)

    page.get_by_role("link", name="Accueil et accord").click()
    expect(page.get_by_role("heading", name="🧭 Parcours « welcome »")).to_be_visible()
    hello = page.locator('textarea[name="f|hello|say"]')
    counter = page.locator('[data-count-for="' + hello.get_attribute("id") + '"]')

    # A mistake: the live check names the step, in French; the count follows the typing.
    mistake = "👋 Bienvenue {{ organisation"
    hello.fill(mistake)
    expect(page.locator("#flow-check")).to_contain_text("Étape « hello » : le texte contient une erreur de modèle")
    expect(counter).to_contain_text(f"{len(mistake)} / 4096")
    if full:
        assert_accessible(page)  # with the error shown
    hello.fill(new)
    expect(page.locator("#flow-check")).to_contain_text("Aucune erreur")

    # The simulator runs the (unsaved) draft on the real engine, as a new person.
    page.get_by_role("button", name="▶️ Nouvelle personne").click()
    phone = page.locator("#flow-phone")
    first_words = new.split("{{")[0].strip()
    expect(phone.locator(".bubble.them").filter(has_text=first_words)).to_be_visible()
    phone.get_by_role("button", name="✅ D'accord").click()
    expect(phone.locator(".bubble.me").filter(has_text="✅ D'accord")).to_be_visible()
    expect(phone.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()
    expect(phone).to_contain_text("Moteur :")
    assert_accessible(page)

    # Save (people still see the old text), then publish after the plain-words diff.
    page.get_by_role("button", name="💾 Enregistrer le brouillon").click()
    expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré")
    page.get_by_role("link", name="🚀 Publier…").click()
    expect(page.locator(".flow-changes")).to_contain_text(f"Message « {old_start}")
    if full:
        assert_accessible(page)
    page.get_by_role("button", name="🚀 Publier maintenant").click()
    expect(page.get_by_role("status")).to_contain_text("Publié")

    # A person on the web chat gets the new welcome.
    person = phone_page(chromium, base_url=live.url)
    person.goto("/chat")
    expect(person.locator(".bubble.them").filter(has_text=first_words)).to_be_visible()
    person.context.close()

    if full:
        page.goto("/admin/flows/welcome/revisions")
        expect(page.get_by_text("Révision n° 1")).to_be_visible()
        assert_accessible(page)
        page.goto("/admin/flows/welcome?tab=yaml")
        expect(page.get_by_label(re.compile("Le parcours en YAML"))).to_be_visible()
        assert_accessible(page)
    assert not page.js_errors, page.js_errors
    page.context.close()


def test_admin_edits_simulates_and_publishes_the_welcome(settings_for, chromium):  # noqa: F811
    settings = settings_for()
    with LiveServer(settings) as live:
        journey(chromium, live, settings, desktop_page(chromium, base_url=live.url),
                "👋 Bienvenue ! Je suis le nouvel assistant de {{ organisation }}.", "👋 Bonjour ! Je suis", True)
        journey(chromium, live, settings, phone_page(chromium, base_url=live.url),
                "🌞 Bonjour et bienvenue chez {{ organisation }} !", "👋 Bienvenue ! Je suis", False)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_strings_by_languages_table_on_a_phone(settings_for, chromium, backend):  # noqa: F811
    """390×844: the rights flow's texts, one card per text with a field per language, a missing cell
    said in words; an admin fills it and saves the draft; axe-clean."""
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        page = phone_page(chromium, base_url=live.url)
        page.goto("/inbox/login")
        page.get_by_label("E-mail").fill(settings.demo_admin_email)
        page.get_by_label("Mot de passe").fill(settings.demo_worker_password)
        page.get_by_role("button", name="Se connecter").click()
        page.goto("/admin/flows/rights?tab=languages")
        table = page.locator("table.flow-languages")
        expect(table.locator("caption")).to_contain_text("tout est traduit")
        ukrainian = page.get_by_label("age ask en ukrainien", exact=True)
        expect(ukrainian).to_have_value("🎂 Скільки вам років?")
        arabic = page.get_by_label("age ask en arabe", exact=True)
        assert arabic.get_attribute("dir") == "rtl" and arabic.get_attribute("lang") == "ar"
        box = ukrainian.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390  # a card: no sideways scroll
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert_accessible(page)
        ukrainian.fill("")
        page.get_by_role("button", name="💾 Enregistrer le brouillon").click()
        expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré")
        page.goto("/admin/flows/rights?tab=languages")
        expect(table.locator("caption")).to_contain_text("1 case manquante")
        expect(page.locator(".flow-missing").first).to_contain_text("❓ Manquant")
        page.get_by_label("age ask en ukrainien", exact=True).fill("🎂 Скільки Вам років?")
        page.get_by_role("button", name="💾 Enregistrer le brouillon").click()
        expect(page.get_by_role("status")).to_contain_text("Brouillon enregistré")
        assert not page.js_errors, page.js_errors
        page.context.close()
