"""A request the fake received whole is processed, even if its client has gone meanwhile.

A real platform's front server (Telegram's Bot API, Meta's Graph API) hands a request on once it has
read it; a client that dies right after writing the last byte (kill -9 mid-send) does not undo the
send: the message reaches the person, the answer is just never read. That is what makes a send "in
doubt" after a crash (conversations/sent_journal.py).

uvicorn, which serves the fakes, tells the app `http.disconnect` instead of the buffered body when
the connection is lost before the app's first `receive()` (uvicorn/protocols/http/httptools_impl.py
and h11_impl.py, RequestResponseCycle.receive: `if self.disconnected ...: return {"type":
"http.disconnect"}`), although the whole body is already in the cycle (`more_body` False). A fake
under load (its thread competing for the GIL) would then drop sends a real server made: people
counted as "skipped" who, on the real platform, got the message.

`complete_bodies(app)` reads the body first; when the disconnect comes after the whole request was
received it hands the buffered body to the app (a request cut short stays a disconnect, as on a real
server: an incomplete request is never processed).
"""

from __future__ import annotations


def _buffered(receive) -> bytes | None:
    """The body uvicorn holds for a complete request whose client has gone, else None."""
    cycle = getattr(receive, "__self__", None)
    if cycle is None or getattr(cycle, "more_body", True):
        return None  # not uvicorn's cycle, or the request was not received whole
    return bytes(getattr(cycle, "body", b""))


def complete_bodies(app):
    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                rest = _buffered(receive)
                if rest is None:
                    return  # cut short: never processed
                chunks.append(rest)
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body, given = b"".join(chunks), False

        async def replay():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return wrapped
