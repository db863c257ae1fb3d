"""Security headers on every response (pure ASGI middleware).

- Content-Security-Policy: scripts, styles, media and connections from this origin only; no inline
  script or style (templates have none: behaviour lives in static/*.js; htmx is told not to inject
  its indicator <style> and not to evaluate attributes, by <meta name="htmx-config"> in base.html).
  `blob:` for media: the web chat plays the voice note just recorded from memory. The framework's
  /docs and /redoc pages (only when settings.api_docs) load Swagger/ReDoc from a CDN with an inline
  script: those two paths get a looser policy of their own.
- frame-ancestors 'none' (and X-Frame-Options DENY for old browsers): no page can be framed.
- Referrer-Policy no-referrer: links to maps or benefit sites carry no conversation URL.
- X-Content-Type-Options nosniff; Permissions-Policy: microphone (voice notes) and geolocation
  (sharing a position) for this origin only, the camera and the rest for nobody.
- Strict-Transport-Security when the public URL is https.
A header a route set itself is kept.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self' blob:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
DOCS_CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com",
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly",
    "font-src https://fonts.gstatic.com",
    "worker-src blob:",
    "frame-ancestors 'none'",
])
DOCS_PATHS = ("/docs", "/redoc")
PERMISSIONS = ("microphone=(self), geolocation=(self), camera=(), payment=(), usb=(), "
               "interest-cohort=()")


class SecurityHeadersMiddleware:
    def __init__(self, app, settings) -> None:
        self.app = app
        self.docs = bool(settings.api_docs)
        self.headers = {
            "content-security-policy": CSP,
            "referrer-policy": "no-referrer",
            "x-content-type-options": "nosniff",
            "x-frame-options": "DENY",
            "permissions-policy": PERMISSIONS,
            "cross-origin-opener-policy": "same-origin",
        }
        if settings.public_url.lower().startswith("https://"):
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        docs = self.docs and (path in DOCS_PATHS or path.startswith("/docs/"))

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = DOCS_CSP if docs and name == "content-security-policy" else value
            await send(message)

        await self.app(scope, receive, send_wrapper)


__all__ = ["SecurityHeadersMiddleware", "CSP"]
