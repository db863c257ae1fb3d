"""JSON logs (ALLERVERS_LOG_JSON=true): one object per line with the request id, for a log
pipeline. Only what kernel.logscrub already let through reaches a line (its record factory
scrubs every record as it is made): messages, logger, level, the scrubbed traceback; never a body,
a header value or a query string. Every HTTP request gets an id (a valid X-Request-ID from the
proxy is kept, else a new one), echoed in the response's X-Request-ID."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid
from datetime import datetime, timezone

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info or record.exc_text:
            entry["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def install_json_logs(stream=None) -> logging.Handler:
    """Every handler of the root and uvicorn loggers formats JSON; a stderr handler if there is none."""
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(stream)
        root.addHandler(handler)
        if root.level == logging.WARNING:
            root.setLevel(logging.INFO)
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
    return root.handlers[0]
