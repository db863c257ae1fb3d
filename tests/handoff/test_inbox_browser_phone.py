"""The inbox one-handed, in Chromium at 390x844 (and 1280x800 for the screenshots): a worker hears of
a new waiting person (title, sound, notification), opens the conversation at its newest message,
reads the summary, takes it, types a reply, an outcome, a précision and a note while the person
writes through the real web chat — nothing typed or chosen is lost — inserts a canned answer in one
tap, replies without scrolling (the person sees it live), closes with the outcome, and finds the closed conversation by search. A 1,000-message timeline comes in pages.
axe-core on every inbox page; the manifest and the service worker (scope /inbox) are served.

Screenshots: /tmp/shots-inbox/ (ALLERVERS_SHOTS overrides).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from tests.browser import (  # noqa: F401
    assert_accessible,
    assert_not_reloaded,
    chromium,
    csp_violations,
    mark_no_reload,
    phone_page,
)
from tests.conftest import LiveServer, wait_until

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("ALLERVERS_SHOTS", "/tmp/shots-inbox"))

# Notifications and sounds, observed: the page's Notification and the service worker's
# showNotification are wrapped to record their calls (the real ones still run).
SPY = """
(() => {
  window.__notifications = [];
  const Original = window.Notification;
  if (Original) {
    const Spy = function (title, options) { window.__notifications.push({title, options}); return new Original(title, options); };
    Spy.permission = Original.permission;
    Spy.requestPermission = Original.requestPermission.bind(Original);
    window.Notification = Spy;
  }
  if (window.ServiceWorkerRegistration) {
    const show = ServiceWorkerRegistration.prototype.showNotification;
    ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
      window.__notifications.push({title, options}); return show.call(this, title, options);
    };
  }
})();
"""


def subscribed(live: LiveServer, prefix: str) -> bool:
    try:
        return any(topic.startswith(prefix) for topic in list(live.rt.notifier._subscribers))
    except RuntimeError:
        return False


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] + 1 and box["x"] >= 0 \
        and box["x"] + box["width"] <= size["width"] + 1


def at_bottom(page) -> bool:
    return page.evaluate("(() => { const s = document.scrollingElement; return s.scrollHeight - s.scrollTop - innerHeight < 4; })()")


def log_in(page, settings) -> None:
    page.goto("/inbox/login")
    assert_accessible(page)
    page.get_by_label("E-mail").fill(settings.demo_worker_email)
    page.get_by_label("Mot de passe").fill(settings.demo_worker_password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(re.compile(r"/inbox$"))


def seed_timeline(settings, conversation_id: int, count: int) -> None:
    """Rows written from outside the server (its own engine), as another process would."""
    from kernel.database import make_engine, make_sessionmaker
    from tests.handoff.seeding import seed_timeline as seed

    async def run():
        engine = make_engine(settings.database_url)
        try:
            class Rt:
                sessionmaker = make_sessionmaker(engine)

            await seed(Rt, conversation_id, count)
        finally:
            await engine.dispose()

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        pool.submit(asyncio.run, run()).result()


def test_one_handed_inbox_at_phone_size(settings_for, chromium):  # noqa: F811
    from playwright.sync_api import expect

    SHOTS.mkdir(parents=True, exist_ok=True)
    settings = settings_for()
    with LiveServer(settings) as live:
        person = phone_page(chromium, base_url=live.url)
        worker = phone_page(chromium, base_url=live.url)
        worker.context.grant_permissions(["notifications"], origin=live.url)
        worker.add_init_script(SPY)

        # The person reaches the menu on the web chat.
        person.goto("/chat")
        person.get_by_role("button", name="✅ D'accord").click()
        expect(person.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()

        # The worker logs in, turns the sound on and steps away (nobody is assigned: the person waits).
        log_in(worker, settings)
        worker.get_by_role("button", name="⚪ Pas disponible").or_(worker.get_by_role("button", name="🟢 Disponible")).first.click()
        expect(worker.get_by_role("button", name="⚪ Pas disponible")).to_be_visible()
        worker.get_by_role("button", name="🔕 Son coupé").click()
        expect(worker.get_by_role("button", name="🔔 Son activé")).to_have_attribute("aria-pressed", "true")
        assert_accessible(worker)
        wait_until(lambda: subscribed(live, "org:"), timeout=10)
        mark_no_reload(worker)
        title = worker.title()

        person.get_by_role("button", name="🙋 Parler à quelqu'un").click()
        person.get_by_role("button", name="🏠 Logement").click()
        expect(person.locator(".bubble.them").filter(has_text="Votre message est bien arrivé")).to_be_visible()

        # Someone new waits: the title counts it, a sound plays, a notification shows.
        expect(worker.locator(".lists section").first).to_contain_text("En attente (1)")
        wait_until(lambda: worker.title().startswith("(1) "), timeout=10)
        assert worker.title() == f"(1) {title}"
        assert worker.evaluate("window.__allerversBeeps") >= 1
        notes = worker.evaluate("window.__notifications")
        assert notes and notes[0]["title"] == "Quelqu'un attend une réponse"
        assert_not_reloaded(worker)
        card = worker.locator("a.card[data-conversation]").first
        conversation_id = int(card.get_attribute("data-conversation"))
        expect(card).to_contain_text("Discussion sur le site")
        expect(card).to_contain_text("🌐 Français")  # the language by its own name
        expect(card.locator("[lang=fr]")).to_have_text("Français")
        worker.screenshot(path=str(SHOTS / "lists-390.png"), full_page=True)

        # A long timeline (1,000 messages): it opens at the newest, older ones on demand.
        seed_timeline(settings, conversation_id, 1000)
        card.click()
        worker.wait_for_url(re.compile(rf"/inbox/conversations/{conversation_id}$"))
        expect(worker.locator("#timeline .msg").last).to_contain_text("ligne 0999")
        assert worker.locator("#timeline .msg[data-message]").count() <= 60
        wait_until(lambda: at_bottom(worker), timeout=5)
        for selector in ("#reply-text", ".actions-open", ".take-now button"):
            assert in_viewport(worker, selector), f"{selector} is not on screen without scrolling"
        older = worker.get_by_role("button", name="⬆️ Messages plus anciens")
        older.click()
        expect(worker.locator(".older-page .msg").first).to_contain_text("ligne 09")
        assert worker.locator("[data-message]").count() > 60

        # The worker takes it (from the reply bar, no scrolling) and reads the summary.
        worker.locator(".take-now button").click()
        worker.wait_for_url(re.compile(rf"/inbox/conversations/{conversation_id}$"))
        expect(worker.locator("#conversation-status")).to_contain_text("suivie par Camille")
        wait_until(lambda: subscribed(live, f"conversation:{conversation_id}"), timeout=10)
        worker.locator("#transcript > summary").click()
        summary = worker.locator("#summary")
        expect(summary).to_be_visible()
        expect(summary).to_contain_text("🏠 Logement")
        expect(summary).not_to_contain_text("consent_answer")
        assert_accessible(worker)
        worker.locator("#transcript > summary").click()  # folded again
        worker.mouse.wheel(0, 20000)  # back down to the newest message (clicking scrolled the summary into view)
        wait_until(lambda: at_bottom(worker), timeout=5)
        mark_no_reload(worker)

        # The worker types a reply, then picks an outcome, a précision and a note in the sheet...
        worker.locator("#reply-text").fill("Je regarde votre dossier")
        worker.get_by_role("button", name="⋯ Actions").click()
        sheet = worker.locator("#actions-sheet")
        expect(sheet).to_be_visible()
        assert_accessible(worker)
        worker.screenshot(path=str(SHOTS / "actions-sheet-390.png"))
        sheet.get_by_label("✅ Terminer : résultat").select_option("appointment")
        sheet.get_by_label("Précision (facultatif)").fill("lundi 9 h au CCAS")
        sheet.get_by_label("📝 Note interne (la personne ne la voit pas)").fill("A déjà un dossier à la CAF")
        title = worker.title()

        # ...while the person writes through the real web chat: live updates arrive, nothing is lost.
        for text in ("Merci beaucoup", "J'ai aussi une question sur la CAF"):
            person.get_by_label("Votre message").fill(text)
            person.get_by_label("Votre message").press("Enter")
            expect(worker.locator("#timeline .msg.in").filter(has_text=text)).to_be_visible()
        expect(sheet).to_be_visible()  # the sheet stayed open
        expect(sheet.get_by_label("✅ Terminer : résultat")).to_have_value("appointment")
        expect(sheet.get_by_label("Précision (facultatif)")).to_have_value("lundi 9 h au CCAS")
        expect(sheet.get_by_label("📝 Note interne (la personne ne la voit pas)")).to_have_value("A déjà un dossier à la CAF")
        wait_until(lambda: worker.title().startswith("("), timeout=10)  # a new message for me
        assert worker.title().endswith(title.split(") ", 1)[-1])
        sheet.get_by_role("button", name="Fermer les actions").click()
        expect(sheet).to_be_hidden()
        expect(worker.locator("#reply-text")).to_have_value("Je regarde votre dossier")
        wait_until(lambda: at_bottom(worker), timeout=5)  # the newest message stays in view
        assert_not_reloaded(worker)
        worker.screenshot(path=str(SHOTS / "conversation-390.png"))

        # A canned answer, found and inserted in one tap (nothing sent yet), then completed.
        worker.locator("#reply-text").fill("")
        worker.locator(f"#casework-canned-{conversation_id} > summary").click()
        worker.get_by_label("Chercher une réponse type").fill("115")
        worker.get_by_role("button", name="➕ Urgence : dormir ce soir (115)").click()
        expect(worker.locator("#reply-text")).to_have_value(re.compile(r"^Si vous n'avez pas d'endroit où dormir ce soir"))
        expect(worker.locator("#timeline")).not_to_contain_text("appelez le 115")  # inserted, not sent
        worker.locator("#reply-text").press("End")
        worker.keyboard.type(" Je regarde votre dossier CAF tout de suite.")

        # The reply, sent without scrolling, reaches the person live.
        send = worker.locator("#reply-form").get_by_role("button", name="Envoyer")
        assert in_viewport(worker, "#reply-form button[type=submit]"), "Envoyer is not on screen without scrolling"
        send.click()
        expect(person.locator(".bubble.them").filter(has_text="appelez le 115")).to_contain_text("— Camille")
        expect(person.locator(".bubble.them").filter(has_text="Je regarde votre dossier CAF")).to_be_visible()
        expect(worker.locator("#reply-text")).to_have_value("")

        # Closed with the outcome and the précision chosen before the live updates.
        worker.get_by_role("button", name="⋯ Actions").click()
        expect(sheet.get_by_label("✅ Terminer : résultat")).to_have_value("appointment")
        sheet.get_by_role("button", name="Terminer la conversation").click()
        expect(worker.locator(".closed-note")).to_contain_text("Rendez-vous pris — lundi 9 h au CCAS")
        assert_accessible(worker)

        # Found again by search in the history.
        worker.goto("/inbox?view=closed")
        worker.get_by_label("Prénom, téléphone ou n°").fill(str(conversation_id))
        worker.get_by_role("button", name="🔎 Chercher").click()
        expect(worker.locator(f'a.card[data-conversation="{conversation_id}"]')).to_contain_text("Rendez-vous pris")
        assert_accessible(worker)
        worker.screenshot(path=str(SHOTS / "history-390.png"), full_page=True)
        worker.goto("/inbox/waiting")
        assert_accessible(worker)
        worker.goto("/inbox/password")
        assert_accessible(worker)

        # Installable: the manifest and the service worker, scope /inbox.
        worker.goto("/inbox")
        manifest = worker.evaluate("fetch('/static/manifest.webmanifest').then(r => r.json())")
        assert manifest["start_url"] == "/inbox" and manifest["display"] == "standalone"
        assert manifest["scope"] == "/inbox"
        # the list page itself is in the scope: the worker is ready (it controls /inbox)
        scope = worker.evaluate("""Promise.race([navigator.serviceWorker.ready.then(r => r.scope),
            new Promise(done => setTimeout(() => done('not ready'), 10000))])""")
        assert scope == f"{live.url}/inbox"

        # The same pages on a desktop screen, for the eye.
        desk = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=live.url, locale="fr-FR")
        page = desk.new_page()
        log_in(page, settings)
        page.screenshot(path=str(SHOTS / "lists-1280.png"), full_page=True)
        page.goto(f"/inbox/conversations/{conversation_id}")
        page.screenshot(path=str(SHOTS / "conversation-1280.png"))
        desk.close()

        for page in (person, worker):
            assert page.js_errors == [], page.js_errors
            assert csp_violations(page) == []
        for page in (person, worker):
            page.context.close()
