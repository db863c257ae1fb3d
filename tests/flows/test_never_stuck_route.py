"""Never stuck, through the web chat JSON route (SQLite, and PostgreSQL + Redis when configured):
"je sais pas" twice at the age question offers a person and the menu; a long story, or words of
danger, typed at that question offer a person at once, without the re-ask."""

from __future__ import annotations

from sqlalchemy import select

from conversations.models import Event
from tests.conftest import app_client
from tests.webchat import Person


async def at_the_age_question(client) -> Person:
    person = Person(client)
    await person.send("/start")
    await person.send(choice="oui")
    await person.send(choice="droits")
    assert "Quel âge avez-vous" in (await person.last())["text"]
    return person


async def test_two_misunderstood_answers_offer_a_person_and_the_menu(settings_for):
    async with app_client(settings_for()) as client:
        person = await at_the_age_question(client)
        await person.send("je sais pas")
        first = await person.last()
        assert first["text"].startswith("🤔 Écrivez votre âge") and not first["choices"]
        await person.send("je sais pas")
        second = await person.last()
        assert second["text"].startswith("🤔 Écrivez votre âge") and "une personne de l'équipe" in second["text"]
        assert second["choices"] == [["@human", "🙋 Parler à quelqu'un"], ["@menu", "↩️ Menu"]]
        await person.send(choice="@human")
        assert "Camille" in (await person.last())["text"]  # a named worker


async def test_the_menu_way_out_and_trente_ans_at_the_same_question(settings_for):
    async with app_client(settings_for()) as client:
        person = await at_the_age_question(client)
        await person.send("je sais pas")
        await person.send("bof")
        await person.send("trente ans")  # still understood, in words
        assert "seul ou en couple" in (await person.last())["text"]
        other = await at_the_age_question(client)
        await other.send("je sais pas")
        await other.send("je sais pas")
        await other.send("↩️ Menu")  # the way out's label typed
        assert (await other.last())["text"] == "Que voulez-vous faire ? 👇"


async def test_a_long_story_at_a_question_offers_a_person_at_once(settings_for):
    """The story of the issue: 5,480 characters typed at the age question (the web chat takes up to
    16,000; WhatsApp up to its own 65,536; Telegram's clients split at 4,096)."""
    story = ("Bonjour, la CAF a arrêté mon aide pour le loyer il y a trois mois et je ne comprends pas "
             "pourquoi, j'ai envoyé les papiers deux fois. ") * 60
    async with app_client(settings_for()) as client:
        person = await at_the_age_question(client)
        before = len(await person.bot_lines())
        await person.send(story[:5480])
        lines = (await person.bot_lines())[before:]
        assert len(lines) == 1
        assert "Écrivez votre âge" not in lines[0]["text"] and "une personne de l'équipe peut le lire" in lines[0]["text"]
        assert [c[0] for c in lines[0]["choices"]] == ["@human", "@menu"]
        await person.send(choice="@human")
        assert "Camille" in (await person.last())["text"]
        async with client.app.state.rt.sessionmaker() as session:
            events = [tuple(r) for r in (await session.execute(select(Event.type, Event.data))).all()]
        assert ("distress_noticed", {"kind": "long"}) in events
        assert ("handoff_requested", {"reason": "stuck"}) in events
        refused = await client.post("/chat/api/messages", json={"client_id": "story-long", "text": story * 3},
                                    headers=person.headers)
        assert refused.status_code == 400 and "16000" in refused.text


async def test_distress_at_a_question_gives_the_numbers_through_the_route(settings_for):
    async with app_client(settings_for()) as client:
        person = await at_the_age_question(client)
        await person.send("il me frappe")
        last = await person.last()
        assert "3919" in last["text"] and "17" in last["text"]
        assert [c[0] for c in last["choices"]] == ["@human", "@menu"]


async def test_common_phrasings_through_the_route(settings_for):
    async with app_client(settings_for()) as client:
        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")
        await person.send("j'ai faim")  # the places flow, the need answered: where?
        assert (await person.last())["text"].startswith("📍 Où êtes-vous")
        await person.send("je dors dehors")  # at the place question: a person offered, the 115 said
        last = await person.last()
        assert "115" in last["text"] and [c[0] for c in last["choices"]] == ["@human", "@menu"]
        await person.send(choice="@menu")
        await person.send("loyer impayé")  # at the menu question: a person
        assert "Camille" in (await person.last())["text"]
