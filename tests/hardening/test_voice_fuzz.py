"""Malformed and fuzzed voice notes through both upload entry points (the web chat's
POST /chat/api/voice and the worker's POST /inbox/conversations/{id}/voice) of a real server, on
both backends: a clear 4xx in French, never a 5xx, no traceback in the logs, nothing stored."""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from sqlalchemy import func, select

from kernel.settings import Settings
from conversations.audio import silent_ogg_opus
from conversations.models import Conversation, Media
from tests.conftest import BACKENDS, POSTGRES_URL, REDIS_URL, LiveServer, csrf_of, reset_postgres, reset_redis
from tests.hardening.webm import FRAME_20MS, malformed_notes, webm
from tests.webchat import COOKIE

WORKER, PASSWORD = "camille@demo.allervers.fr", "allervers-demo"
GOOD_WEBM = webm([FRAME_20MS] * 25)
GOOD_OGG = silent_ogg_opus(0.5)
CONTENT_TYPES = ["audio/webm", "audio/webm;codecs=opus", "audio/ogg", "audio/mp4", "application/octet-stream", ""]
FRENCH = ("illisible", "vide", "trop lourd", "trop long", "n'arrive pas à lire")


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def tracebacks(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.exc_info or "Traceback" in r.getMessage()]


class Uploads:
    """Both voice entry points of one live server, and what it stored."""

    def __init__(self, server: LiveServer, settings: Settings):
        self.server, self.settings = server, settings
        self.person = httpx.Client(base_url=server.url, timeout=60)
        self.worker = httpx.Client(base_url=server.url, timeout=60)
        token = csrf_of(self.worker.get("/inbox/login").text)
        assert self.worker.post("/inbox/login", data={"email": WORKER, "password": PASSWORD,
                                                      "csrf_token": token}).status_code == 303
        self.csrf = csrf_of(self.worker.get("/inbox").text)
        # One web chat person: the identity cookie the server issues stays in this client's jar.
        assert self.person.post("/chat/api/identity", json={}).status_code == 200
        assert self.person.cookies.get(COOKIE)
        assert self.person.post("/chat/api/messages", json={"client_id": "fuzz-start",
                                                            "text": "bonjour"}).status_code == 200
        self.conversation_id = self.query(select(func.max(Conversation.id)))

    def query(self, statement):
        async def run():
            from kernel.database import make_engine

            engine = make_engine(self.settings.database_url)
            try:
                async with engine.connect() as connection:
                    return (await connection.execute(statement)).scalar()
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def media_count(self) -> tuple[int, int]:
        root = self.settings.media_dir
        files = len([p for p in root.rglob("*") if p.is_file()]) if root.exists() else 0
        return self.query(select(func.count()).select_from(Media)), files

    def web_chat(self, data: bytes, content_type: str) -> httpx.Response:
        return self.person.post("/chat/api/voice", data={"client_id": uuid.uuid4().hex},
                                files={"audio": ("voice", data, content_type)})

    def inbox(self, data: bytes, content_type: str) -> httpx.Response:
        return self.worker.post(f"/inbox/conversations/{self.conversation_id}/voice",
                                data={"csrf_token": self.csrf}, files={"audio": ("voice", data, content_type)},
                                headers={"HX-Request": "true"})

    def close(self):
        self.person.close()
        self.worker.close()


@pytest.fixture(scope="module", params=BACKENDS)
def uploads(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"voice-fuzz-{request.param}")
    values = dict(database_url=f"sqlite+aiosqlite:///{workdir}/allervers.db", media_dir=workdir / "media",
                  secret_key="test-secret-key", rights_backend="off", directory_autoload=False,
                  rate_limits_enabled=False, max_media_bytes=200_000)
    if request.param == "postgres":
        reset_postgres(POSTGRES_URL)
        values["database_url"] = POSTGRES_URL
        if REDIS_URL:
            reset_redis(REDIS_URL)
            values["redis_url"] = REDIS_URL
    settings = Settings(_env_file=None, **values)
    records = Records()
    watched = [logging.getLogger(), logging.getLogger("uvicorn.error")]
    for logger in watched:
        logger.addHandler(records)
    try:
        with LiveServer(settings) as server:
            routes = Uploads(server, settings)
            routes.records = records
            yield routes
            routes.close()
    finally:
        for logger in watched:
            logger.removeHandler(records)


def refused_cleanly(uploads: Uploads, response: httpx.Response, before: tuple[int, int]) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        text = body.get("error") or body.get("detail")
        assert any(word in text for word in FRENCH), text
        assert uploads.media_count() == before  # nothing stored


@pytest.mark.parametrize("name", sorted(malformed_notes()))
def test_malformed_voice_notes_get_a_clear_4xx_and_nothing_is_stored(uploads, name):
    data = malformed_notes()[name]
    for send in (uploads.web_chat, uploads.inbox):
        before = uploads.media_count()
        response = send(data, "audio/ogg" if data.startswith(b"OggS") else "audio/webm")
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        refused_cleanly(uploads, response, before)
    assert uploads.records.tracebacks() == []


def test_good_notes_still_pass_both_routes(uploads):
    for data in (GOOD_WEBM, GOOD_OGG):
        assert uploads.web_chat(data, "audio/webm").json()["media_id"]
        assert uploads.inbox(data, "audio/ogg").status_code == 204


@st.composite
def voice_bytes(draw):
    """Valid notes mutated (truncated, bytes flipped, bytes inserted), or bytes from nowhere."""
    kind = draw(st.sampled_from(["webm", "ogg", "raw"]))
    if kind == "raw":
        prefix = draw(st.sampled_from([b"", b"\x1a\x45\xdf\xa3", b"OggS", b"\0\0\0\x18ftypmp42"]))
        return prefix + draw(st.binary(max_size=2048))
    data = bytearray(GOOD_WEBM if kind == "webm" else GOOD_OGG)
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif len(data) > 1:
            del data[position:position + draw(st.integers(1, 32))]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


FUZZ = hypothesis_settings(max_examples=150, deadline=None, database=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=voice_bytes(), content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzzed_web_chat_voice_notes_never_give_a_5xx(uploads, data, content_type):
    before = uploads.media_count()
    refused_cleanly(uploads, uploads.web_chat(data, content_type), before)
    assert uploads.records.tracebacks() == []


@FUZZ
@given(data=voice_bytes(), content_type=st.sampled_from(CONTENT_TYPES))
def test_fuzzed_worker_voice_replies_never_give_a_5xx(uploads, data, content_type):
    before = uploads.media_count()
    refused_cleanly(uploads, uploads.inbox(data, content_type), before)
    assert uploads.records.tracebacks() == []


@hypothesis_settings(max_examples=200, deadline=None, database=None)
@given(data=st.binary(max_size=4096))
def test_the_fast_ogg_crc_equals_the_reference(data):
    from conversations.audio import ogg_crc, ogg_crc_reference

    assert ogg_crc(data) == ogg_crc_reference(data)


def test_parsing_is_bounded_and_early():
    """The parser stops at its bounds: too many blocks, or already longer than allowed."""
    from conversations.audio import VoiceLimits, check_voice
    from tests.hardening.webm import fragmented_webm

    limits = VoiceLimits(max_media_bytes=16 * 1024 * 1024, max_media_seconds=300, max_blocks=30_000)
    assert check_voice(limits, fragmented_webm(2_000_000), "audio/webm", "voice", True)[3] == "too_fragmented"
    assert check_voice(limits, webm([FRAME_20MS + b"\0" * 50] * 15_100), "audio/webm", "voice", True)[3] == "too_long"
    data, content_type, duration, refusal = check_voice(limits, webm([FRAME_20MS] * 14_000), "audio/webm",
                                                        "voice", True)
    assert refusal is None and content_type == "audio/ogg" and duration == 280.0
