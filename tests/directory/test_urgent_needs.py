"""Issue 14 through the real routes (web chat API), the CLI and a loopback fake of the
data·inclusion API, on the shipped data (SQLite, and PostgreSQL + Redis when configured):
food aid in Lyon within 2 km; "Se nourrir" where there is none: the mairie / CCAS, the honest
sentence, the worker at once; Bordeaux "Numérique": real positions first; the live source answers,
then fails or hangs, and the person is answered every time from the shipped data within 2 s."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import app_client
from tests.directory.conftest import shipped_database_url, shipped_directory  # noqa: F401 (fixtures)
from tests.directory.fake_data_inclusion import TOKEN, FakeDataInclusion, lyon_food_service
from tests.directory.test_cli import run
from tests.e2e.test_places_flow import at_need_question, shared_settings, summary_places  # noqa: F401
from tests.webchat import text_of, values


async def test_food_aid_in_lyon_is_found_within_2_km(shared_settings):  # noqa: F811
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


async def test_no_food_aid_gives_the_mairie_the_honest_sentence_and_the_worker(shared_settings):  # noqa: F811
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


async def test_sante_garde_gives_the_numbers_and_the_worker(shared_settings):  # noqa: F811
    async with app_client(shared_settings) as client:
        person = await at_need_question(client)
        await person.send(choice="sante")
        await person.send(choice="sante-garde")
        answer = await person.send("Rezé")
        text = text_of(answer)
        assert "3237" in text and "116 117" in text
        assert values(answer[-1])[0] == "parler"


def test_bordeaux_numerique_lists_real_positions_first(shipped_database_url):  # noqa: F811
    done = run(shipped_database_url, "near", "Bordeaux", "--need", "numerique", "--json", "--limit", "10")
    assert done.returncode == 0, done.stderr
    places = json.loads(done.stdout)["places"]
    assert places and not places[0]["approximate_location"]
    flags = [place["approximate_location"] for place in places if place["distance_km"] <= 10]
    assert flags == sorted(flags)  # within the band: every real position before any approximate one
    for place in places:
        if place["approximate_location"]:
            assert place["where_text"] == "à Bordeaux (adresse à vérifier)"
            assert "search?query=" in place["map_link"]
    siao = [place for place in places if place["id"].startswith("siao--")]
    assert all(place["approximate_location"] for place in siao)


async def test_data_inclusion_api_answers_then_fails_and_the_person_is_answered(settings_for, shipped_directory, monkeypatch):  # noqa: F811
    import directory.flow

    async def shared(sessionmaker, autoload, *departements):
        return shipped_directory

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
            failed = await person.send("Rezé")
            assert "Mairie de Rezé : le CCAS y répond ou vous oriente" in text_of(failed)

            api.mode = "slow"  # hangs: the person still gets the shipped data's answer within 2 s
            await person.send(choice="ailleurs")
            started = time.monotonic()
            hung = await person.send("Saint-Herblain")
            assert time.monotonic() - started < 2.5
            assert "Mairie de Saint-Herblain" in text_of(hung)
            assert len(api.requests) == 3
            live = client.app.state.rt.directory.api
            assert live.calls == 3 and live.failures >= 1


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
