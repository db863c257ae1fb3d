"""Security headers on every response (kernel/headers.py), no inline script or style in the
templates, the API docs only when enabled. Through the real HTTP routes on both backends; the
Content-Security-Policy enforced in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser import assert_accessible, chromium, csp_violations, phone_page  # noqa: F401
from tests.conftest import LiveServer, app_client, login

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def assert_secure_headers(response) -> None:
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    directives = dict((part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip())
    assert directives.get("script-src") == "'self'", csp  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives.get("style-src") == "'self'", csp
    assert directives.get("frame-ancestors") == "'none'" and directives.get("object-src") == "'none'", csp
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("x-frame-options") == "DENY"
    permissions = headers.get("permissions-policy", "")
    assert "microphone=(self)" in permissions and "geolocation=(self)" in permissions and "camera=()" in permissions


async def test_every_response_carries_the_security_headers(settings_for):
    async with app_client(settings_for()) as client:
        responses = [
            await client.get("/"), await client.get("/chat"), await client.get("/inbox/login"),
            await client.get("/inbox"),  # a redirect
            await client.get("/static/app.css"), await client.get("/static/webchat.js"), await client.get("/healthz"),
            await client.get("/no/such/page"),  # 404
            await client.get("/chat/api/history"),  # 401
            await client.post("/chat/api/identity", content=b"{oops"),  # 400
            await client.post("/bots/telegram/webhook", json={}),  # channel not configured
        ]
        assert [r.status_code for r in responses] == [200, 200, 200, 303, 200, 200, 200, 404, 401, 400, 404]
        assert (await login(client, "camille@demo.allervers.fr", "allervers-demo")).status_code == 303
        responses += [await client.get("/inbox"), await client.get("/inbox/password")]
        for response in responses:
            assert_secure_headers(response)
        assert "strict-transport-security" not in responses[0].headers  # http: no HSTS


async def test_https_adds_strict_transport_security(settings_for):
    async with app_client(settings_for(public_url="https://allervers.example.org")) as client:
        assert (await client.get("/")).headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize("enabled", [False, True])
async def test_api_docs_only_when_enabled(settings_for, enabled):
    async with app_client(settings_for(api_docs=enabled)) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            response = await client.get(path)
            assert response.status_code == (200 if enabled else 404), path
            assert_secure_headers(response) if path == "/openapi.json" or not enabled else None
        if enabled:  # the docs pages load their CDN scripts: a policy of their own, still unframeable
            assert "frame-ancestors 'none'" in (await client.get("/docs")).headers["content-security-policy"]


def test_templates_hold_no_inline_script_style_or_handler():
    """What the Content-Security-Policy would refuse: behaviour lives in static/*.js, looks in app.css."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        source = path.read_text()
        for pattern, what in ((r"<script(?![^>]*\bsrc=)[^>]*>", "inline <script>"),
                              (r"\son[a-z]+\s*=", "inline event handler"),
                              (r"\shx-on[:-]", "hx-on (evaluated code)"),
                              (r"\sstyle\s*=", "style attribute"),
                              (r"<style[\s>]", "<style> element"),
                              (r"javascript:", "javascript: URL")):
            for match in re.finditer(pattern, source):
                found.append(f"{path.relative_to(TEMPLATES)}: {what}: {match.group(0)!r}")
    assert found == []


@pytest.mark.browser
def test_the_browser_enforces_the_policy_and_the_pages_break_none_of_it(settings_for, chromium):  # noqa: F811
    from playwright.sync_api import expect

    settings = settings_for()
    with LiveServer(settings) as live:
        page = phone_page(chromium, base_url=live.url)
        page.goto("/chat")
        expect(page.locator(".bubble.them").filter(has_text="Êtes-vous d'accord")).to_be_visible()
        page.goto("/inbox/login")
        page.get_by_label("E-mail").fill(settings.demo_worker_email)
        page.get_by_label("Mot de passe").fill(settings.demo_worker_password)
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_text("Personne n'attend.")).to_be_visible()
        page.locator(".topbar-menu > summary").click()  # the worker's own links, folded under their name
        expect(page.get_by_role("button", name="🚪 Se déconnecter")).to_be_visible()
        assert_accessible(page)  # the open menu too
        page.get_by_role("link", name="🔑 Mot de passe").click()
        expect(page.get_by_role("heading", name="Changer mon mot de passe")).to_be_visible()
        assert_accessible(page)
        assert page.js_errors == [] and csp_violations(page) == [] and page.console_errors == []
        # The policy is really on: a script injected into the page does not run, and is reported.
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                      " document.head.appendChild(s); }")
        assert page.evaluate("() => window.__ran === undefined")
        assert csp_violations(page), page.console_errors
        page.context.close()
