"""Sources and campaigns in Chromium at 390×844 and 1280×800: the admin creates a source, sees its
QR codes, downloads the PNG, opens the flyer; a person opens the web chat link (?src=) and writes:
the source counts them; a campaign is written, previewed and launched, its progress shown.
axe-core on every page (no serious or critical violation); each page's main action in view."""

from __future__ import annotations

import re

import pytest

from outreach.sources import qr_png
from tests.admin.test_admin_browser import SIZES, assert_in_view, new_page
from tests.browser import log_in, assert_accessible, chromium  # noqa: F401
from tests.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["sqlite"])  # the pages, not the database: both backends run the HTTP tests
@pytest.mark.parametrize("size", list(SIZES))
def test_admin_source_qr_flyer_webchat_arrival_and_campaign(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for(campaign_quiet_enabled=False, campaign_tick_seconds=0.2)
    with LiveServer(settings) as live:
        admin = new_page(chromium, size, live.url)
        log_in(admin, settings.demo_admin_email, settings.demo_worker_password)
        admin.goto("/admin")
        admin.get_by_role("navigation", name="Administration").get_by_role("link", name="🔗 Sources").click()
        create = admin.get_by_role("button", name="➕ Créer")
        assert_in_view(admin, create)
        assert_accessible(admin)
        admin.get_by_label("Nouvelle source").fill("Flyer marché de Rezé")
        admin.get_by_label("Type").select_option("flyer")
        create.click()
        expect(admin.get_by_role("heading", name="Flyer marché de Rezé")).to_be_visible()
        assert_in_view(admin, admin.get_by_role("link", name="🖨️ Flyer A5"))
        expect(admin.get_by_role("img", name=re.compile("QR code Web chat"))).to_be_visible()
        assert_accessible(admin)
        link = admin.get_by_label("Lien Web chat").input_value()
        code = link.rsplit("src=", 1)[1]
        with admin.expect_download() as download_info:
            admin.get_by_role("link", name="⬇️ PNG").first.click()
        download = download_info.value
        assert download.suggested_filename == f"qr-{code}-webchat.png"
        assert open(download.path(), "rb").read() == qr_png(link)
        admin.get_by_role("link", name="🖨️ Flyer A5").click()
        expect(admin.get_by_role("heading", name="France services Démo")).to_be_visible()
        assert_accessible(admin)

        # A person scans the code: the web chat opens with ?src=, they write.
        person = new_page(chromium, size, live.url)
        person.goto(f"/chat?src={code}")
        person.get_by_label("Votre message").fill("bonjour")
        person.get_by_role("button", name="Envoyer").click()
        expect(person.get_by_text("Êtes-vous d'accord", exact=False).first).to_be_visible()
        admin.goto("/admin/sources")
        expect(admin.get_by_text(re.compile(r"1 personne\(s\) venue\(s\)"))).to_be_visible()

        # A campaign: written, previewed, launched (nobody opted in yet: 0 people), progress shown.
        admin.get_by_role("navigation", name="Administration").get_by_role("link", name="📣 Campagnes").click()
        assert_in_view(admin, admin.get_by_role("button", name="➕ Créer"))
        assert_accessible(admin)
        admin.get_by_label("Nouvelle campagne").fill("Permanence CAF")
        admin.get_by_role("button", name="➕ Créer").click()
        expect(admin.get_by_role("heading", name="Aperçu : 0 personne(s)")).to_be_visible()
        assert_in_view(admin, admin.get_by_role("button", name=re.compile("Lancer l'envoi")))
        assert_accessible(admin)
        admin.get_by_label("Telegram", exact=True).fill("📣 Permanence CAF jeudi à la mairie.")
        admin.get_by_label("Web chat (laisser vide : pas d'envoi)").fill("📣 Permanence CAF jeudi à la mairie.")
        admin.get_by_role("button", name="💾 Enregistrer").click()
        expect(admin.locator(".bubble-preview").first).to_contain_text("Permanence CAF jeudi")
        admin.get_by_role("button", name=re.compile("Lancer l'envoi")).click()
        expect(admin.locator("#campaign-progress")).to_contain_text("Terminée", timeout=15_000)
        expect(admin.locator("#campaign-bar")).to_have_attribute("value", "100")
        assert_accessible(admin)
        admin.goto("/admin/audit")
        expect(admin.locator(".audit")).to_contain_text("Campagne lancée")
        assert not admin.js_errors and not person.js_errors


@pytest.mark.parametrize("backend", ["sqlite"])
def test_admin_sends_a_campaign_test_to_their_own_telegram(settings_for, chromium):  # noqa: F811
    """At phone size: the test form under the preview, a bad address refused with its reason, then the
    campaign's message at the admin's own chat (the fake Bot API), said on the page; axe clean."""
    from playwright.sync_api import expect

    from tests.fakes.telegram_api import FakeTelegram
    from tests.outreach.helpers import telegram_settings

    with FakeTelegram() as fake:
        settings = telegram_settings(settings_for, fake)
        with LiveServer(settings) as live:
            admin = new_page(chromium, "phone", live.url)
            log_in(admin, settings.demo_admin_email, settings.demo_worker_password)
            admin.goto("/admin/campaigns")
            admin.get_by_label("Nouvelle campagne").fill("Permanence CAF")
            admin.get_by_role("button", name="➕ Créer").click()
            admin.get_by_label("Telegram", exact=True).fill("📣 Permanence CAF jeudi à la mairie.")
            admin.get_by_role("button", name="💾 Enregistrer").click()
            expect(admin.locator(".bubble-preview").first).to_contain_text("Permanence CAF jeudi")
            address = admin.get_by_label(re.compile("Votre identifiant Telegram"))
            address.fill("12ab")
            admin.get_by_role("button", name="🧪 Envoyer le test").click()
            expect(admin.get_by_role("alert")).to_contain_text("identifiant de discussion Telegram")
            assert_accessible(admin)
            admin.get_by_label(re.compile("Votre identifiant Telegram")).fill("424242")
            send = admin.get_by_role("button", name="🧪 Envoyer le test")
            send.scroll_into_view_if_needed()
            send.click()
            expect(admin.get_by_role("status")).to_contain_text("Test envoyé sur Telegram (…42)")
            assert_accessible(admin)
            assert [t for t in fake.sent_texts(424242) if "Permanence CAF jeudi" in t]
            assert not admin.js_errors
