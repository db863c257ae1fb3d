"""Places answers, tappable and readable, through the real routes on the shipped data: on Telegram
each place is a message with words only, "🗺️ Voir sur la carte" as a URL button and a sendVenue
when the place has a real position; on WhatsApp a cta_url button and a location message; a place
without coordinates keeps "adresse à vérifier", an address-search map link and no venue.
SQLite, and PostgreSQL + Redis when configured."""

from __future__ import annotations

import json

import pytest

from directory.finder import find_places
from directory.flow import details_lookup
from directory.render import render_parts
from tests.conftest import app_client, eventually
from tests.directory.conftest import shipped_database_url, shipped_directory  # noqa: F401 (fixtures)
from tests.e2e.test_places_flow import shared_settings  # noqa: F401 (fixture)
from tests.fakes.telegram_api import FakeTelegram, callback_update, text_update

SECRET = "tappable-secret"


async def _post(client, update: dict) -> None:
    response = await client.post("/bots/telegram/webhook", content=json.dumps(update), headers={
        "X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text


async def _ask_places(client, fake, chat: int, need: str, where: str) -> list:
    await _post(client, text_update("/start", chat_id=chat))
    await eventually(lambda: any("Êtes-vous d'accord" in t for t in fake.sent_texts(chat)), timeout=30)
    for choice, seen in (("oui", "Que voulez-vous faire"), ("lieux", "De quoi avez-vous besoin"), (need, "Où êtes-vous")):
        await _post(client, callback_update(choice, chat_id=chat))
        await eventually(lambda seen=seen: any(seen in t for t in fake.sent_texts(chat)), timeout=30)
    await _post(client, text_update(where, chat_id=chat))
    await eventually(lambda: any("Et maintenant" in t for t in fake.sent_texts(chat)), timeout=30)
    await client.app.state.rt.drain(timeout=15)
    return fake.sent(chat)


def _places(calls: list) -> list[tuple]:
    """(place message, its venue or None) in order, from the calls after the heading."""
    found, index = [], 0
    while index < len(calls):
        call = calls[index]
        text = call.params.get("text", "") if call.method == "sendMessage" else ""
        lines = [line for line in text.split("\n\n")[-1].splitlines()]
        if lines and lines[0][:1].isdigit() and ". " in lines[0][:4]:
            venue = calls[index + 1] if index + 1 < len(calls) and calls[index + 1].method == "sendVenue" else None
            found.append((call, venue))
        index += 1
    return found


async def test_places_in_lyon_on_telegram_are_words_buttons_and_venues(shared_settings):  # noqa: F811
    with FakeTelegram() as fake:
        settings = shared_settings.model_copy(update=dict(
            telegram_bot_token=fake.token, telegram_webhook_secret=SECRET, telegram_api_base=fake.base_url))
        async with app_client(settings) as client:
            positioned = _places(await _ask_places(client, fake, 7001, "demarches-et-droits", "Lyon"))
            approximate = _places(await _ask_places(client, fake, 7002, "se-nourrir", "Lyon"))

    assert len(positioned) >= 3
    heading = positioned[0][0].params["text"]
    assert heading.startswith("Voici des lieux pour « Démarches et droits » près de Lyon")
    for message, venue in positioned + approximate:
        text = message.params["text"]
        assert "http" not in text and "🕒 " in text  # words only, the hours said in words
        buttons = message.params["reply_markup"]["inline_keyboard"]
        assert buttons[0][0]["text"] == "🗺️ Voir sur la carte" and buttons[0][0]["url"].startswith("https://www.openstreetmap.org/")
        assert "tel:" not in json.dumps(buttons)
    # phone numbers as digits in the text, which Telegram makes tappable (tel: is no URL button there)
    assert any("☎️ +33 " in m.params["text"] for m, _ in positioned + approximate)
    with_venue = [(m, v) for m, v in positioned if v is not None]
    assert with_venue, "places with a real position are sent as venues"
    for message, venue in with_venue:
        name = message.params["text"].split("\n\n")[-1].splitlines()[0].split(". ", 1)[1].split(" — ")[0]
        assert venue.params["title"] == name[:100] and -90 <= venue.params["latitude"] <= 90
        assert "mlat=" in message.params["reply_markup"]["inline_keyboard"][0][0]["url"]
    for message, venue in approximate:
        if "(adresse à vérifier)" in message.params["text"]:
            assert venue is None  # no coordinates: no venue, and the map searches the address
            assert "/search?query=" in message.params["reply_markup"]["inline_keyboard"][0][0]["url"]
    assert any("(adresse à vérifier)" in m.params["text"] for m, _ in approximate)


async def test_places_in_lyon_on_whatsapp_are_a_cta_url_and_a_location(shared_settings):  # noqa: F811
    from tests.e2e.whatsapp_helpers import PERSON, button, text, whatsapp_settings
    from tests.fakes.graph_api import FakeGraphApi, sign

    async with FakeGraphApi() as graph:
        settings = whatsapp_settings(lambda **o: shared_settings.model_copy(update=o), graph)
        async with app_client(settings) as client:
            async def post(body):
                raw = json.dumps(body).encode()
                response = await client.post("/bots/whatsapp/webhook", content=raw, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": sign(raw, "test-app-secret")})
                assert response.status_code == 200, response.text

            def said(words):
                return any(words in json.dumps(b, ensure_ascii=False) for b in graph.requests_for(PERSON))

            await post(text("1", "bonjour"))
            await eventually(lambda: said("Êtes-vous d'accord"), timeout=30)
            for n, (choice, seen) in enumerate((("oui", "Que voulez-vous faire"), ("lieux", "De quoi avez-vous besoin"),
                                                ("demarches-et-droits", "Où êtes-vous")), start=2):
                await post(button(str(n), choice))
                await eventually(lambda seen=seen: said(seen), timeout=30)
            await post(text("9", "Lyon"))
            await eventually(lambda: said("Et maintenant"), timeout=30)
            await client.app.state.rt.drain(timeout=15)
            bodies = graph.requests_for(PERSON)

    places = [(i, b) for i, b in enumerate(bodies) if b["type"] == "interactive" and b["interactive"]["type"] == "cta_url"]
    assert len(places) >= 3
    first = places[0][1]["interactive"]
    assert first["body"]["text"].startswith("Voici des lieux pour « Démarches et droits » près de Lyon")
    assert first["action"]["parameters"]["display_text"] == "🗺️ Voir sur la carte"
    assert all("http" not in b["interactive"]["body"]["text"] for _, b in places)
    locations = [bodies[i + 1] for i, _ in places if i + 1 < len(bodies) and bodies[i + 1]["type"] == "location"]
    assert locations and all({"latitude", "longitude", "name", "address"} <= set(b["location"]) for b in locations)


@pytest.mark.parametrize("locale, heading, map_title, hours_word", [
    ("fr", "Voici des lieux pour « Démarches et droits » près de Rezé", "🗺️ Voir sur la carte", "🕒 "),
    ("en", "Here are places for “Paperwork and rights” near Rezé", "🗺️ See on the map", "🕒 "),
    ("ar", "إليك أماكن لـ «الإجراءات والحقوق» قرب Rezé", "🗺️ عرض على الخريطة", "🕒 "),
    ("uk", "Ось місця для «Документи і права» біля Rezé", "🗺️ Дивитися на мапі", "🕒 "),
])
def test_a_places_answer_in_each_language(shipped_directory, locale, heading, map_title, hours_word):  # noqa: F811
    from datetime import datetime

    from directory.hours import PARIS

    monday = datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)
    answer = find_places(shipped_directory, "44400", "demarches-et-droits", now=monday)
    parts = render_parts(answer, locale, now=monday, lookup=details_lookup(shipped_directory))
    assert parts[0].text.startswith(heading)
    for part in parts[:len(answer.places)]:
        assert part.links[0].title == map_title and hours_word in part.text and "http" not in part.text
        assert all(link.url.startswith(("https://", "tel:+")) for link in part.links)
    calls = [link for part in parts for link in part.links if link.url.startswith("tel:")]
    assert calls and all(link.url.startswith("tel:+33") and len(link.url) == 16 for link in calls)
    assert sum(part.venue is not None for part in parts) >= 1
    if locale == "en":
        assert any("open until" in part.text or "closed" in part.text or "not known" in part.text for part in parts)


def test_emergency_numbers_are_tel_links(shipped_directory):  # noqa: F811
    answer = find_places(shipped_directory, "44400", "dormir-ce-soir")
    first = render_parts(answer, "fr")[0]
    assert first.text.startswith("🆘") and "115 — hébergement d'urgence" in first.text
    assert first.links[0].url == "tel:115" and first.links[0].title == "📞 Appeler le 115"
    assert all(link.url.startswith("tel:") for link in first.links) and "tel:114" not in [l.url for l in first.links]
