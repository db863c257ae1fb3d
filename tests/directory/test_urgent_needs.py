"""Issue 14 through the real routes (web chat API), the CLI and a loopback fake of the
data·inclusion API, on the shipped data, on SQLite and on PostgreSQL + Redis when configured (there
the places themselves are imported into and read from PostgreSQL: `places_backend`):
food aid in Lyon within 2 km; "Se nourrir" where there is none: the mairie / CCAS, the honest
sentence, the worker at once; Bordeaux "Numérique": real positions first; the live source answers,
then fails or hangs, and the person is answered every time from the shipped data within 2 s;
"Se laver, toilettes": Lyon's showers, and where there are none, the 115 and the worker; an
arrondissement's postcode searches from that arrondissement."""

from __future__ import annotations

import json
import time

import pytest

import directory.flow
from tests.conftest import app_client
from tests.directory.conftest import (  # noqa: F401 (fixtures)
    places_backend,
    shipped_database_url,
    shipped_directory,
    shipped_postgres_directory,
    shipped_postgres_url,
)
from tests.directory.fake_data_inclusion import TOKEN, FakeDataInclusion, lyon_food_service
from tests.directory.test_cli import run
from tests.e2e.test_places_flow import at_need_question, summary_places
from tests.webchat import text_of, values


@pytest.fixture
def shared_settings(settings_for, places_backend, monkeypatch):  # noqa: F811
    """Settings whose app starts its directory with the places of the test's backend, loaded once."""
    _url, loaded = places_backend

    async def shared(sessionmaker, autoload, *departements):
        return loaded

    monkeypatch.setattr(directory.flow, "load_directory", shared)
    return settings_for(directory_autoload=True)


def near(places_backend, *args) -> dict:  # noqa: F811
    """`allervers places near … --json` on the test backend's places database."""
    url, _ = places_backend
    done = run(url, "near", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def test_food_aid_in_lyon_is_found_within_2_km(shared_settings, places_backend):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="se-nourrir")
        answer = await person.send("Lyon")
        text = text_of(answer)
        assert "Voici des lieux pour « Se nourrir » près de Lyon" in text
        result = await summary_places(client)
        assert not result["fallback"] and result["places"][0]["distance_km"] <= 2
        first = result["places"][0]
        # Entourage data have no coordinates: the commune is said, never a made-up distance.
        assert first["approximate_location"] and first["where_text"].startswith("à Lyon ")  # "à Lyon 2e Arrondissement"
        assert first["where_text"].endswith("(adresse à vérifier)") and first["where_text"] in text
        assert "openstreetmap.org/search?query=" in first["map_link"]
        assert first["source"] == "entourage" and first["date_maj"].startswith("2021")
        assert "informations de 2021, à vérifier" in text
        assert "restosducoeur.org" in text  # the networks' contacts come with the places
    cli = near(places_backend, "Lyon", "--need", "se-nourrir")
    assert not cli["fallback"] and cli["places"][0]["distance_km"] <= 2 and cli["places"][0]["source"] == "entourage"
    assert cli["places"][0]["id"] == first["id"]


async def test_food_aid_in_lyon_is_found_within_2_km_of_an_arrondissement(shared_settings):
    """The same need from a Lyon postcode: searched from that arrondissement's centre."""
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="se-nourrir")
        answer = await person.send("69007")
        assert "près de Lyon 7e Arrondissement" in text_of(answer)
        result = await summary_places(client)
        assert result["commune"]["insee"] == "69387" and result["places"][0]["distance_km"] <= 2


async def test_no_food_aid_gives_the_mairie_the_honest_sentence_and_the_worker(shared_settings, places_backend):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="se-nourrir")
        answer = await person.send("insee:15120")  # Mauriac (Cantal): no food aid in the data
        text = text_of(answer)
        assert "Je n'ai pas trouvé de lieu pour « Se nourrir » à moins de 30 km de Mauriac" in text
        assert "Je vous le dis franchement" in text
        assert "Mairie de Mauriac : le CCAS y répond ou vous oriente" in text
        assert "secourspopulaire.fr" in text and "Une personne de l'équipe peut chercher avec vous" in text
        assert values(answer[-1])[0] == "parler"  # the worker offered at once, first button
        result = await summary_places(client)
        assert result["fallback"] and result["places"][0]["kind"] == "mairie"
        assert result["places"][0]["source"] == "dila-mairies"
        handed = await person.send(choice="parler")
        assert "Camille" in text_of(handed)
    done = run(places_backend[0], "near", "insee:15120", "--need", "se-nourrir", "--text")
    assert done.returncode == 0, done.stderr
    assert "Je n'ai pas trouvé de lieu pour « Se nourrir » à moins de 30 km de Mauriac" in done.stdout
    assert "Mairie de Mauriac : le CCAS y répond ou vous oriente" in done.stdout
    assert "Une personne de l'équipe peut chercher avec vous" in done.stdout


async def test_sante_garde_gives_the_numbers_and_the_worker(shared_settings):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="sante")
        await person.send(choice="sante-garde")
        answer = await person.send("Rezé")
        text = text_of(answer)
        assert "3237" in text and "116 117" in text
        assert values(answer[-1])[0] == "parler"


async def test_bordeaux_numerique_lists_real_positions_first(shared_settings, places_backend):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="numerique")
        answer = await person.send("Bordeaux")
        chat = (await summary_places(client))["places"]
        assert chat and not chat[0]["approximate_location"] and "1. " + chat[0]["name"] in text_of(answer)
        flags = [place["approximate_location"] for place in chat]
        assert flags == sorted(flags) and "(adresse à vérifier)" not in text_of(answer).split("\n\n")[0]
    places = near(places_backend, "Bordeaux", "--need", "numerique", "--limit", "10")["places"]
    assert places[0]["id"] == chat[0]["id"]
    assert places and not places[0]["approximate_location"]
    flags = [place["approximate_location"] for place in places if place["distance_km"] <= 10]
    assert flags == sorted(flags)  # within the band: every real position before any approximate one
    for place in places:
        if place["approximate_location"]:
            assert place["where_text"] == "à Bordeaux (adresse à vérifier)"
            assert "search?query=" in place["map_link"]
    siao = [place for place in places if place["id"].startswith("siao--")]
    assert all(place["approximate_location"] for place in siao)
    # The SIAO places "at environ 0 km": every page of the 10 km band, in order.
    from directory.finder import find_places

    band, offset = [], 0
    while offset is not None and offset < 200:
        page = find_places(places_backend[1], "Bordeaux", "numerique", offset=offset, limit=10)
        band += [card for card in page.places if card.distance_km <= 10]
        offset = page.next_offset
    approximate = [index for index, card in enumerate(band) if card.approximate_location]
    assert approximate and any(band[index].id.startswith("siao--") for index in approximate)
    # After every real position of the band that matches as well (a real place listed after them is a
    # generic match: a side line of its thématiques, docs/directory.md "Specific before generic").
    from directory.needs import expand, resolve_need

    index = places_backend[1].places
    by_id = {place.id: place for place in index.places}
    wanted = frozenset(expand(resolve_need("numerique").thematiques))
    specific_real = [i for i, card in enumerate(band)
                     if not card.approximate_location and not index._is_generic(by_id[card.id], wanted)]
    assert specific_real and max(specific_real) < approximate[0]
    later = near(places_backend, "Bordeaux", "--need", "numerique", "--limit", "10", "--offset", str(approximate[0]))
    first = later["places"][0]
    assert first["approximate_location"] and first["where_text"] == "à Bordeaux (adresse à vérifier)"
    assert "search?query=" in first["map_link"] and "mlat=" not in first["map_link"]


async def test_data_inclusion_api_answers_then_fails_and_the_person_is_answered(settings_for, places_backend, monkeypatch):  # noqa: F811
    async def shared(sessionmaker, autoload, *departements):
        return places_backend[1]

    monkeypatch.setattr(directory.flow, "load_directory", shared)
    nantes_food = lyon_food_service(1, latitude=47.2138, longitude=-1.5566)
    nantes_food["structure"].update(nom="Épicerie solidaire de Nantes", code_postal="44000", code_insee="44109",
                                    commune="Nantes", adresse="3 rue de la Paix")
    with FakeDataInclusion([nantes_food]) as api:
        settings = settings_for(directory_autoload=True, directory_api_url=api.base_url,
                                directory_api_token=TOKEN, directory_api_timeout_seconds=1.0)
        async with app_client(settings) as client:
            person = await at_need_question(client)
            await person.send(choice="se-nourrir")
            answer = await person.send("Nantes")  # the API answers: its place is shown
            assert "Épicerie solidaire de Nantes" in text_of(answer)
            result = await summary_places(client)
            assert not result["fallback"] and result["places"][0]["source"] == "data-inclusion:soliguide"
            query = api.requests[-1]
            assert "code_commune=44109" in query and "thematiques=equipement-et-alimentation--alimentation" in query

            api.mode = "error"  # HTTP 500: the shipped data answer
            await person.send(choice="ailleurs")
            started = time.monotonic()
            failed = await person.send("Rezé")
            assert time.monotonic() - started < 2.0
            assert "Mairie de Rezé : le CCAS y répond ou vous oriente" in text_of(failed)

            api.mode = "slow"  # hangs: the person still gets the shipped data's answer within 2 s
            await person.send(choice="ailleurs")
            started = time.monotonic()
            hung = await person.send("Saint-Herblain")
            assert time.monotonic() - started < 2.0  # the 1 s time-out, then the shipped data
            assert "Mairie de Saint-Herblain" in text_of(hung)
            assert len(api.requests) == 3
            live = client.app.state.rt.directory.api
            assert live.calls == 3 and live.failures >= 1


async def test_hygiene_in_lyon_gives_showers_through_the_chat_and_the_cli(shared_settings, places_backend):  # noqa: F811
    """Issue 14's "a shower": a need of its own, chosen by a button or asked in words."""
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        asked = await person.send(choice="se-laver")
        assert "Où êtes-vous" in asked[-1]["text"]
        answer = await person.send("69003")
        text = text_of(answer)
        assert "Voici des lieux pour « Se laver, toilettes » près de Lyon 3e Arrondissement" in text
        assert "1. Point Accueil de LAHSO — à Lyon 3e Arrondissement (adresse à vérifier)" in text
        offers = next(line for line in answer[0]["text"].split("\n") if line.startswith("🤝 "))
        assert offers.startswith("🤝 Douches, Laverie")  # what it offers, the asked kinds first (source's categories)
        assert "115 — urgence sociale" in text  # the useful number comes with the places
        result = await summary_places(client)
        assert not result["fallback"] and result["need"] == "se-laver" and result["commune"]["insee"] == "69383"
        assert all(place["source"] == "entourage" and place["approximate_location"] for place in result["places"])
        assert "parler" in values(answer[-1])
    cli = near(places_backend, "69003", "--need", "se-laver")
    assert [place["id"] for place in cli["places"]] == [place["id"] for place in result["places"]]
    assert cli["need_label"] == "Se laver, toilettes"


async def test_a_shower_asked_in_words_starts_the_search(shared_settings):  # noqa: F811
    async with app_client(shared_settings) as client:
        from tests.webchat import Person

        person = Person(client)
        await person.send("/start")
        await person.send(choice="oui")
        asked = await person.send("je voudrais prendre une douche")
        assert "Où êtes-vous" in asked[-1]["text"]
        answer = await person.send("Bordeaux")
        assert "Voici des lieux pour « Se laver, toilettes » près de Bordeaux" in text_of(answer)
        assert (await summary_places(client))["need"] == "se-laver"


async def test_no_shower_nearby_gives_the_mairie_the_115_and_the_worker(shared_settings, places_backend):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="se-laver")
        answer = await person.send("insee:15120")  # Mauriac (Cantal): no shower in the data
        text = text_of(answer)
        assert "Je n'ai pas trouvé de lieu pour « Se laver, toilettes » à moins de 30 km de Mauriac" in text
        assert "Je vous le dis franchement" in text
        assert "Mairie de Mauriac : le CCAS y répond ou vous oriente" in text
        assert "115 — urgence sociale, gratuit, jour et nuit" in text
        assert any(link[1] == "tel:115" for message in answer for link in message.get("links") or [])
        assert "Une personne de l'équipe peut chercher avec vous" in text
        assert values(answer[-1])[0] == "parler"
        result = await summary_places(client)
        assert result["fallback"] and result["places"][0]["kind"] == "mairie"
        assert "Camille" in text_of(await person.send(choice="parler"))
    cli = near(places_backend, "insee:15120", "--need", "se-laver")
    assert cli["fallback"] and cli["mairie"]["name"].startswith("Mairie de Mauriac")


async def test_an_arrondissement_postcode_places_the_person_there(shared_settings, places_backend):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="demarches-et-droits")
        east = await person.send("75011")
        assert "près de Paris 11e Arrondissement" in text_of(east)
        first = await summary_places(client)
        await person.send(choice="ailleurs")
        west = await person.send("Paris 75016")  # with the city's name: no "Paris or Paris 16e?" question
        assert "près de Paris 16e Arrondissement" in text_of(west)
        second = await summary_places(client)
    assert first["commune"]["insee"] == "75111" and second["commune"]["insee"] == "75116"
    assert first["places"][0]["id"] != second["places"][0]["id"]
    assert first["places"][0]["distance_km"] < 2
    cli = {where: near(places_backend, where, "--need", "demarches-et-droits") for where in ("75011", "75016")}
    assert cli["75011"]["places"][0]["id"] == first["places"][0]["id"]
    assert cli["75016"]["places"][0]["id"] == second["places"][0]["id"]
    assert cli["75011"]["commune"]["latitude"] != cli["75016"]["commune"]["latitude"]


async def test_the_live_source_gives_showers_not_home_help(settings_for, places_backend, monkeypatch):  # noqa: F811
    """data·inclusion has no hygiene thématique: asked by the closest one, its answers are kept
    only when their services are showers, laundries, toilets (a home-help service is no shower)."""
    async def shared(sessionmaker, autoload, *departements):
        return places_backend[1]

    monkeypatch.setattr(directory.flow, "load_directory", shared)
    showers = lyon_food_service(3, latitude=47.2130, longitude=-1.5560)
    showers.update(nom="Douches", thematiques=["equipement-et-alimentation--aide-menagere"])
    showers["structure"].update(nom="Bains-douches de Nantes", code_postal="44000", code_insee="44109",
                                commune="Nantes", adresse="12 rue de Coutances")
    home_help = lyon_food_service(4, latitude=47.2140, longitude=-1.5570)
    home_help.update(nom="Aide ménagère à domicile", thematiques=["equipement-et-alimentation--aide-menagere"])
    home_help["structure"].update(nom="Service d'aide à domicile", code_insee="44109", commune="Nantes")
    with FakeDataInclusion([showers, home_help]) as api:
        settings = settings_for(directory_autoload=True, directory_api_url=api.base_url,
                                directory_api_token=TOKEN, directory_api_timeout_seconds=1.0)
        async with app_client(settings) as client:
            person = await at_need_question(client)
            await person.send(choice="se-laver")
            answer = await person.send("Nantes")
            text = text_of(answer)
            assert "Bains-douches de Nantes" in text and "Service d'aide à domicile" not in text
            assert "thematiques=equipement-et-alimentation--aide-menagere" in api.requests[-1]
            result = await summary_places(client)
            assert not result["fallback"] and result["places"][0]["name"] == "Bains-douches de Nantes"


@pytest.mark.parametrize("status_mode", ["garbage"])
async def test_live_source_parses_only_the_documented_page(status_mode):
    from directory.live_source import DataInclusionSource
    from directory.needs import resolve_need

    with FakeDataInclusion([lyon_food_service(2)]) as api:
        source = DataInclusionSource(api.base_url, TOKEN, timeout=1.0, cache_seconds=60)
        need = resolve_need("se-nourrir")
        found = await source.search(need, "69383", 45.76, 4.84)
        assert found and found[0][0].name == "Épicerie solidaire du Rhône 2" and not found[0][0].approximate
        assert await source.search(need, "69383", 45.76, 4.84) == found and source.calls == 1  # cached
        api.mode = status_mode
        assert await source.search(need, "69381", 45.76, 4.84) is None
        assert await source.search(need, "00000", 45.76, 4.84) is None  # 422 unknown commune
        wrong = DataInclusionSource(api.base_url, "wrong", timeout=1.0)
        assert await wrong.search(need, "69383", 45.76, 4.84) is None  # 403
        await source.close()
        await wrong.close()
