"""A fake Web Push service on loopback (what FCM / Mozilla autopush are to a browser), for the push tests.

Real HTTP (http.server in a thread, 127.0.0.1, a free port). Every POST to /push/<id> is recorded
with its headers and body; the VAPID Authorization header (`vapid t=<JWT>, k=<public key>`) is
checked (ES256 signature, `aud` = this origin, `exp` in the future, a `sub`); a recorded push can be
decrypted with the subscription's private key (`http_ece`, aes128gcm), as the browser would.

    with FakePushService() as service:
        subscription = service.subscription("phone-1")   # what PushSubscription.toJSON() gives
        ...
        push = service.wait_for(1)[0]
        assert push.vapid_ok and service.decrypt(push)["url"] == "/inbox/conversations/1"

Controls: answer_with(status) (410: the subscription is gone), delay(seconds).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    path: str
    headers: dict
    body: bytes
    vapid_ok: bool = False
    vapid_claims: dict = field(default_factory=dict)
    vapid_key: str = ""
    problem: str = ""


def check_vapid(authorization: str, origin: str) -> tuple[bool, dict, str, str]:
    """(valid, claims, public key, problem) of a `vapid t=..., k=...` header."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not authorization.lower().startswith("vapid "):
        return False, {}, "", "not a vapid header"
    parts = dict(part.strip().split("=", 1) for part in authorization[6:].split(","))
    token, key = parts.get("t", ""), parts.get("k", "")
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64url(header_b64))
        claims = json.loads(unb64url(claims_b64))
        signature = unb64url(signature_b64)
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except (ValueError, KeyError, InvalidSignature) as error:
        return False, {}, key, f"bad token ({type(error).__name__})"
    if header.get("alg") != "ES256":
        return False, claims, key, "alg"
    if claims.get("aud") != origin:
        return False, claims, key, f"aud {claims.get('aud')!r} != {origin!r}"
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        return False, claims, key, "exp"
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        return False, claims, key, "sub"
    return True, claims, key, ""


class FakePushService:
    def __init__(self):
        self.pushes: list[Push] = []
        self.status = 201
        self.seconds = 0.0
        self.keys: dict[str, tuple] = {}  # subscription id -> (private key, auth secret)
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                ok, claims, key, problem = check_vapid(self.headers.get("Authorization", ""), service.origin)
                push = Push(self.path, {k.lower(): v for k, v in self.headers.items()}, body, ok, claims, key, problem)
                if service.seconds:
                    time.sleep(service.seconds)
                with service._lock:
                    service.pushes.append(push)
                self.send_response(service.status if ok else 403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakePushService":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def subscription(self, name: str) -> dict:
        """A browser's subscription (endpoint + the receiver's public key and auth secret)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        private = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.keys[f"/push/{name}"] = (private, auth)
        public = private.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.origin}/push/{name}", "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def decrypt(self, push: Push) -> dict:
        import http_ece

        private, auth = self.keys[push.path]
        return json.loads(http_ece.decrypt(push.body, private_key=private, auth_secret=auth, version="aes128gcm"))

    def answer_with(self, status: int) -> None:
        self.status = status

    def delay(self, seconds: float) -> None:
        self.seconds = seconds

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Push]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.pushes) >= count:
                    return list(self.pushes)
            time.sleep(0.02)
        raise AssertionError(f"{count} push(es) expected, {len(self.pushes)} received")

    async def wait_for_async(self, count: int, timeout: float = 15.0) -> list[Push]:
        """wait_for without blocking the event loop (the app under test runs on it)."""
        import asyncio

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.pushes) >= count:
                    return list(self.pushes)
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} push(es) expected, {len(self.pushes)} received")
