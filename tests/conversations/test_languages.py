"""The person's language, through the real routes: the platform's hint for a new contact (Telegram's
language_code, the web chat's JSON or Accept-Language), the language's own name typed at any time,
the chooser's buttons, the pending question asked again, and the person's taps shown back in the
inbox by their labels."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from markupsafe import escape
from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import select

from conversations.language import request_of
from conversations.models import Contact, Conversation, Event, Message
from handoff.hours import DAYS, PARIS
from handoff.models import Team, Worker
from tests.conftest import app_client, eventually, login
from tests.fakes.telegram_api import FakeTelegram, callback_update, text_update
from tests.followups.helpers import PASSWORD, SECRET, WORKER_EMAIL, post_update
from tests.webchat import Person, values

CHAT = 727272


def update(update_id: int, text: str | None = None, callback: str | None = None, language: str = "en") -> dict:
    if callback is not None:
        return callback_update(callback, chat_id=CHAT, update_id=update_id, message_id=update_id, language_code=language)
    return text_update(text, chat_id=CHAT, update_id=update_id, message_id=update_id, language_code=language)


def telegram_settings(settings_for, fake):
    return settings_for(telegram_bot_token=fake.token, telegram_webhook_secret=SECRET,
                        telegram_api_base=fake.base_url)


async def contact_of(rt) -> Contact:
    async with rt.sessionmaker() as session:
        return (await session.execute(select(Contact).order_by(Contact.id.desc()))).scalars().first()


async def close_the_team_until_tomorrow(rt) -> None:
    """Nobody online, and the team opens only tomorrow at 9 h (holidays ignored)."""
    tomorrow = DAYS[(datetime.now(PARIS) + timedelta(days=1)).weekday()]
    async with rt.sessionmaker() as session, session.begin():
        for worker in (await session.execute(select(Worker))).scalars():
            worker.is_online = False
        for team in (await session.execute(select(Team))).scalars():
            team.opening_hours, team.closed_on_holidays = {tomorrow: [["09:00", "10:00"]]}, False


async def test_a_telegram_person_in_english_gets_english_words_and_switches_to_arabic(settings_for):
    async with FakeTelegram() as fake:
        async with app_client(telegram_settings(settings_for, fake)) as client:
            rt = client.app.state.rt
            await post_update(client, update(1, "/start"))
            welcome = await eventually(lambda: fake.sent_texts(CHAT))
            assert (await contact_of(rt)).locale == "en"
            # The welcome's first message says that other languages are offered, in English.
            assert "🌐 Another language? Type: Français · العربية · Українська" in welcome[0]
            assert not any("Autre langue" in text for text in fake.sent_texts(CHAT))
            await eventually(lambda: any(m.params.get("reply_markup") for m in fake.sent_messages(CHAT)))
            asked = len(fake.sent_texts(CHAT))

            # "العربية" typed at the pending consent question: saved, confirmed in Arabic, asked again.
            await post_update(client, update(2, "العربية"))
            texts = await eventually(lambda: fake.sent_texts(CHAT)[asked:] if len(fake.sent_texts(CHAT)) >= asked + 2
                                     else None)
            assert texts[0] == "🌐 حسنًا، سأكتب لك بالعربية."
            reasked = fake.sent_messages(CHAT)[-1]
            assert reasked.params.get("reply_markup"), "the pending question comes back with its buttons"
            async with rt.sessionmaker() as session:
                contact = (await session.execute(select(Contact))).scalar()
                conversation = (await session.execute(select(Conversation))).scalar()
                assert contact.locale == "ar" and conversation.flow_state["locale"] == "ar"
                assert conversation.flow_state["waiting"] == "input"
                rows = (await session.execute(select(Message).where(Message.direction == "out")
                                              .order_by(Message.id))).scalars().all()
                assert rows[0].payload["locale"] == "en" and rows[-1].payload["locale"] == "ar"
                assert (await session.execute(select(Event.data).where(Event.type == "language_changed"))).scalar() \
                    == {"locale": "ar"}

            # The chooser: "🌐" offers the four languages by their own names; a button switches.
            await post_update(client, update(3, "🌐"))
            chooser = await eventually(lambda: [m for m in fake.sent_messages(CHAT) if "اختر لغتك" in m.params.get("text", "")])
            markup = chooser[0].params["reply_markup"]
            markup = json.loads(markup) if isinstance(markup, str) else markup
            shown = json.dumps(markup, ensure_ascii=False)
            for value, label in (("lang:fr", "Français"), ("lang:en", "English"), ("lang:ar", "العربية"),
                                 ("lang:uk", "Українська")):
                assert value in shown and label in shown
            await post_update(client, update(4, callback="lang:uk"))
            await eventually(lambda: "🌐 Гаразд, я писатиму вам українською." in fake.sent_texts(CHAT))
            assert (await contact_of(rt)).locale == "uk"
            await post_update(client, update(5, "English"))
            await eventually(lambda: "🌐 All right, I will write to you in English." in fake.sent_texts(CHAT))

            # Consent, then a person, out of hours: the handoff's words in English, Paris time in words.
            await post_update(client, update(6, callback="oui"))
            await eventually(lambda: any("Que voulez-vous faire" in t or "What" in t for t in fake.sent_texts(CHAT)))
            await close_the_team_until_tomorrow(rt)
            before = len(fake.sent_texts(CHAT))
            await post_update(client, update(7, "humain"))
            told = await eventually(lambda: [t for t in fake.sent_texts(CHAT)[before:] if "📨" in t])
            assert "📨 Your message has been passed on to" in told[0]
            assert "🌙 The team is closed right now." in told[0]
            assert "⏱️ A person will answer you here tomorrow at 9:00." in told[0]
            assert "Votre message" not in told[0]

            # While a human is on, the language can still change: saved, confirmed, nothing re-asked.
            await post_update(client, update(8, "français"))
            await eventually(lambda: "🌐 D'accord, je vous écris en français." in fake.sent_texts(CHAT))
            assert (await contact_of(rt)).locale == "fr"


async def test_web_chat_language_from_the_page_or_accept_language_and_a_taps_label_in_the_inbox(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        # The browser prefers Ukrainian: a new web chat person is welcomed in Ukrainian words.
        person = await Person.joined(client)
        response = await client.post("/chat/api/messages", json={"client_id": "client-lang-0001", "text": "bonjour"},
                                     headers={**person.headers, "Accept-Language": "uk-UA,uk;q=0.9,en;q=0.5"})
        assert response.status_code == 200
        await rt.drain(timeout=60)
        lines = await person.bot_lines()
        assert (await contact_of(rt)).locale == "uk"
        assert "🌐 Інша мова? Напишіть: Français · English · العربية" in lines[0]["text"]
        assert all(line["locale"] == "uk" for line in lines)

        # The page's own "locale" wins over the header.
        other = await Person.joined(client)
        response = await client.post("/chat/api/messages", json={"client_id": "client-lang-0002", "text": "salut",
                                                                 "locale": "ar"},
                                     headers={**other.headers, "Accept-Language": "en"})
        assert response.status_code == 200
        await rt.drain(timeout=60)
        assert (await contact_of(rt)).locale == "ar"

        # A French person: the hint in French; "langue" opens the chooser; its button switches.
        french = Person(client)
        first = await french.send("bonjour")
        assert "🌐 Autre langue ? Écrivez : English · العربية · Українська" in first[0]["text"]
        consent = first[-1]
        assert consent["choices"] and values(consent)
        chooser = (await french.send("Langue"))[-1]
        assert chooser["text"] == "🌐 Choisissez votre langue :"
        assert chooser["choices"] == [["lang:fr", "Français"], ["lang:en", "English"], ["lang:ar", "العربية"],
                                      ["lang:uk", "Українська"]]
        after = await french.send(choice="lang:en")
        assert after[0]["text"] == "🌐 All right, I will write to you in English." and after[0]["locale"] == "en"
        assert values(after[-1]) == values(consent), "the consent question is asked again"
        # A tap: its label is stored on the inbound message and shown back, never the code.
        yes_label = dict(after[-1]["choices"])["oui"]  # the consent asked again, in English
        await french.send(choice="oui")
        history = await french.history()
        taps = [m for m in history if m["from"] == "me" and m.get("label")]
        assert [m["label"] for m in taps][-2:] == ["English", yes_label]
        async with rt.sessionmaker() as session:
            inbound = (await session.execute(select(Message).where(Message.direction == "in")
                                             .order_by(Message.id.desc()))).scalars().first()
            assert inbound.payload["choice"] == "oui" and inbound.payload["label"] == yes_label
            conversation_id = inbound.conversation_id
        await french.send("humain")

        assert (await login(client, WORKER_EMAIL, PASSWORD)).status_code == 303
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        before = page.split(f"/inbox/conversations/{conversation_id}/older?before=", 1)[1].split('"', 1)[0]
        older = (await client.get(f"/inbox/conversations/{conversation_id}/older?before={before}")).text  # before the handoff
        page += older
        assert f"🔘 <span class=\"choice\" data-choice=\"oui\">{escape(yes_label)}</span>" in page
        assert 'data-choice="lang:en">English</span>' in page
        assert '<span lang="en" dir="ltr">English</span>' in page  # the person's language, on the card
        assert "langue choisie : anglais" in page
        listing = (await client.get("/inbox")).text
        assert 'title="Langue de la personne : anglais"><span aria-hidden="true">🌐</span> <span lang="en" dir="ltr">English</span>' \
            in listing  # the person's card in the lists


async def test_hostile_locales_on_the_web_chat_route_never_fail(settings_for):
    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        person = await Person.joined(client)
        for index, (locale, header) in enumerate([(["en"], "x" * 600), ("x" * 300, "ar;q=abc,*;q=1"),
                                                  (None, ",,;;q=,"), ("ar-\u0000", "\u00e9t\u00e9")]):
            body = {"client_id": f"client-hostile-{index:04d}", "text": "bonjour"}
            if locale is not None:
                body["locale"] = locale
            response = await client.post("/chat/api/messages", json=body,
                                         headers=[*person.headers.items(), ("Accept-Language", header.encode("utf-8"))])
            assert response.status_code == 200, response.text
        await rt.drain(timeout=60)
        assert (await contact_of(rt)).locale in ("fr", "en", "ar", "uk")


def test_the_match_rule_is_the_whole_message():
    assert request_of("English", None) == ("switch", "en")
    assert request_of("  anglais ! ", None) == ("switch", "en")
    assert request_of("العربية", None) == ("switch", "ar")
    assert request_of("Українська", None) == ("switch", "uk")
    assert request_of("FRANCAIS", None) == ("switch", "fr")
    assert request_of("arabe", None) == ("switch", "ar") and request_of("ukrainien", None) == ("switch", "uk")
    for chooser in ("🌐", "langue", "language", "🌐 Langue / Language", "اللغة", "мова"):
        assert request_of(chooser, None) == ("choose", None), chooser
    for other in ("je parle un peu anglais", "menu", "oui", "🙂", "", "English please tell me more", "lang"):
        assert request_of(other, None) is None, other
    assert request_of(None, "lang") == ("choose", None) and request_of(None, "lang:ar") == ("switch", "ar")
    assert request_of(None, "lang:de") is None and request_of(None, "oui") is None


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.text(max_size=70)))
def test_any_text_or_choice_is_a_request_or_nothing(text, choice):
    found = request_of(text, choice)
    assert found is None or found[0] in ("switch", "choose")
