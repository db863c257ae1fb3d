"""Bad input gets a 4xx, never a 5xx, and changes nothing; platform updates carrying a NUL are stored
(NUL removed) and answered 200, so the platform does not redeliver them forever. Through the HTTP
routes, on SQLite and on PostgreSQL + Redis (issue 9)."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import select

from conversations.models import Event, Message
from tests.conftest import app_client, login
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.telegram_api import FakeTelegram
from tests.hardening.payloads import (
    ServerLog,
    all_channels,
    counts,
    inbox_session,
    post_telegram,
    post_webchat,
    post_whatsapp,
    telegram_fixture,
    whatsapp_fixture,
)
from tests.webchat import COOKIE, Person, new_identity


@pytest.fixture(scope="module")
def telegram_api():
    with FakeTelegram(max_long_poll=0.5) as fake:
        yield fake


@pytest.fixture(scope="module")
def graph_api():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


@pytest.fixture
def settings(settings_for, telegram_api, graph_api):
    return all_channels(settings_for, telegram_api, graph_api)


@pytest.fixture
def server_log():
    """The server's log at DEBUG: no error and no traceback, whatever was sent."""
    with ServerLog() as captured:
        yield captured
    assert not captured.problems, captured.problems


async def inbound_texts(client, channel: str) -> list[str | None]:
    async with client.app.state.rt.sessionmaker() as session:
        return list((await session.execute(select(Message.text).where(
            Message.channel == channel, Message.direction == "in").order_by(Message.id))).scalars())


def telegram_text(update_id: int, text: str, chat_id: int = 111111111) -> dict:
    update = telegram_fixture("text")
    update["update_id"] = update_id
    update["message"]["text"] = text
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = chat_id
    return update


def whatsapp_message(name: str, change=None, ident: str = "wamid.HARDENING.1") -> dict:
    body = copy.deepcopy(whatsapp_fixture(name))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = ident
    if change:
        change(message)
    return body


# NUL and lone surrogates ------------------------------------------------------------------------

async def test_a_nul_carrying_telegram_update_is_stored_once_and_answered_200(settings, server_log):
    async with app_client(settings) as client:
        update = telegram_text(800000001, "bon\u0000jour")
        first = await post_telegram(client, update)
        retry = await post_telegram(client, update)
        await client.app.state.rt.drain()
        assert first.status_code == 200 and retry.status_code == 200
        assert await inbound_texts(client, "telegram") == ["bonjour"]  # stored once, NUL removed
        async with client.app.state.rt.sessionmaker() as session:
            received = (await session.execute(select(Event).where(Event.type == "message_received"))).scalars().all()
        assert len(received) == 1  # the retry was a duplicate: not handled twice


async def test_a_lone_surrogate_in_a_telegram_text_is_stored_not_refused(settings, server_log):
    """pydantic's JSON parser refuses "\\ud800"; refused, the update would come back forever."""
    async with app_client(settings) as client:
        response = await post_telegram(client, telegram_text(800000003, "a\ud800b"))
        await client.app.state.rt.drain()
        assert response.status_code == 200
        assert await inbound_texts(client, "telegram") == ["a\ufffdb"]


async def test_a_nul_in_a_telegram_button_and_caption_is_stored(settings, server_log):
    async with app_client(settings) as client:
        press = telegram_fixture("callback_query")
        press["callback_query"]["data"] = "hu\u0000main"
        photo = telegram_fixture("photo")
        photo["message"]["caption"] = "\u0000légende"
        assert (await post_telegram(client, press)).status_code == 200
        assert (await post_telegram(client, photo)).status_code == 200
        await client.app.state.rt.drain()
        async with client.app.state.rt.sessionmaker() as session:
            rows = (await session.execute(select(Message).where(Message.direction == "in")
                                          .order_by(Message.id))).scalars().all()
        assert [row.payload.get("choice") for row in rows] == ["humain", None]
        assert rows[1].text == "légende"


async def test_a_nul_carrying_whatsapp_message_is_stored_and_answered_200(settings, server_log):
    async with app_client(settings) as client:
        body = whatsapp_message("text", lambda m: m["text"].update(body="\u0000allo\u0000"))
        assert (await post_whatsapp(client, body)).status_code == 200
        assert (await post_whatsapp(client, body)).status_code == 200
        await client.app.state.rt.drain()
        assert await inbound_texts(client, "whatsapp") == ["allo"]


async def test_web_chat_text_with_nul_or_a_lone_surrogate_is_stored_cleaned(settings, server_log):
    async with app_client(settings) as client:
        token, _ = await new_identity(client)
        sent = await post_webchat(client, '{"client_id": "client-0001", "text": "a\\u0000b"}', token)
        assert sent.status_code == 200, sent.text
        sent = await post_webchat(client, '{"client_id": "client-0002", "text": "c\\ud800d"}', token)
        assert sent.status_code == 200, sent.text
        # json.loads reads a surrogate encoded in the bytes too ("surrogatepass"): cleaned the same way
        sent = await post_webchat(client, b'{"client_id": "client-0003", "text": "e\xed\xa0\x80"}', token)
        assert sent.status_code == 200, sent.text
        await client.app.state.rt.drain()
        assert await inbound_texts(client, "webchat") == ["ab", "c\ufffdd", "e\ufffd"]
        history = await client.get("/chat/api/history", headers={"Cookie": f"{COOKIE}={token}"})
        assert history.status_code == 200 and [m["text"] for m in history.json()["messages"] if m["from"] == "me"] \
            == ["ab", "c\ufffdd", "e\ufffd"]


@pytest.mark.parametrize("body", [
    '{"client_id": "client-0001", "text": "\\u0000"}',  # nothing left once cleaned
    '{"client_id": "client\\u00000001", "text": "bonjour"}',  # NUL in the message's id
    '{"client_id": "client\\ud8000001", "text": "bonjour"}',
    '{"client_id": "%s", "text": "bonjour"}' % ("c" * 49),  # past 48: the dedupe key would overflow
    '{"client_id": "%s", "text": "bonjour"}' % ("c" * 64),
    '{"client_id": "%s", "text": "bonjour", "uid": "%s"}' % ("c" * 64, "u" * 64),  # a uid changes nothing
], ids=["only-nul", "nul-client-id", "surrogate-client-id", "client-id-49", "client-id-64", "long-ids"])
async def test_web_chat_refuses_unusable_texts_and_client_ids(settings, server_log, body):
    async with app_client(settings) as client:
        token, _ = await new_identity(client)
        before = await counts(client)
        response = await post_webchat(client, body, token)
        assert response.status_code == 400 and response.json()["ok"] is False
        assert await counts(client) == before


# What the identity cookie may carry: a NUL (raw, or as the octal escape of a quoted cookie value),
# a lone surrogate (its UTF-8 bytes, raw or escaped), garbage, a value of the right shape nobody was
# given, the person's external id (no credential).
BAD_COOKIES = [b"uuuuuuuu\x00uuuu" * 3, b'"\\000' + b"u" * 42 + b'"', b"\xed\xa0\x80" * 12,
               b'"\\355\\240\\200' + b"u" * 40 + b'"', b"\xff" * 43, b"%00" * 15, b"+" * 43, b"A" * 43,
               b"A" * 4000, b"", b'"', b";;;", "é".encode() * 30]
BAD_COOKIE_IDS = ["nul", "escaped-nul", "surrogate", "escaped-surrogate", "ff", "percent-nul", "plus",
                  "unknown", "long", "empty", "quote", "semicolons", "accents"]


@pytest.mark.parametrize("value", BAD_COOKIES, ids=BAD_COOKIE_IDS)
async def test_web_chat_refuses_unusable_identity_cookies(settings, server_log, value):
    async with app_client(settings) as client:
        person = await Person.joined(client)
        await person.send("/start")
        before = await counts(client)
        response = await client.post("/chat/api/messages", json={"client_id": "client-0001", "text": "bonjour"},
                                     headers={"Cookie": COOKIE.encode() + b"=" + value})
        assert response.status_code == 401, (value, response.status_code, response.text)
        assert "identity" in response.json()["detail"]
        assert await counts(client) == before
        # Nor is the person's external id a credential, in the cookie or in the body.
        for cookie, body in ((f"{COOKIE}={person.uid}", {}), ("", {"uid": person.uid})):
            response = await client.post("/chat/api/messages", headers={"Cookie": cookie},
                                         json={"client_id": "client-0002", "text": "bonjour", **body})
            assert response.status_code == 401, (cookie, body)
        assert await counts(client) == before


async def test_history_stream_and_media_refuse_missing_or_unusable_identities(settings, server_log):
    async with app_client(settings) as client:
        person = await Person.joined(client)
        await person.send("/start")
        cookies = [b""] + [COOKIE.encode() + b"=" + value for value in BAD_COOKIES] \
            + [f"{COOKIE}={person.uid}".encode()]
        for cookie in cookies:
            for path in ("/chat/api/history", "/chat/api/stream", "/chat/api/media/1"):
                # a uid in the query string is ignored: it neither identifies nor breaks anything
                for query in ("", f"?uid={person.uid}", "?uid=uuuuuuuu%00uuuu", "?uid=" + "%ED%A0%80" * 10):
                    response = await client.get(path + query, headers={"Cookie": cookie})
                    expected = (404,) if path.startswith("/chat/api/media") else ()  # "no such file" for all
                    assert response.status_code in (401, *expected), (path, cookie, query, response.status_code)
        assert (await client.get("/chat/api/history", headers=person.headers)).status_code == 200


# Numbers past a column's range ------------------------------------------------------------------

@pytest.mark.parametrize("where", ["update_id", "chat_id", "negative_update_id"])
async def test_telegram_ids_past_their_range_are_refused(settings, server_log, where):
    async with app_client(settings) as client:
        update = telegram_text(800000002, "bonjour")
        if where == "update_id":
            update["update_id"] = 10**200
        elif where == "chat_id":
            update["message"]["chat"]["id"] = 10**200
        else:
            update["update_id"] = -1
        before = await counts(client)
        response = await post_telegram(client, update)
        assert response.status_code == 400
        assert await counts(client) == before


async def test_whatsapp_ids_past_their_columns_are_refused(settings, server_log):
    async with app_client(settings) as client:
        before = await counts(client)
        for change in (lambda m: m.update(id="w" * 200), lambda m: m.update(**{"from": "3" * 200})):
            assert (await post_whatsapp(client, whatsapp_message("text", change))).status_code == 400
        account = whatsapp_message("text")
        account["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "1" * 100
        assert (await post_whatsapp(client, account)).status_code == 400
        assert await counts(client) == before


async def test_path_and_form_ids_past_integer_range_are_4xx(settings, server_log):
    async with inbox_session(settings) as (client, conversation_id, csrf, person):
        for path in ("/chat/api/media/9223372036854775808", "/chat/api/media/2147483648",
                     "/chat/api/media/-1", "/chat/api/media/0"):
            response = await client.get(path, headers=person.headers)
            assert response.status_code == 422, (path, response.status_code)
        for path in ("/inbox/conversations/2147483648", "/inbox/conversations/9223372036854775808",
                     "/inbox/conversations/2147483648/timeline", "/inbox/media/9223372036854775808",
                     "/inbox/stream?conversation=2147483648", "/inbox/conversations/99999999999999999999999"):
            response = await client.get(path)
            assert 400 <= response.status_code < 500, (path, response.status_code)
        before = await counts(client)
        for action in ("reply", "note", "take", "close", "return-to-bot", "transfer"):
            response = await client.post(f"/inbox/conversations/2147483648/{action}",
                                         data={"csrf_token": csrf, "text": "x", "outcome": "other", "to": "1"})
            assert 400 <= response.status_code < 500, (action, response.status_code)
        for to in ("2147483648", "9223372036854775808", "-5", "abc"):
            response = await client.post(f"/inbox/conversations/{conversation_id}/transfer",
                                         data={"csrf_token": csrf, "to": to})
            assert 400 <= response.status_code < 500, (to, response.status_code)
        assert await counts(client) == before


# Deep nesting and bodies that are not JSON ------------------------------------------------------

@pytest.mark.parametrize("body", [b"[" * 5000, b'{"a":' * 5000, b"[" * 5000 + b"]" * 5000,
                                  b'{"client_id": "client-0001", "text": '
                                  + b"[" * 5000 + b"]" * 5000 + b"}"],
                         ids=["open-brackets", "open-objects", "balanced", "deep-text"])
async def test_deeply_nested_json_is_400_on_every_json_route(settings, server_log, body):
    async with app_client(settings) as client:
        token, _ = await new_identity(client)  # with a valid identity: the parser meets the body
        before = await counts(client)
        assert (await post_webchat(client, body, token)).status_code == 400
        assert (await post_whatsapp(client, body)).status_code == 400
        assert (await post_telegram(client, body)).status_code == 400
        assert await counts(client) == before


@pytest.mark.parametrize("body", [b"[" * 1000, b"[" * 1000 + b"]" * 24, b'{"legacy_uid":' + b"[" * 1000],
                         ids=["open-brackets", "some-closed", "in-legacy-uid"])
async def test_deeply_nested_json_within_the_identity_routes_1_kb_is_400(settings, server_log, body):
    """POST /chat/api/identity reads 1 kB at most: 1,000 levels fit, past the interpreter's recursion
    limit (hypothesis raises that limit while it runs, so the fuzz cannot see this one)."""
    async with app_client(settings) as client:
        token, _ = await new_identity(client)
        before = await counts(client)
        for cookie in ("", f"{COOKIE}={token}"):
            response = await client.post("/chat/api/identity", content=body, headers={"Cookie": cookie})
            assert response.status_code == 400, (cookie, response.status_code)
            assert "set-cookie" not in response.headers
        assert await counts(client) == before


# Signed WhatsApp payloads with wrong types or odd numbers ----------------------------------------

def _location(value: str) -> bytes:
    body = json.dumps(whatsapp_message("location"))
    return body.replace('"latitude": 48.8566', f'"latitude": {value}').encode()


@pytest.mark.parametrize("body", [
    whatsapp_message("interactive_button_reply", lambda m: m["interactive"]["button_reply"].update(title=["a"])),
    whatsapp_message("interactive_list_reply", lambda m: m["interactive"]["list_reply"].update(title={"x": 1})),
    whatsapp_message("button_template_reply", lambda m: m["button"].update(text=7)),
    whatsapp_message("text", lambda m: m["text"].update(body=["x"])),
    whatsapp_message("location", lambda m: m["location"].update(latitude="48.85")),
    whatsapp_message("location", lambda m: m["location"].update(latitude=400)),
    _location("4" * 400), _location("NaN"), _location("Infinity"), _location("-Infinity"), _location("1e999"),
    _location("9" * 5000),
    whatsapp_message("audio_voice", lambda m: m["audio"].update(id="../../me/messages")),
    whatsapp_message("image", lambda m: m["image"].update(id="1" * 300)),
], ids=["button-title-list", "list-title-object", "template-text-int", "text-body-list", "latitude-string",
        "latitude-400", "latitude-400-digits", "latitude-nan", "latitude-inf", "latitude-minus-inf",
        "latitude-1e999", "latitude-5000-digits", "media-id-path", "media-id-long"])
async def test_signed_whatsapp_payloads_of_the_wrong_shape_are_400(settings, server_log, body):
    async with app_client(settings) as client:
        before = await counts(client)
        response = await post_whatsapp(client, body)
        assert response.status_code == 400, response.text
        assert await counts(client) == before


async def test_a_whatsapp_status_with_odd_errors_is_answered_200(settings, server_log):
    async with app_client(settings) as client:
        status = copy.deepcopy(whatsapp_fixture("status_failed"))
        entry = status["entry"][0]["changes"][0]["value"]["statuses"][0]
        entry["id"] = "wamid.\u0000unknown"
        entry["errors"] = [{"code": ["x"], "title": "t" * 5000}]
        assert (await post_whatsapp(client, status)).status_code == 200


# Inbox forms -------------------------------------------------------------------------------------

async def test_inbox_reply_and_note_with_nul_are_stored_cleaned(settings, server_log):
    async with inbox_session(settings) as (client, conversation_id, csrf, _):
        reply = await client.post(f"/inbox/conversations/{conversation_id}/reply",
                                  data={"text": "bon\u0000jour", "csrf_token": csrf})
        note = await client.post(f"/inbox/conversations/{conversation_id}/note",
                                 data={"text": "\u0000note", "csrf_token": csrf})
        assert reply.status_code == 303 and note.status_code == 303
        async with client.app.state.rt.sessionmaker() as session:
            texts = (await session.execute(select(Message.text).where(Message.author_worker_id.is_not(None))))\
                .scalars().all()
            notes = (await session.execute(select(Event.data).where(Event.type == "note_added"))).scalars().all()
        assert any(text.startswith("bonjour\n") for text in texts)
        assert [n.get("text") for n in notes] == ["note"]
        before = await counts(client)
        for action in ("reply", "note"):
            response = await client.post(f"/inbox/conversations/{conversation_id}/{action}",
                                         data={"text": "\u0000 \u0000", "csrf_token": csrf})
            assert response.status_code == 400
        closed = await client.post(f"/inbox/conversations/{conversation_id}/close",
                                   data={"outcome": "other", "detail": "fin\u0000", "csrf_token": csrf})
        assert closed.status_code == 303
        assert (await counts(client))[1] == before[1]


async def test_inbox_login_and_csrf_with_odd_characters_are_4xx(settings, server_log):
    async with app_client(settings) as client:
        assert (await login(client, "camille\u0000@demo.allervers.fr", "x\u0000")).status_code == 401
        async with inbox_session(settings) as (inbox, conversation_id, _, _person):
            response = await inbox.post(f"/inbox/conversations/{conversation_id}/note",
                                        data={"text": "x", "csrf_token": "é\u0000"})
            assert response.status_code == 403
