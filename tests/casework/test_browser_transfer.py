"""Transfer and referral in Chromium at 390×844 and 1280×800: the worker asks the person whether
another organisation may take over (the person says no: the worker sees it live, and the note being
typed in the panel survives the live update), then refers them to a partner of the directory and
copies the summary. axe-core on each state."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import date

import httpx
import pytest

from tests.admin.test_admin_browser import SIZES, new_page
from tests.browser import open_inbox_actions, assert_accessible, chromium  # noqa: F401
from tests.casework.test_browser import log_in
from tests.conftest import LiveServer, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def add_rows(settings) -> None:
    """Another organisation and a directory partner, written beside the live server (own engine)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from directory.models import Service, Structure
    from handoff.models import Organisation

    async def run() -> None:
        engine = create_async_engine(settings.database_url)
        try:
            async with async_sessionmaker(engine)() as session, session.begin():
                session.add(Organisation(slug="ailleurs", name="Maison Ailleurs"))
                session.add(Structure(id="dora--abc", source="dora", nom="Secours Solidaire Rezé", date_maj=date.today(),
                                      commune="Rezé", courriel="accueil@solidaire.example"))
                await session.flush()
                session.add(Service(id="dora--svc1", structure_id="dora--abc", source="dora", nom="Aide alimentaire",
                                    description="Colis", date_maj=date.today()))
        finally:
            await engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(run()))  # Playwright's loop runs in this thread
    thread.start()
    thread.join()


class Person:
    def __init__(self, url: str):
        self.client = httpx.Client(base_url=url, timeout=30)
        identity = self.client.post("/chat/api/identity", json={})
        self.cookie = {"Cookie": f"allervers_chat={identity.cookies.get('allervers_chat')}"}
        self.count = 0

    def send(self, **body) -> None:
        self.count += 1
        response = self.client.post("/chat/api/messages", json={"client_id": f"browser-transfer-{self.count:04d}", **body},
                                    headers=self.cookie)
        assert response.status_code == 200, response.text

    def texts(self) -> list[dict]:
        return self.client.get("/chat/api/history", headers=self.cookie).json().get("messages", [])


@pytest.mark.parametrize("size", list(SIZES))
def test_transfer_question_then_referral(settings_for, backend, chromium, size):  # noqa: F811
    if backend != "sqlite":  # the pages are the same on both; test_casework.py runs the routes on both backends
        pytest.skip("browser pages checked once, on SQLite")
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        add_rows(settings)
        person = Person(live.url)
        person.send(text="humain")
        worker = new_page(chromium, size, live.url)
        worker.context.grant_permissions(["clipboard-read", "clipboard-write"])
        log_in(worker, settings.demo_worker_email, settings.demo_worker_password)
        worker.goto("/inbox/conversations/1")

        open_inbox_actions(worker)

        worker.locator("#casework-transfer-1 > summary").click()
        worker.get_by_label("Structure", exact=True).select_option(label="Maison Ailleurs")
        worker.get_by_label("Note pour cette structure (facultatif)").fill("Dossier CAF en cours")
        worker.get_by_role("button", name="🤝 Demander l'accord de la personne").click()
        expect(worker.locator("#transfer-box-1")).to_contain_text("Question envoyée")
        assert_accessible(worker)

        # Typing in the referral panel while the person answers: the live update keeps it
        open_inbox_actions(worker)
        worker.locator("#casework-referral-1 > summary").click()
        summary = worker.get_by_label("Résumé à partager (vous pouvez le modifier)")
        summary.fill("Besoin d'aide alimentaire, 2 enfants.")
        person.send(choice="casework_transfer_no")
        expect(worker.locator(".timeline")).to_contain_text("La personne a dit non")
        expect(summary).to_have_value("Besoin d'aide alimentaire, 2 enfants.")
        wait_until(lambda: any("reste chez nous" in (m.get("text") or "") for m in person.texts()))

        worker.get_by_label("Partenaire (nom ou commune, dans l'annuaire)").fill("secours")
        worker.get_by_label(re.compile("Aide alimentaire")).check()
        worker.get_by_label("La personne est d'accord pour partager ce résumé").check()
        assert_accessible(worker)
        worker.get_by_role("button", name="📋 Copier").first.click()
        expect(worker.locator("[data-copy-result]")).to_contain_text("Copié")
        assert "Besoin d'aide alimentaire" in worker.evaluate("navigator.clipboard.readText()")
        expect(worker.locator("[data-referral-mailto]")).to_have_attribute("href", re.compile(r"^mailto:accueil@solidaire"))
        expect(worker.locator(".timeline")).to_contain_text("Orientation vers Secours Solidaire Rezé")
        assert_accessible(worker)
        assert not worker.js_errors, worker.js_errors

        # Asked again, the person says yes: the page, reloaded, says where the conversation went.
        worker.reload()
        open_inbox_actions(worker)
        worker.locator("#casework-transfer-1 > summary").click()
        worker.get_by_label("Structure", exact=True).select_option(label="Maison Ailleurs")
        worker.get_by_role("button", name="🤝 Demander l'accord de la personne").click()
        expect(worker.locator("#transfer-box-1")).to_contain_text("Question envoyée")
        person.send(choice="casework_transfer_yes")
        wait_until(lambda: any("Maison Ailleurs" in (m.get("text") or "") and "passe" in (m.get("text") or "")
                               for m in person.texts()))
        worker.reload()
        expect(worker.get_by_role("heading", name="➡️ Conversation transférée")).to_be_visible()
        expect(worker.locator("main")).to_contain_text("Maison Ailleurs")
        assert_accessible(worker)
        person.client.close()
