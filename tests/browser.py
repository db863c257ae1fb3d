"""A small shared Playwright helper: Debian's chromium (no browser download), phone-size pages.

    from tests.browser import chromium, phone_page, assert_accessible, csp_violations   # noqa: F401

    def test_x(chromium):
        page = phone_page(chromium)
        ...
        assert_accessible(page)   # axe-core: no serious or critical violation

The browser is launched once per test module; every page gets its own context (cookies and
localStorage of its own), a 390x844 viewport, French locale, and a short default timeout so a
missing element fails fast with a clear message. Tests are skipped (with the reason) when the
chromium binary or the playwright package is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000  # generous: the CI machine has 2 cores, shared


def chromium_path() -> str | None:
    for candidate in (os.environ.get("ALLERVERS_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


@pytest.fixture(scope="module")
def chromium():
    """One headless chromium per test module (Playwright's sync API)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); no browser is downloaded")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def phone_page(browser, **options):
    """A fresh page in its own context (separate cookies and storage), phone-size, French."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                  locale="fr-FR", **options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.js_errors = errors  # type: ignore[attr-defined]  # checked by tests: no JavaScript error
    # Console errors, Content-Security-Policy violations among them ("Refused to execute inline
    # script ...", "Refused to apply inline style ..."): checked by tests, see csp_violations().
    console: list[str] = []
    def on_console(message) -> None:
        if message.type == "error":
            url = (message.location or {}).get("url", "")
            if not url.endswith("/favicon.ico"):  # the browser asks for one by itself; there is none
                console.append(f"{message.text} [{url}]")

    page.on("console", on_console)
    page.console_errors = console  # type: ignore[attr-defined]
    return page


def csp_violations(page) -> list[str]:
    """The console errors of this page that report a Content-Security-Policy violation."""
    return [text for text in page.console_errors if "Content Security Policy" in text or "Refused to" in text]


def mark_no_reload(page) -> None:
    """Set a marker on the window: it survives live updates but not a reload or a navigation."""
    page.evaluate("window.__allerversNoReload = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__allerversNoReload === true"), "the page was reloaded or navigated"


def assert_accessible(page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """Run axe-core (bundled by axe-playwright-python) on the page as it is now and fail on any
    violation of the given impacts, naming the rule and the elements. Returns all violations."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response.get("violations", [])
    bad = [v for v in violations if v.get("impact") in impacts]
    assert not bad, "axe-core violations on " + page.url + ":\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} -> "
        + ", ".join(str(node.get("target")) for node in v.get("nodes", [])[:5]) for v in bad)
    return violations


def log_in(page, email: str, password: str) -> None:
    """Sign in on the inbox's page and land on the inbox."""
    import re

    from playwright.sync_api import expect

    page.goto("/inbox/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(re.compile(r"/inbox$"))


def open_inbox_actions(page) -> None:
    """The inbox conversation's actions sheet (« ⋯ Actions »): take, note, transfer, close, and the
    rooms' panels (casework, follow-ups). Opened once; left open when it already is."""
    from playwright.sync_api import expect

    if not page.locator("#actions-sheet").is_visible():
        page.get_by_role("button", name="⋯ Actions").click()
    expect(page.locator("#actions-sheet")).to_be_visible()
