"""Commands that work in every state, free text, consent, stop and erase — through the web chat API."""

from __future__ import annotations

from sqlalchemy import func, select, text

from allervers.models import metadata
from conversations.models import Contact, Conversation, Message
from tests.conftest import app_client, login
from tests.webchat import Person

async def consented(client) -> Person:
    person = Person(client)
    await person.send("/start")
    await person.send(choice="oui")
    return person


async def test_welcome_asks_consent_then_menu(settings_for):
    async with app_client(settings_for()) as client:
        person = Person(client)
        await person.send("bonjour")
        lines = await person.bot_lines()
        assert "Bonjour" in lines[0]["text"] and "jours au plus" in lines[1]["text"]
        assert [c[0] for c in lines[1]["choices"]] == ["oui", "non"]
        await person.send(choice="oui")
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"


async def test_free_text_outside_a_question_is_matched_or_explained(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("blablabla xyz")  # at the menu question: re-asked with what the bot can do
        last = await person.last()
        assert "Je n'ai pas bien compris" in last["text"] and "vos droits" in last["text"] and last["choices"]
        ended = Person(client)
        await ended.send("/start")
        await ended.send(choice="non")
        await ended.send(choice="non")  # "no thanks": the flow ends, no question pending
        await ended.send("blablabla xyz")
        lines = await ended.bot_lines()
        assert "Je n'ai pas bien compris" in lines[-2]["text"]
        assert lines[-1]["text"] == "Que voulez-vous faire ? 👇"
        await ended.send("je voudrais parler à un conseiller")
        assert "Camille" in (await ended.last())["text"]
        await person.send("Je veux parler a quelqun svp")  # no accents, typos
        assert "Camille" in (await person.last())["text"]


async def test_menu_and_human_work_in_the_middle_of_a_question(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send(choice="parler")  # talk flow: topic question pending
        await person.send("MENU")
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"
        await person.send("/start")
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"
        await person.send("humain")
        assert "Camille" in (await person.last())["text"]


async def test_stop_is_said_once_and_honoured(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("stop")
        lines = await person.bot_lines()
        assert "vous ne recevrez plus de message" in lines[-1]["text"]
        count = len(lines)
        await person.send("bonjour ?")
        await person.send("stop")
        await person.send(choice="parler")
        assert len(await person.bot_lines()) == count  # silent
        await person.send("menu")  # the person restarts
        assert (await person.last())["text"] == "Que voulez-vous faire ? 👇"


async def test_stop_works_while_a_worker_is_on(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send("humain")
        await person.send("stop")
        async with client.app.state.rt.sessionmaker() as session:
            status = (await session.execute(select(Conversation.status))).scalars().all()
        assert status == ["closed"]
        assert "vous ne recevrez plus" in (await person.last())["text"]
        # The worker reads why, in their words (not the code the app stored)
        settings = client.app.state.rt.settings
        await login(client, settings.demo_admin_email, settings.demo_worker_password)
        async with client.app.state.rt.sessionmaker() as session:
            conversation_id = (await session.execute(select(Conversation.id))).scalar_one()
        page = (await client.get(f"/inbox/conversations/{conversation_id}")).text
        assert "Terminée : La personne a écrit « stop »" in page
        assert "stopped by the person" not in page


async def test_refusing_consent_still_allows_a_human_and_keeps_nothing_after(settings_for):
    async with app_client(settings_for()) as client:
        person = Person(client)
        await person.send("/start")
        await person.send(choice="non")
        assert "vous pouvez quand même parler" in (await person.last())["text"].lower()
        await person.send(choice="parler")
        await person.send(choice="logement")
        assert "Camille" in (await person.last())["text"]
        async with client.app.state.rt.sessionmaker() as session:
            contact = (await session.execute(select(Contact))).scalar()
            assert contact.consent is False


async def test_erase_after_confirmation_leaves_nothing_of_the_person(settings_for):
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send(choice="parler")
        await person.send(choice="sante")
        other = await consented(client)  # somebody else, who must stay
        await person.send("supprimer mes données")
        assert [c[0] for c in (await person.last())["choices"]] == ["erase_yes", "erase_no"]
        await person.send(choice="erase_no")
        assert "rien n'est supprimé" in (await person.last())["text"]
        await person.send("supprimer mes donnees")
        await person.post(choice="erase_yes")
        rt = client.app.state.rt
        await rt.drain()
        async with rt.sessionmaker() as session:
            for table in metadata.sorted_tables:
                columns = {c.name for c in table.columns}
                if table.name in ("organisations", "teams", "territories", "workers") or \
                        table.name.startswith(("places", "structures", "services", "communes")):
                    continue
                for column in ("external_id", "text"):
                    if column in columns:
                        for value in (person.uid, person.token):  # the external id; the cookie is never stored
                            found = (await session.execute(text(
                                f"SELECT count(*) FROM {table.name} WHERE {column} LIKE :uid"),
                                {"uid": f"%{value}%"})).scalar()
                            assert found == 0, f"{table.name}.{column} still holds the person"
            contacts = (await session.execute(select(func.count()).select_from(Contact))).scalar()
            assert contacts == 1  # only the other person
            messages = (await session.execute(select(func.count()).select_from(Message))).scalar()
            assert messages > 0
        # The identity went with the person: their cookie opens nothing (the page asks for a new one).
        assert (await client.get("/chat/api/history", headers=person.headers)).status_code == 401
        assert (await other.last())["text"] == "Que voulez-vous faire ? 👇"


async def test_web_chat_bad_input_gets_clear_errors_and_changes_nothing(settings_for):
    async with app_client(settings_for()) as client:
        person = await Person.joined(client)
        bad = [
            (b"{not json", 400), (b"[]", 400),
            (b'{"client_id": "short", "text": "x"}', 400),
            (b'{"client_id": "abcdefgh\\u0000", "text": "x"}', 400),
            (('{"client_id": "abcdefgh", "text": "%s"}' % ("x" * 16_001)).encode(), 400),
            (b'{"client_id": "abcdefgh"}', 400),
            (b'{"client_id": "abcdefgh", "location": [200, 0]}', 400),
        ]
        for body, status in bad:
            response = await client.post("/chat/api/messages", content=body,
                                         headers={"Content-Type": "application/json", **person.headers})
            assert response.status_code == status
            assert "error" in response.json()
        # Without the identity cookie, or with one the server never issued: refused, whatever the body says.
        for headers in ({}, {"Cookie": "allervers_chat=" + "x" * 43}):
            response = await client.post("/chat/api/messages", headers={"Content-Type": "application/json", **headers},
                                         content=b'{"uid": "uuuuuuuuuuuuuuuu", "client_id": "abcdefgh", "text": "x"}')
            assert response.status_code == 401 and "identity" in response.json()["detail"]
        async with client.app.state.rt.sessionmaker() as session:
            assert (await session.execute(select(func.count()).select_from(Message))).scalar() == 0


async def test_retried_messages_are_not_duplicated(settings_for):
    async with app_client(settings_for()) as client:
        person = await Person.joined(client)
        body = {"client_id": "same-client-id", "text": "/start"}
        first = await client.post("/chat/api/messages", json=body, headers=person.headers)
        second = await client.post("/chat/api/messages", json=body, headers=person.headers)
        await client.app.state.rt.drain()
        assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
        async with client.app.state.rt.sessionmaker() as session:
            inbound = (await session.execute(select(func.count()).select_from(Message)
                                             .where(Message.direction == "in"))).scalar()
            outbound = (await session.execute(select(func.count()).select_from(Message)
                                              .where(Message.direction == "out"))).scalar()
        assert inbound == 1 and outbound == 2


async def test_message_bodies_never_reach_the_logs(settings_for, caplog):
    import logging

    caplog.set_level(logging.INFO)  # the level `allervers serve` logs at (DEBUG of drivers shows SQL parameters)
    secret = "Mon numéro est 0639981234 et j'habite 12 rue Secrète"
    async with app_client(settings_for()) as client:
        person = await consented(client)
        await person.send(secret)
        await person.send("humain")
        await person.send(secret + " bis")
        await client.post("/chat/api/messages", content=b'{"client_id": "x", "text": "' + secret.encode() + b'"}',
                          headers={"Content-Type": "application/json", **person.headers})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records and "0639981234" not in logged and "Secrète" not in logged


async def test_database_errors_never_carry_the_values_of_their_statement(settings_for):
    """A failing statement's error (logged with its traceback) names the statement, not its values."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from conversations.models import Address

    async with app_client(settings_for()) as client:
        rt = client.app.state.rt
        try:
            async with rt.sessionmaker() as session, session.begin():
                await session.execute(insert(Address).values(  # no such contact: a foreign key error
                    contact_id=987654321, channel="webchat", external_id="Mme Secrète 0639981234"))
        except IntegrityError as error:
            assert "addresses" in str(error) and "0639981234" not in str(error) and "Secrète" not in str(error)
        else:
            raise AssertionError("the foreign key was not enforced")
