"""Issue 13's journey in Chromium: a person whose browser speaks Arabic goes through the welcome, the
real rights estimate and places in Lyon, then reaches a named worker who speaks Arabic; the page is
right to left and every bot bubble is marked lang="ar" dir="rtl"; axe-core finds nothing at phone
size. Buttons are tapped by the words the person sees (read from the page's own history API)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

import directory.flow
from handoff.models import Worker
from tests.browser import assert_accessible, chromium  # noqa: F401 (fixture)
from tests.conftest import LiveServer, wait_until
from tests.directory.conftest import shipped_database_url, shipped_directory  # noqa: F401 (fixtures)
from tests.e2e.test_rights_flow import Lent, openfisca  # noqa: F401 (the session's real estimator)
from tests.e2e.test_webchat_access_browser import new_page, on_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def bot_messages(page) -> list[dict]:
    return [m for m in page.request.get("/chat/api/history").json()["messages"] if m["from"] == "bot"]


def settled(page, before: int, timeout: float = 60) -> list[dict]:
    """The bot's new messages once it has answered and stopped talking for half a second."""
    wait_until(lambda: len(bot_messages(page)) > before, timeout=timeout)
    last, since = -1, time.monotonic()
    while time.monotonic() - since < 0.5:
        count = len(bot_messages(page))
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(0.1)
    return bot_messages(page)[before:]


def tap(page, value: str) -> list[dict]:
    """Tap the button of the latest question whose value is `value`, by the words it shows."""
    before = bot_messages(page)
    label = dict(next(m for m in reversed(before) if m.get("choices"))["choices"])[value]
    page.locator("#thread button:not([disabled])", has_text=label).last.click()
    return settled(page, len(before))


def write(page, text: str) -> list[dict]:
    before = len(bot_messages(page))
    box = page.get_by_label("رسالتك")
    box.fill(text)
    box.press("Enter")
    return settled(page, before)


async def _speaks_arabic(live) -> None:
    async with live.rt.sessionmaker() as session, session.begin():
        camille = (await session.execute(select(Worker).where(Worker.first_name == "Camille"))).scalar_one()
        camille.languages = ["fr", "ar"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_arabic_speaker_goes_through_rights_and_places_to_a_named_worker_right_to_left(
        settings_for, chromium, shipped_directory, openfisca, monkeypatch):  # noqa: F811
    from playwright.sync_api import expect

    async def shared(sessionmaker, autoload, *departements):
        return shipped_directory

    monkeypatch.setattr(directory.flow, "load_directory", shared)
    settings = settings_for(directory_autoload=True, action_notice_after_seconds=60)
    with LiveServer(settings) as live:
        live.rt.rights = Lent(openfisca)
        on_server(live, _speaks_arabic(live))
        page = new_page(chromium, live.url, locale="ar", extra_http_headers={"Accept-Language": "ar,fr;q=0.5"})
        page.goto("/chat")
        expect(page.locator("#thread button").first).to_be_visible()
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
        settled(page, 0)
        said = tap(page, "oui")
        said = tap(page, "droits")
        for step in ("35", "seul", "0", "tenant", "private", "450", "44000", "other", "0", "0"):
            said = write(page, step) if step.isdigit() and step != "0" else tap(page, step)
        results = tap(page, "aucune")
        assert all(m["locale"] == "ar" and m["dir"] == "rtl" for m in results)
        assert any(link[0].startswith("👉") for m in results for link in m.get("links") or [])
        assert_accessible(page, impacts=("minor", "moderate", "serious", "critical"))

        tap(page, "menu")
        tap(page, "lieux")
        tap(page, "se-nourrir")
        places = write(page, "Lyon")
        assert any(m.get("links") for m in places)
        handed = tap(page, "parler")
        assert any("Camille" in m["text"] for m in handed)
        bubbles = page.locator(".bubble.them")
        count = bubbles.count()
        assert count >= 20
        for index in range(count):  # every bot bubble says its language and direction
            expect(bubbles.nth(index)).to_have_attribute("dir", "rtl")
            expect(bubbles.nth(index)).to_have_attribute("lang", "ar")
        # Links are words; the map opens from a link; no raw URL in any bubble's text.
        expect(page.locator("#thread a[href^='https://www.openstreetmap.org']").first).to_be_visible()
        assert "https://" not in page.locator("#thread").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert_accessible(page, impacts=("minor", "moderate", "serious", "critical"))
        assert not page.js_errors
