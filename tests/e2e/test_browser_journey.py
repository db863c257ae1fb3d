"""The journey in a real browser: a person on the web chat reaches Camille, who answers from the inbox.

Debian's chromium driven by Playwright; the app under uvicorn on loopback (SQLite, and PostgreSQL +
Redis when configured). Two separate browser contexts: the person on /chat, the worker on /inbox.
Every update after the first load arrives live (server-sent events): the pages are never reloaded,
which a marker set on each window checks.
"""

from __future__ import annotations

import re

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

REPLY = "Bonjour, je regarde votre dossier logement tout de suite."
FOLLOW_UP = "Merci ! J'ai reçu une lettre de mon bailleur."


def subscribed(live: LiveServer, prefix: str) -> bool:
    """True once some live stream of the server listens on a topic starting with `prefix`."""
    try:
        return any(topic.startswith(prefix) for topic in list(live.rt.notifier._subscribers))
    except RuntimeError:  # the server thread changed the dict meanwhile: ask again
        return False


def test_person_on_web_chat_reaches_named_worker_who_replies_live(settings_for, chromium, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        person = phone_page(chromium, base_url=live.url)
        worker = phone_page(chromium, base_url=live.url)

        # The person opens the web chat: welcome and privacy notice as bubbles, with buttons.
        person.goto("/chat")
        mark_no_reload(person)
        expect(person.locator(".bubble.them").filter(has_text="Bonjour ! Je suis l'assistant")).to_be_visible()
        expect(person.locator(".bubble.them").filter(has_text="Êtes-vous d'accord")).to_be_visible()
        agree = person.get_by_role("button", name="✅ D'accord")
        expect(agree).to_be_visible()
        expect(person.get_by_role("button", name="🙅 Non merci")).to_be_visible()
        assert_accessible(person)
        # The identity is the server's, in an HttpOnly cookie: nothing in the page's storage.
        assert person.evaluate("localStorage.length") == 0
        chat_cookie = [c for c in person.context.cookies() if c["name"] == "allervers_chat"]
        assert chat_cookie and chat_cookie[0]["httpOnly"] and chat_cookie[0]["sameSite"] == "Strict"
        agree.click()
        expect(agree).to_be_disabled()
        expect(person.locator(".bubble.me").filter(has_text="✅ D'accord")).to_be_visible()
        expect(person.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()

        # The worker logs in through the form and waits on the inbox, before anyone asks for a human.
        worker.goto("/inbox")
        expect(worker).to_have_url(re.compile(r"/inbox/login$"))
        assert_accessible(worker)
        worker.get_by_label("E-mail").fill(settings.demo_worker_email)
        worker.get_by_label("Mot de passe").fill(settings.demo_worker_password)
        worker.get_by_role("button", name="Se connecter").click()
        expect(worker).to_have_url(re.compile(r"/inbox$"))
        expect(worker.get_by_text("Personne n'attend.")).to_be_visible()
        assert_accessible(worker)
        cards = worker.locator("a.card[data-conversation]")
        expect(cards).to_have_count(0)
        mark_no_reload(worker)
        wait_until(lambda: subscribed(live, "org:"), timeout=10)  # the inbox's live stream is open

        # The person asks for a human and picks a topic: the introduction names Camille.
        person.get_by_role("button", name="🙋 Parler à quelqu'un").click()
        expect(person.locator(".bubble.them").filter(has_text="C'est à quel sujet")).to_be_visible()
        person.get_by_role("button", name="🏠 Logement").click()
        intro = person.locator(".bubble.them").filter(has_text="Camille")
        expect(intro).to_be_visible()
        expect(intro).to_contain_text("conseillère numérique")
        expect(intro).to_contain_text("France services Démo")

        # The conversation appears in the worker's lists without a reload.
        expect(cards).to_have_count(1)
        expect(worker.locator(".lists section").nth(1)).to_contain_text("Mes conversations (1)")
        assert_not_reloaded(worker)
        conversation_id = cards.first.get_attribute("data-conversation")

        # The worker opens it: the summary card shows what the person said.
        cards.first.click()
        expect(worker).to_have_url(re.compile(rf"/inbox/conversations/{conversation_id}$"))
        # (folded behind « Ce que la personne a dit »: the worker opens it)
        worker.locator("#transcript > summary").click()
        summary = worker.locator("#summary")
        expect(summary).to_be_visible()
        expect(summary).to_contain_text("Ce que la personne a dit")
        expect(summary).to_contain_text("Logement")  # the button's label, not the code « logement »
        assert_accessible(worker)
        mark_no_reload(worker)
        wait_until(lambda: subscribed(live, f"conversation:{conversation_id}"), timeout=10)

        # The worker replies; the signed reply appears live on the person's page.
        worker.locator("#reply-form textarea[name=text]").fill(REPLY)
        worker.locator("#reply-form").get_by_role("button", name="Envoyer").click()
        signed = person.locator(".bubble.them").filter(has_text=REPLY)
        expect(signed).to_be_visible()
        expect(signed).to_contain_text("— Camille")
        expect(worker.locator("#timeline .msg.out").filter(has_text=REPLY)).to_be_visible()

        # The person writes after the handoff: it appears live in the worker's open conversation,
        # and the reply the worker is typing meanwhile is kept.
        worker.locator("#reply-form textarea[name=text]").fill("Brouillon en cours")
        person.get_by_label("Votre message").fill(FOLLOW_UP)
        person.get_by_label("Votre message").press("Enter")
        expect(person.locator(".bubble.me").filter(has_text=FOLLOW_UP)).to_be_visible()
        expect(worker.locator("#timeline .msg.in").filter(has_text=FOLLOW_UP)).to_be_visible()
        expect(worker.locator("#reply-form textarea[name=text]")).to_have_value("Brouillon en cours")
        # The bot stays silent once a human is on: the last bubble from "them" is still Camille's reply.
        expect(person.locator(".bubble.them").last).to_contain_text(REPLY)

        assert_not_reloaded(person)
        assert_not_reloaded(worker)
        assert person.js_errors == [] and worker.js_errors == []
        # The Content-Security-Policy (no inline script or style) broke nothing, and nothing broke it.
        assert csp_violations(person) == [] and csp_violations(worker) == []
        assert person.console_errors == [] and worker.console_errors == []

        person.screenshot(path=str(tmp_path / "person-webchat.png"), full_page=True)
        worker.screenshot(path=str(tmp_path / "worker-conversation.png"), full_page=True)
        for page in (person, worker):
            page.context.close()
