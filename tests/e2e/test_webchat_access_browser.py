"""The web chat as a screen reader and a phone meet it, in Chromium: axe-core reports 0 violations
of any impact on /chat and the inbox pages at 390x844 and 1280x800; an Arabic visitor gets the page
right to left, in Arabic; each message says who speaks (visually hidden) in a polite live region;
links and places are words (tel:, a map link); old buttons stop working and a tap comes back with
its label; the question takes the focus; the title counts messages while the tab is hidden; no
horizontal scroll at 320 px; a draft survives live updates and a reload.

Screenshots of /chat at 390x844 in French and Arabic: /tmp/shots-webchat/ (ALLERVERS_SHOTS=docs/screenshots
refreshes the ones docs/webchat.md shows).
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from bots.base import Link, OutboundMessage, Venue
from tests.browser import assert_accessible, chromium, csp_violations  # noqa: F401
from tests.conftest import LiveServer, wait_until

pytestmark = pytest.mark.browser
SIZES = [(390, 844), (1280, 800)]
SHOTS = Path(os.environ.get("ALLERVERS_SHOTS", "/tmp/shots-webchat"))


def new_page(browser, base_url: str, width: int = 390, height: int = 844, locale: str = "fr-FR", **options):
    phone = width < 800
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1,
                                  is_mobile=phone, has_touch=phone, locale=locale, base_url=base_url, **options)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.js_errors = []
    page.console_errors = []
    page.on("pageerror", lambda error: page.js_errors.append(str(error)))
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    return page


def no_violation(page) -> None:
    """axe-core: no violation at all, whatever its impact (minor and moderate included)."""
    assert_accessible(page, impacts=("minor", "moderate", "serious", "critical"))


def on_server(live: LiveServer, coroutine, timeout: float = 15):
    """Run a coroutine on the live server's own event loop (its notifier and database)."""
    loop = live.server.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)


async def _webchat_uid(live: LiveServer) -> str:
    from conversations.models import Address

    async with live.rt.sessionmaker() as session:
        return (await session.execute(select(Address.external_id).where(Address.channel == "webchat")
                                      .order_by(Address.id.desc()).limit(1))).scalar_one()


def push(live: LiveServer, message: OutboundMessage) -> None:
    """A message sent live to the newest web chat person, through the web chat channel itself."""
    uid = on_server(live, _webchat_uid(live))
    on_server(live, live.rt.channels["webchat"].send(uid, message))


def open_chat(page):
    from playwright.sync_api import expect

    page.goto("/chat")
    agree = page.get_by_role("button", name="✅ D'accord")
    expect(agree).to_be_visible()
    return agree


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_no_axe_violation_on_chat_and_inbox(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        person = new_page(chromium, live.url, *size)
        agree = open_chat(person)
        # The structure a screen reader walks: a heading, a skip link to the labelled conversation,
        # a polite live list, a speaker before each message.
        expect(person.locator("h1")).to_contain_text("Allervers")
        skip = person.locator("a.skip-link")
        expect(skip).to_have_text("Aller au tchat")
        expect(skip).to_have_attribute("href", "#tchat")
        expect(person.get_by_role("region", name="Le tchat avec Allervers")).to_have_count(1)
        expect(person.locator("#thread")).to_have_attribute("aria-live", "polite")
        first = person.locator(".bubble.them").first
        expect(first.locator(".speaker")).to_have_text("Allervers dit : ")
        assert first.locator(".speaker").evaluate("e => getComputedStyle(e).position") == "absolute"
        no_violation(person)
        agree.click()
        person.get_by_role("button", name="🙋 Parler à quelqu'un").click()
        person.get_by_role("button", name="🏠 Logement").click()
        expect(person.locator(".bubble.them").filter(has_text="Camille")).to_be_visible()
        expect(person.locator(".bubble.me").first.locator(".speaker")).to_have_text("Vous avez dit : ")
        no_violation(person)

        worker = new_page(chromium, live.url, *size)
        worker.goto("/inbox")
        worker.get_by_label("E-mail").fill(settings.demo_worker_email)
        worker.get_by_label("Mot de passe").fill(settings.demo_worker_password)
        worker.get_by_role("button", name="Se connecter").click()
        expect(worker).to_have_url(re.compile(r"/inbox$"))
        cards = worker.locator("a.card[data-conversation]")
        expect(cards).to_have_count(1)
        no_violation(worker)
        cards.first.click()
        expect(worker).to_have_url(re.compile(r"/inbox/conversations/\d+$"))
        expect(worker.locator("#reply-form")).to_be_visible()
        no_violation(worker)

        # A worker's reply is preceded by their first name, for a screen reader.
        worker.locator("#reply-form textarea[name=text]").fill("Bonjour, je regarde.")
        worker.locator("#reply-form").get_by_role("button", name="Envoyer").click()
        reply = person.locator(".bubble.them").filter(has_text="Bonjour, je regarde.")
        expect(reply.locator(".speaker")).to_have_text("Camille dit : ")
        no_violation(person)
        assert person.js_errors == [] and worker.js_errors == []
        assert csp_violations(person) == [] and csp_violations(worker) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_arabic_visitor_gets_the_page_right_to_left_in_arabic(settings_for, chromium):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(settings) as live:
        french = new_page(chromium, live.url)
        open_chat(french)
        assert french.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["fr", "ltr"]
        french.screenshot(path=str(SHOTS / "webchat-fr-390.png"))
        french.context.close()

        page = new_page(chromium, live.url, locale="ar", extra_http_headers={"Accept-Language": "ar,fr;q=0.5"})
        page.goto("/chat")
        expect(page.locator(".bubble.them").first).to_be_visible()
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
        expect(page.locator("a.skip-link")).to_have_text("الذهاب إلى المحادثة")
        expect(page.get_by_label("رسالتك")).to_have_attribute("placeholder", "اكتب هنا…")
        assert page.title() == "Allervers — محادثة"
        expect(page.locator(".bubble.them").first.locator(".speaker")).to_have_text("رسالة من Allervers: ")
        # A message says its own language: an Arabic one is right to left whatever the page.
        push(live, OutboundMessage("مرحبًا، كيف يمكنني مساعدتك؟ 115", locale="ar",
                                   links=(Link("📞 اتصل بالرقم 115", "tel:115"),)))
        arabic = page.locator(".bubble.them").filter(has_text="كيف يمكنني مساعدتك؟ 115")
        expect(arabic).to_have_attribute("dir", "rtl")
        expect(arabic).to_have_attribute("lang", "ar")
        # Mirrored: the person's bubbles on the left, the bot's on the right, the input right to left.
        box, thread = arabic.bounding_box(), page.locator("#thread").bounding_box()
        assert box["x"] + box["width"] > thread["x"] + thread["width"] - 30, "the bot's bubble sits on the right"
        assert page.locator("#text").evaluate("e => getComputedStyle(e).direction") == "rtl"
        no_violation(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(SHOTS / "webchat-ar-390.png"))
        assert page.js_errors == [] and csp_violations(page) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_links_places_taps_focus_title_and_draft(settings_for, chromium):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        page = new_page(chromium, live.url)
        agree = open_chat(page)
        refuse = page.get_by_role("button", name="🙅 Non merci")
        # A draft, typed while the bot speaks: live updates never wipe it.
        page.get_by_label("Votre message").fill("Mon brouillon")
        agree.click()
        expect(page.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()
        # The answered question's buttons stop working, visibly; the tap is shown with its label.
        expect(agree).to_be_disabled()
        expect(refuse).to_be_disabled()
        expect(agree).to_have_class(re.compile(r"\bchosen\b"))
        assert refuse.evaluate("e => getComputedStyle(e).textDecorationLine") == "line-through"
        expect(page.locator(".bubble.me").last.locator(".text")).to_have_text("✅ D'accord")
        expect(page.get_by_label("Votre message")).to_have_value("Mon brouillon")
        # The new question took the focus (the person was not typing: the tap had it).
        question = page.locator(".bubble.them").filter(has_text="Que voulez-vous faire")
        wait_until(lambda: question.evaluate("e => e === document.activeElement"), timeout=5)

        # While the person types, a new question does not steal the focus.
        page.get_by_label("Votre message").focus()
        push(live, OutboundMessage("Une autre question ?", choices=()))
        expect(page.locator(".bubble.them").filter(has_text="Une autre question")).to_be_visible()
        assert page.evaluate("document.activeElement.id") == "text"
        expect(page.get_by_label("Votre message")).to_have_value("Mon brouillon")

        # Links and places as words: a tel: link, a web link opened safely, a map link and the address.
        page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true})")
        push(live, OutboundMessage("Voici le lieu le plus proche.", links=(
            Link("📞 Appeler le 115", "tel:115"), Link("👉 Faire la demande", "https://www.caf.fr/"),
            Link("piège", "javascript:alert(1)")),
            venue=Venue(48.8566, 2.3522, "Mairie de Paris", "Place de l'Hôtel de Ville, 75004 Paris")))
        place = page.locator(".bubble.them").filter(has_text="Voici le lieu")
        call = place.get_by_role("link", name="📞 Appeler le 115")
        expect(call).to_have_attribute("href", "tel:115")
        web = place.get_by_role("link", name=re.compile("^👉 Faire la demande"))
        expect(web).to_have_attribute("href", "https://www.caf.fr/")
        expect(web).to_have_attribute("target", "_blank")
        expect(web).to_have_attribute("rel", "noopener noreferrer")
        expect(place.get_by_role("link")).to_have_count(3)  # not the javascript: one
        where = place.get_by_role("link", name=re.compile("^🗺️ Voir sur la carte"))
        expect(where).to_have_attribute("href", re.compile(r"^https://www\.openstreetmap\.org/\?mlat=48\.856600&mlon=2\.352200"))
        expect(place).to_contain_text("Mairie de Paris — Place de l'Hôtel de Ville, 75004 Paris")
        assert "http" not in place.locator(".text").inner_text()
        # The tab was hidden: the title counts the new messages, and comes back on return.
        assert page.title() == "(1) Nouveau message — Allervers — discuter"
        page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                      "document.dispatchEvent(new Event('visibilitychange'))")
        assert page.title() == "Allervers — discuter"
        no_violation(page)

        # A reload (or an expired session): the history shows the tap's label, not its code, the old
        # buttons stay disabled and the draft is still there.
        page.reload()
        expect(page.locator(".bubble.me").filter(has_text="✅ D'accord")).to_have_count(1)
        expect(page.get_by_role("button", name="✅ D'accord")).to_be_disabled()
        expect(page.get_by_label("Votre message")).to_have_value("Mon brouillon")
        # Sent: the draft is forgotten.
        page.get_by_label("Votre message").press("Enter")
        expect(page.locator(".bubble.me").filter(has_text="Mon brouillon")).to_be_visible()
        wait_until(lambda: page.evaluate("localStorage.getItem('allervers-draft')") is None, timeout=5)
        assert page.js_errors == [] and csp_violations(page) == []


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("size", [(320, 640), (640, 400)], ids=["320px", "zoom-200"])
def test_no_horizontal_scroll_and_the_recording_hint_whole(settings_for, chromium, size):  # noqa: F811
    from playwright.sync_api import expect

    with LiveServer(settings_for()) as live:
        page = new_page(chromium, live.url, *size)
        agree = open_chat(page)
        agree.click()
        expect(page.locator(".bubble.them").filter(has_text="Que voulez-vous faire")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
        assert page.evaluate("document.getElementById('thread').scrollWidth <= document.getElementById('thread').clientWidth")
        # The recording hint as the page shows it: on its own lines above the composer, all of it.
        page.evaluate("""() => { const hint = document.getElementById('hint');
            hint.textContent = JSON.parse(document.body.dataset.words).words.recording + ' 0:05';
            hint.hidden = false; }""")
        hint = page.locator("#hint")
        expect(hint).to_be_visible()
        assert hint.evaluate("e => e.scrollWidth <= e.clientWidth")
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
        for control in ("#locate", "#text", "#record", "#send"):
            box = page.locator(control).bounding_box()
            if box:  # the record button is hidden where the browser cannot record
                assert box["x"] >= 0 and box["x"] + box["width"] <= size[0] + 0.5, control
