"""Links as words, venues and old buttons on each channel, against the loopback fakes (no mocks):
Telegram URL buttons (never tel:), sendVenue, a press edited away or answered "question passée";
WhatsApp cta_url, several links as words, location messages; French numbers as tel:+33…."""

from __future__ import annotations

import json

import httpx
import pytest
import pytest_asyncio
from hypothesis import given, settings, strategies as st

from bots.base import Choice, DeliveryError, Link, OutboundMessage, Venue, link_lines
from bots.phones import display, e164, tel_url
from bots.telegram import TelegramChannel
from bots.whatsapp import WhatsAppChannel
from tests.fakes.graph_api import FakeGraphApi
from tests.fakes.telegram_api import CHAT_ID, TOKEN, FakeTelegram, callback_update

on_module_loop = pytest.mark.asyncio(loop_scope="module")
PERSON = "33639980001"
MAP = Link("🗺️ Voir sur la carte", "https://www.openstreetmap.org/?mlat=45.76000&mlon=4.83000#map=17/45.76000/4.83000")
CALL = Link("📞 Appeler", "tel:+33478123456")
SITE = Link("🌐 Site", "https://example.org/lieu")
VENUE = Venue(45.76, 4.83, "Restos du Cœur de Lyon", "12 rue de la Paix, 69002 Lyon")
PLACE = "1. Restos du Cœur de Lyon — à 350 m\n📍 12 rue de la Paix, 69002 Lyon\n🕒 ouvert jusqu'à 17 h\n☎️ +33 4 78 12 34 56"


# -- phone numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("written, url, shown", [
    ("04 78 12 34 56", "tel:+33478123456", "+33 4 78 12 34 56"),
    ("+33 (0)4 78 12 34 56", "tel:+33478123456", "+33 4 78 12 34 56"),
    ("0033 6 12 34 56 78", "tel:+33612345678", "+33 6 12 34 56 78"),
    ("06.12.34.56.78", "tel:+33612345678", "+33 6 12 34 56 78"),
    ("0 800 23 13 13", "tel:+33800231313", "+33 8 00 23 13 13"),
    ("0692 12 34 56", "tel:+262692123456", "+262 692 12 34 56"),  # La Réunion
    ("115", "tel:115", "115"),
    ("39 89", "tel:3989", "3989"),
])
def test_french_numbers_become_tel_links(written, url, shown):
    assert tel_url(written) == url and display(url) == shown


@pytest.mark.parametrize("junk", ["", "  ", "appelez-nous", "04 78", "+33 4", "04 78 12 34 56 ou 06 12 34 56 78",
                                  "0" * 80, "+0033", "00 00 00 00 00"])
def test_what_is_not_a_number_gives_no_link(junk):
    assert tel_url(junk) is None


@given(st.text(max_size=80))
def test_any_text_gives_a_callable_number_or_nothing(text):
    found = e164(text)
    assert found is None or (found.startswith("+") and found[1:].isdigit() and 9 <= len(found) <= 16) \
        or (found.isdigit() and 2 <= len(found) <= 6)
    if found:
        assert display(f"tel:{found}").replace(" ", "").lstrip("+") == found.lstrip("+")


def test_a_number_already_in_the_text_is_not_repeated():
    message = OutboundMessage(PLACE, links=(MAP, CALL, Link("📞 Appeler le 115", "tel:115")))
    text = link_lines(message, (CALL, Link("📞 Appeler le 115", "tel:115")))
    assert text.count("78 12 34 56") == 1 and text.endswith("📞 Appeler le 115 : 115")


# -- Telegram ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tg():
    with FakeTelegram() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def telegram(tg):
    channel = TelegramChannel(TOKEN, webhook_secret="s", api_base=tg.base_url, request_timeout=5)
    yield channel
    await channel.close()


@pytest.fixture
def fake(tg):
    tg.reset()
    return tg


@on_module_loop
class TestTelegram:
    async def test_links_are_url_buttons_above_the_choices_and_tel_stays_in_the_text(self, telegram, fake):
        message = OutboundMessage(PLACE, choices=(Choice("plus", "➕ Voir plus"),), links=(MAP, CALL, SITE))
        await telegram.send(str(CHAT_ID), message)
        [call] = fake.sent_messages(CHAT_ID)
        assert call.params["reply_markup"]["inline_keyboard"] == [
            [{"text": "🗺️ Voir sur la carte", "url": MAP.url}], [{"text": "🌐 Site", "url": SITE.url}],
            [{"text": "➕ Voir plus", "callback_data": "plus"}]]
        assert "tel:" not in json.dumps(call.params) and "+33 4 78 12 34 56" in call.params["text"]
        assert "https://" not in call.params["text"]  # words, not URLs

    async def test_the_fake_refuses_a_tel_url_button_as_telegram_does(self, fake):
        markup = {"inline_keyboard": [[{"text": "📞 Appeler", "url": "tel:+33478123456"}]]}
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{fake.base_url}/bot{TOKEN}/sendMessage",
                                       json={"chat_id": CHAT_ID, "text": "x", "reply_markup": markup})
        assert answer.status_code == 400 and "Unsupported URL protocol" in answer.json()["description"]

    async def test_a_venue_follows_the_text(self, telegram, fake):
        result = await telegram.send(str(CHAT_ID), OutboundMessage(PLACE, links=(MAP,), venue=VENUE))
        calls = [c.method for c in fake.sent(CHAT_ID)]
        assert calls == ["sendMessage", "sendVenue"]
        [venue] = fake.sent_venues(CHAT_ID)
        assert (venue.params["latitude"], venue.params["longitude"], venue.params["title"]) == (45.76, 4.83, VENUE.title)
        assert result.platform_message_id == str(fake.sent_messages(CHAT_ID)[0].result["message_id"])  # the text's id

    async def test_a_venue_alone_is_one_send_venue(self, telegram, fake):
        assert TelegramChannel.venue_apart is True  # the outbox sends it as its own part
        await telegram.send(str(CHAT_ID), OutboundMessage("", venue=VENUE))
        assert [c.method for c in fake.sent(CHAT_ID)] == ["sendVenue"]

    async def test_a_venue_off_the_globe_is_refused_not_retried(self, telegram, fake):
        with pytest.raises(DeliveryError) as error:
            await telegram.send(str(CHAT_ID), OutboundMessage("", venue=Venue(95.0, 4.8, "x", "y")))
        assert not error.value.retryable

    async def test_a_press_shows_the_choice_back_and_the_buttons_go(self, telegram, fake):
        sent = await telegram.send(str(CHAT_ID), OutboundMessage("Vous êtes :", choices=(
            Choice("tenant", "🏠 Locataire"), Choice("owner", "🔑 Propriétaire"))))
        question = fake.message(CHAT_ID, int(sent.platform_message_id))
        [press] = telegram.parse(json.dumps(callback_update("tenant", message=question)).encode())
        assert press.choice == "tenant" and press.reply_to == sent.platform_message_id
        assert await telegram.settle_press(press.callback_id, accepted=True)
        edited = fake.message(CHAT_ID, int(sent.platform_message_id))
        assert edited["text"] == "Vous êtes :\n\n✔️ 🏠 Locataire" and "reply_markup" not in edited
        assert not await telegram.settle_press(press.callback_id, accepted=True)  # once

    async def test_an_old_press_loses_its_keyboard_and_is_told_the_question_passed(self, telegram, fake):
        sent = await telegram.send(str(CHAT_ID), OutboundMessage("Vous êtes :", choices=(Choice("a", "A"),)))
        question = fake.message(CHAT_ID, int(sent.platform_message_id))
        [press] = telegram.parse(json.dumps(callback_update("a", message=question, language_code="uk")).encode())
        assert await telegram.settle_press(press.callback_id, accepted=False)
        assert "reply_markup" not in fake.message(CHAT_ID, int(sent.platform_message_id))
        assert fake.message(CHAT_ID, int(sent.platform_message_id))["text"] == "Vous êtes :"
        reply = TelegramChannel.callback_answer_reply(press.callback_id, stale=True, locale=press.locale)
        assert reply == {"method": "answerCallbackQuery", "callback_query_id": press.callback_id,
                         "text": "⏳ Це питання вже минуло."}
        assert TelegramChannel.callback_answer_reply("q")["callback_query_id"] == "q" and \
            "text" not in TelegramChannel.callback_answer_reply("q")
        await telegram.answer_callback(press.callback_id, stale=True, locale="fr")
        [answer] = fake.calls("answerCallbackQuery")
        assert answer.params["text"] == "⏳ Cette question est passée." and answer.status == 200

    async def test_a_press_on_a_message_telegram_cannot_edit_is_ignored(self, telegram, fake):
        [press] = telegram.parse(json.dumps(callback_update("a", message_id=999_999, message={
            "message_id": 999_999, "date": 1, "chat": {"id": CHAT_ID, "type": "private"}, "text": "…",
            "reply_markup": {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}})).encode())
        assert await telegram.settle_press(press.callback_id, accepted=None) is False  # "message to edit not found"
        assert [c.status for c in fake.calls("editMessageReplyMarkup")] == [400]


# -- WhatsApp ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_server():
    with FakeGraphApi(access_token="test-access-token") as fake:
        yield fake


@pytest.fixture
async def graph(graph_server):
    graph_server.reset()
    yield graph_server


@pytest.fixture
async def whatsapp(graph_server):
    channel = WhatsAppChannel(app_secret="x", verify_token="v", access_token="test-access-token",
                              graph_base=graph_server.base_url, phone_number_id=FakeGraphApi.PHONE_NUMBER_ID,
                              messages_per_second=1000)
    yield channel
    await channel.close()


async def test_one_link_is_a_cta_url_button(whatsapp, graph):
    await whatsapp.send(PERSON, OutboundMessage(PLACE, links=(MAP, CALL)))
    [body] = graph.requests_for(PERSON)
    assert body["type"] == "interactive" and body["interactive"]["type"] == "cta_url"
    assert body["interactive"]["action"] == {"name": "cta_url", "parameters": {
        "display_text": "🗺️ Voir sur la carte", "url": MAP.url}}
    assert "+33 4 78 12 34 56" in body["interactive"]["body"]["text"]  # the number, tappable in WhatsApp
    assert "tel:" not in json.dumps(body) and "https://" not in body["interactive"]["body"]["text"]


async def test_a_long_link_title_is_cut_to_20_characters(whatsapp, graph):
    await whatsapp.send(PERSON, OutboundMessage("Un texte.", links=(Link("👉 Faire la demande en ligne maintenant", SITE.url),)))
    [body] = graph.requests_for(PERSON)
    assert len(body["interactive"]["action"]["parameters"]["display_text"]) <= 20


async def test_several_links_become_words_each_link_on_its_own_line(whatsapp, graph):
    await whatsapp.send(PERSON, OutboundMessage(PLACE, links=(MAP, SITE)))
    [body] = graph.requests_for(PERSON)
    assert body["type"] == "text"
    lines = body["text"]["body"].splitlines()
    assert f"🗺️ Voir sur la carte : {MAP.url}" in lines and f"🌐 Site : {SITE.url}" in lines


async def test_links_beside_buttons_go_in_the_text(whatsapp, graph):
    await whatsapp.send(PERSON, OutboundMessage("Et maintenant ?", choices=(Choice("a", "A"), Choice("b", "B")),
                                                links=(SITE,)))
    [body] = graph.requests_for(PERSON)
    assert body["interactive"]["type"] == "button" and SITE.url in body["interactive"]["body"]["text"]


async def test_a_venue_is_a_location_message_after_the_text(whatsapp, graph):
    assert WhatsAppChannel.venue_apart is True
    await whatsapp.send(PERSON, OutboundMessage(PLACE, links=(MAP,), venue=VENUE))
    first, second = graph.requests_for(PERSON)
    assert first["interactive"]["type"] == "cta_url"
    assert second == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": PERSON,
                      "type": "location", "location": {"latitude": 45.76, "longitude": 4.83,
                                                       "name": VENUE.title, "address": VENUE.address}}
    await whatsapp.send(PERSON, OutboundMessage("", venue=VENUE))  # the outbox's second part
    assert graph.requests_for(PERSON)[-1]["type"] == "location" and len(graph.requests_for(PERSON)) == 3


@pytest.mark.parametrize("payload, reason", [
    ({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "x"}, "action": {
        "name": "cta_url", "parameters": {"display_text": "x" * 21, "url": "https://a.b"}}}}, "display_text"),
    ({"type": "interactive", "interactive": {"type": "cta_url", "body": {"text": "x"}, "action": {
        "name": "cta_url", "parameters": {"display_text": "Appeler", "url": "tel:+33478123456"}}}}, "http(s) url"),
    ({"type": "location", "location": {"latitude": 91, "longitude": 2}}, "latitude"),
    ({"type": "location", "location": {"latitude": "45", "longitude": 2}}, "latitude"),
])
async def test_the_fake_refuses_malformed_links_and_locations_as_meta_does(graph, payload, reason):
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{graph.base_url}/{FakeGraphApi.PHONE_NUMBER_ID}/messages",
                                   headers={"Authorization": "Bearer test-access-token"},
                                   json={"messaging_product": "whatsapp", "to": PERSON, **payload})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == 131009
    assert reason in answer.json()["error"]["message"]


def test_a_button_reply_names_the_message_it_answers():
    channel = WhatsAppChannel(app_secret="x", verify_token="v", access_token="t", phone_number_id="1")
    from pathlib import Path

    body = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp" /
                       "interactive_button_reply.json").read_text())
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["context"] = {"from": "15550000000", "id": "wamid.QUESTION"}
    [reply], _ = channel.parse(json.dumps(body))
    assert reply.reply_to == "wamid.QUESTION"


_TELEGRAM_PARSER = TelegramChannel(TOKEN, webhook_secret="s")  # parse makes no HTTP call
_WHATSAPP_PARSER = WhatsAppChannel(app_secret="x", verify_token="v", access_token="t", phone_number_id="1")
_json = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=12)


@settings(deadline=None, max_examples=100)
@given(message=st.one_of(_json, st.fixed_dictionaries({
    "message_id": st.integers(-5, 2**64), "date": st.integers(0, 2**31), "chat": st.fixed_dictionaries(
        {"id": st.integers(-2**63, 2**63), "type": st.sampled_from(["private", "group"])}),
    "text": st.text(max_size=50),
    "reply_markup": st.one_of(_json, st.fixed_dictionaries({"inline_keyboard": st.lists(st.lists(
        st.fixed_dictionaries({"text": st.text(max_size=10), "callback_data": st.text(max_size=10)}), max_size=3),
        max_size=3)}))})),
    data=st.text(max_size=70))
def test_a_hostile_callback_query_is_parsed_or_refused_never_crashes(message, data):
    from bots.base import BadPayload

    channel = _TELEGRAM_PARSER
    channel._presses.clear()
    body = callback_update("x", message=message if isinstance(message, dict) else None)
    body["callback_query"]["data"] = data
    if not isinstance(message, dict):
        body["callback_query"]["message"] = message
    try:
        found = channel.parse(json.dumps(body).encode())
    except BadPayload:
        return
    from bots.base import clean_text

    assert all(m.choice == clean_text(data) and (m.reply_to is None or m.reply_to.lstrip("-").isdigit()) for m in found)
    assert len(channel._presses) <= 1


@settings(deadline=None, max_examples=100)
@given(context=_json)
def test_a_hostile_reply_context_on_whatsapp_never_crashes(context):
    from pathlib import Path

    from bots.base import BadPayload

    channel = _WHATSAPP_PARSER
    body = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "whatsapp" /
                       "interactive_button_reply.json").read_text())
    body["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = context
    try:
        messages, _ = channel.parse(json.dumps(body))
    except BadPayload:
        return
    assert all(m.reply_to is None or isinstance(m.reply_to, str) for m in messages)
