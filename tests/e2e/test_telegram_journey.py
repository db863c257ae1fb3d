"""A person on Telegram reaches a named worker, who answers from the inbox — over real HTTP.

The app runs under uvicorn on loopback; Telegram is a fake Bot API server on loopback.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import LiveServer, csrf_of, wait_until
from tests.fakes.telegram_api import FakeTelegram

SECRET = "s3cret-token"
CHAT_ID = 424242


def update(update_id: int, text: str | None = None, callback: str | None = None) -> dict:
    user = {"id": CHAT_ID, "is_bot": False, "first_name": "Alex", "language_code": "fr"}
    chat = {"id": CHAT_ID, "type": "private", "first_name": "Alex"}
    if callback is not None:
        return {"update_id": update_id, "callback_query": {
            "id": f"cb{update_id}", "from": user, "chat_instance": "1", "data": callback,
            "message": {"message_id": update_id, "date": 1763800000, "chat": chat, "text": "…"}}}
    return {"update_id": update_id, "message": {"message_id": update_id, "date": 1763800000, "chat": chat,
                                                "from": user, "text": text}}


@pytest.fixture
def fake_telegram():
    with FakeTelegram() as fake:
        yield fake


def post(client: httpx.Client, body: dict, secret: str | None = SECRET) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
    return client.post("/bots/telegram/webhook", content=json.dumps(body), headers={
        "Content-Type": "application/json", **headers})


def test_telegram_person_reaches_named_worker_who_replies(settings_for, fake_telegram):
    settings = settings_for(telegram_bot_token=fake_telegram.token, telegram_webhook_secret=SECRET,
                            telegram_api_base=fake_telegram.base_url)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        # Unauthenticated webhooks are refused and change nothing.
        assert post(client, update(1, "/start"), secret=None).status_code == 401
        assert post(client, update(1, "/start"), secret="wrong").status_code == 403
        assert fake_telegram.sent_texts(CHAT_ID) == []

        assert post(client, update(1, "/start")).status_code == 200
        consent = wait_until(lambda: [c for c in fake_telegram.sent_messages(CHAT_ID)
                                      if "Êtes-vous d'accord" in c.params.get("text", "")])
        markup = consent[0].params["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        assert "oui" in json.dumps(markup)

        answered = post(client, update(2, callback="oui"))
        assert answered.status_code == 200
        # The button press is answered in the webhook's response (Telegram runs that method).
        assert answered.json() == {"method": "answerCallbackQuery", "callback_query_id": "cb2"}
        wait_until(lambda: any("Que voulez-vous faire" in t for t in fake_telegram.sent_texts(CHAT_ID)))
        assert post(client, update(3, callback="parler")).status_code == 200
        wait_until(lambda: any("C'est à quel sujet" in t for t in fake_telegram.sent_texts(CHAT_ID)))
        assert post(client, update(4, callback="logement")).status_code == 200
        intro = wait_until(lambda: [t for t in fake_telegram.sent_texts(CHAT_ID) if "Camille" in t])
        assert "conseillère numérique" in intro[0] and "France services Démo" in intro[0]

        # A retried update (same update_id) is a no-op: nothing more is sent.
        count = len(fake_telegram.sent_texts(CHAT_ID))
        assert post(client, update(4, callback="logement")).status_code == 200
        assert post(client, update(3, callback="parler")).status_code == 200

        # The worker logs in through the inbox routes and replies.
        login_page = client.get("/inbox/login")
        response = client.post("/inbox/login", data={"email": settings.demo_worker_email,
                                                     "password": settings.demo_worker_password,
                                                     "csrf_token": csrf_of(login_page.text)})
        assert response.status_code in (200, 303)
        inbox = client.get("/inbox")
        assert inbox.status_code == 200
        conversation_id = int(inbox.text.split('data-conversation="')[1].split('"')[0])
        page = client.get(f"/inbox/conversations/{conversation_id}")
        assert "logement" in page.text  # the summary shows the answer given
        reply = client.post(f"/inbox/conversations/{conversation_id}/reply",
                            data={"text": "Bonjour Alex, je regarde votre situation.", "csrf_token": csrf_of(page.text)})
        assert reply.status_code in (200, 303)
        signed = wait_until(lambda: [t for t in fake_telegram.sent_texts(CHAT_ID) if "je regarde votre situation" in t])
        assert signed[0].endswith("— Camille")
        assert len(fake_telegram.sent_texts(CHAT_ID)) == count + 1

        # Once a human is on, the bot stays silent and relays the person's messages to the inbox.
        assert post(client, update(5, "merci beaucoup")).status_code == 200
        wait_until(lambda: "merci beaucoup" in client.get(f"/inbox/conversations/{conversation_id}").text)
        assert len(fake_telegram.sent_texts(CHAT_ID)) == count + 1


def test_telegram_bad_input_gets_clear_errors(settings_for, fake_telegram):
    settings = settings_for(telegram_bot_token=fake_telegram.token, telegram_webhook_secret=SECRET,
                            telegram_api_base=fake_telegram.base_url)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        assert client.post("/bots/telegram/webhook", content=b"{not json", headers=headers).status_code == 400
        assert client.post("/bots/telegram/webhook", content=b"[]", headers=headers).status_code == 400
        huge = update(9, "x" * 5000)
        assert post(client, huge).status_code == 400
        unknown = {"update_id": 10, "my_chat_member": {"chat": {"id": 1, "type": "private"},
                                                       "from": {"id": 1, "is_bot": False, "first_name": "A"},
                                                       "date": 1, "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": False, "first_name": "A"}},
                                                       "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": False, "first_name": "A"}, "until_date": 0}}}
        assert post(client, unknown).status_code == 200
        assert client.post("/bots/telegram/webhook", content=b"x" * 300_000, headers=headers).status_code == 413
        assert fake_telegram.sent_texts() == []
