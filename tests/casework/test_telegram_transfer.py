"""A Telegram person is asked, on Telegram, whether another organisation may take over: the question
goes through the outbox with two inline buttons; the button press is handled although the bot is
otherwise silent while a human has the conversation; the person is told who will answer."""

from __future__ import annotations

import json

import httpx
from tests.casework.test_browser_transfer import add_rows
from tests.conftest import LiveServer, csrf_of, wait_until
from tests.e2e.test_telegram_journey import CHAT_ID, SECRET, fake_telegram, post, update  # noqa: F401


def test_telegram_person_says_yes_and_moves_to_the_other_organisation(settings_for, fake_telegram):  # noqa: F811
    settings = settings_for(telegram_bot_token=fake_telegram.token, telegram_webhook_secret=SECRET,
                            telegram_api_base=fake_telegram.base_url)
    with LiveServer(settings) as live, httpx.Client(base_url=live.url, timeout=30) as client:
        add_rows(settings)
        assert post(client, update(1, "/start")).status_code == 200
        wait_until(lambda: any("Êtes-vous d'accord" in t for t in fake_telegram.sent_texts(CHAT_ID)))
        assert post(client, update(2, callback="oui")).status_code == 200
        assert post(client, update(3, "humain")).status_code == 200
        wait_until(lambda: any("Camille" in t for t in fake_telegram.sent_texts(CHAT_ID)))

        page = client.get("/inbox/login")
        assert client.post("/inbox/login", data={"email": settings.demo_worker_email,
                                                 "password": settings.demo_worker_password,
                                                 "csrf_token": csrf_of(page.text)}).status_code == 303
        form = client.get("/inbox/casework/1/transfer")
        other = form.text.split('<option value="', 1)[1].split('"', 1)[0]
        asked = client.post("/inbox/casework/1/transfer", data={"to_organisation": other, "note": "",
                                                                "csrf_token": csrf_of(form.text)})
        assert asked.status_code == 200
        question = wait_until(lambda: [m for m in fake_telegram.sent_messages(CHAT_ID)
                                       if "Maison Ailleurs" in m.params.get("text", "")])
        markup = question[0].params["reply_markup"]
        markup = json.loads(markup) if isinstance(markup, str) else markup
        assert "casework_transfer_yes" in json.dumps(markup) and "✅ Oui" in json.dumps(markup, ensure_ascii=False)

        assert post(client, update(4, callback="casework_transfer_yes")).status_code == 200
        wait_until(lambda: any("Votre demande passe à Maison Ailleurs" in t for t in fake_telegram.sent_texts(CHAT_ID)))
        told = wait_until(lambda: [t for t in fake_telegram.sent_texts(CHAT_ID) if "l'équipe de Maison Ailleurs" in t])
        assert "vous dira son prénom" in told[0]  # nobody online there: its queue, and who will answer

        assert client.get("/inbox/casework/1/transfer").status_code == 404  # Camille's organisation lost it
        assert client.get("/inbox/conversations/1").status_code == 403
