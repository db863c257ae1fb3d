"""GET /chat in the person's language (the contact's, else Accept-Language, else French) with its
words for the script; /chat/api/history shows a tap with its words and a message's links, place
and language, through the real routes."""

from __future__ import annotations

import html as html_module
import json
import re

from hypothesis import given, settings as hypothesis_settings, strategies as st
from sqlalchemy import select, update

from conversations.models import OUTBOUND, Address, Contact, Message
from tests.conftest import LiveServer, app_client
from tests.webchat import Person


def page_words(html: str) -> dict:
    found = re.search(r"data-words='([^']*)'", html)
    assert found, "no words in the page"
    return json.loads(html_module.unescape(found.group(1)))


async def test_the_page_opens_in_the_browser_language_then_the_contacts(settings_for):
    async with app_client(settings_for()) as client:
        french = await client.get("/chat")
        assert french.status_code == 200 and '<html lang="fr" dir="ltr">' in french.text
        assert "Aller au tchat" in french.text and page_words(french.text)["words"]["speaker.bot"] == "Allervers dit :"
        arabic = await client.get("/chat", headers={"Accept-Language": "ar-MA,ar;q=0.9,fr;q=0.5"})
        assert '<html lang="ar" dir="rtl">' in arabic.text and "اكتب هنا…" in arabic.text
        assert page_words(arabic.text) == {"locale": "ar", "dir": "rtl", "words": page_words(arabic.text)["words"]}
        assert page_words(arabic.text)["words"]["speaker.worker"] == "رسالة من {name}:"
        ukrainian = await client.get("/chat", headers={"Accept-Language": "uk-UA"})
        assert '<html lang="uk" dir="ltr">' in ukrainian.text and "Перейти до чату" in ukrainian.text
        # No word of the page is left in its script.
        script = (await client.get("/static/webchat.js")).text
        assert not re.search(r"[\"'](?:[^\"'\n]*[àâéèêôûç][^\"'\n]*)[\"']", script), "French words in webchat.js"

        # A known person: the language kept on the contact wins over the browser's.
        person = await Person.joined(client)
        await person.send("/start")
        async with client.app.state.rt.sessionmaker() as session:
            contact_id = (await session.execute(select(Address.contact_id).where(
                Address.external_id == person.uid))).scalar_one()
            await session.execute(update(Contact).where(Contact.id == contact_id).values(locale="en"))
            await session.commit()
        known = await client.get("/chat", headers={**person.headers, "Accept-Language": "ar"})
        assert '<html lang="en" dir="ltr">' in known.text and "Go to the chat" in known.text


def test_hostile_headers_never_break_the_page(settings_for):
    """Accept-Language and the identity cookie of any bytes: the page, in a supported language."""
    import httpx

    with LiveServer(settings_for()) as live, httpx.Client(base_url=live.url) as client:
        @hypothesis_settings(max_examples=150, deadline=None)
        @given(header=st.binary(max_size=300).map(lambda b: b.strip(b" \t"))
               .filter(lambda b: all(c >= 0x20 and c != 0x7f for c in b)),  # what HTTP carries
               cookie=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=";,\\\""),
                              max_size=70))
        def hostile(header, cookie):
            response = client.get("/chat", headers={b"Accept-Language": header,
                                                    b"Cookie": f"allervers_chat={cookie}".encode()})
            assert response.status_code == 200
            assert page_words(response.text)["locale"] in ("fr", "en", "ar", "uk")

        hostile()


async def test_the_history_shows_taps_with_their_words_and_links_as_words(settings_for):
    async with app_client(settings_for()) as client:
        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")  # the consent question's "✅ D'accord"
        mine = [m for m in await person.history() if m["from"] == "me"]
        assert [m["text"] for m in mine] == ["/start", "✅ D'accord"]  # the words, not the code "oui"

        # What the outbox stores for a message with links, a place and its language (bots.base's contract).
        async with client.app.state.rt.sessionmaker() as session:
            last = (await session.execute(select(Message).where(Message.direction == OUTBOUND)
                                          .order_by(Message.id.desc()).limit(1))).scalar_one()
            session.add(Message(conversation_id=last.conversation_id, contact_id=last.contact_id, channel="webchat",
                                direction=OUTBOUND, kind="text", text="أقرب مكان", status="sent", attempts=1,
                                platform_message_id="stored-venue", created_at=last.created_at,
                                payload={"locale": "ar", "links": [["📞 115", "tel:115"], ["x", "javascript:alert(1)"]],
                                         "venue": {"latitude": 48.85, "longitude": 2.35, "title": "Mairie",
                                                   "address": "Place de l'Hôtel de Ville"}}))
            await session.commit()
        shown = (await person.history())[-1]
        assert shown["id"] == "stored-venue" and shown["locale"] == "ar" and shown["dir"] == "rtl"
        assert shown["links"] == [["📞 115", "tel:115"]]
        assert shown["venue"]["url"].startswith("https://www.openstreetmap.org/?mlat=48.850000&mlon=2.350000")
