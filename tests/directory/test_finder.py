"""Known answers on the shipped open data."""

from datetime import datetime

from directory.finder import find_places
from directory.hours import PARIS
from directory.render import render_answer

MONDAY_MORNING = datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)


def test_reze_demarches(shipped_directory):
    for where in ("44400", "Rezé", "reze"):
        answer = find_places(shipped_directory, where, "demarches-et-droits", now=MONDAY_MORNING)
        assert answer.status == "places" and answer.commune.code_insee == "44143"
        names = [card.name for card in answer.places]
        assert "France services de Rezé" in names, names
        assert len(answer.places) == 5 and answer.radius_km == 10 and not answer.widened and answer.has_more
        distances = [card.distance_km for card in answer.places]
        assert distances == sorted(distances)
        card = answer.places[names.index("France services de Rezé")]
        assert card.id == "france-services--2412" and card.distance_km < 3
        assert card.phone and "44400 Rezé" in card.address
        assert card.open_now is True and card.hours_text.startswith("ouvert jusqu")
        assert card.map_link.startswith("https://www.openstreetmap.org/?mlat=47.18")
        assert "#map=17/47.18" in card.map_link


def test_voir_plus(shipped_directory):
    first = find_places(shipped_directory, "44400", "demarches-et-droits", now=MONDAY_MORNING)
    more = find_places(shipped_directory, "44400", "demarches-et-droits", offset=first.next_offset, now=MONDAY_MORNING)
    assert more.offset == 5 and more.places
    assert not {c.id for c in first.places} & {c.id for c in more.places}
    # Issue 14: a place without coordinates comes after the real positions of its distance band.
    if not more.places[0].approximate_location:
        assert more.places[0].distance_km >= first.places[-1].distance_km


def test_shared_location(shipped_directory):
    answer = find_places(shipped_directory, (47.1850, -1.5593), "numerique", now=MONDAY_MORNING)
    assert answer.from_position and answer.commune.code_insee == "44143"
    assert answer.places[0].distance_km < 0.5
    assert find_places(shipped_directory, {"latitude": 47.185, "longitude": -1.559}, None).status == "places"


def test_a_location_in_the_sea(shipped_directory):
    answer = find_places(shipped_directory, (46.5, -3.8), "sante")
    assert answer.status == "unknown_place" and answer.places == [] and "loin" in answer.message


def test_ambiguous_and_unknown_places(shipped_directory):
    ambiguous = find_places(shipped_directory, "Saint-Denis", "sante")
    assert ambiguous.status == "choose_commune" and len(ambiguous.candidates) >= 2
    assert ambiguous.buttons[0] == ("Saint-Denis (974)", "insee:97411")
    chosen = find_places(shipped_directory, "insee:93066", "demarches-et-droits")
    assert chosen.status == "places" and chosen.commune.code_insee == "93066" and chosen.places
    unknown = find_places(shipped_directory, "xyzzy", "sante")
    assert unknown.status == "unknown_place" and "code postal" in unknown.message


def test_emergency_needs_show_the_numbers_first(shipped_directory):
    answer = find_places(shipped_directory, "Rezé", "dormir-ce-soir", now=MONDAY_MORNING)
    assert answer.emergency_numbers[0].number == "115" and len(answer.emergency_numbers) == 7
    assert answer.radius_km == 100 and answer.widened  # nothing near Rezé in open data
    # Issue 14: nothing within 30 km is said plainly, with the commune's mairie first.
    assert answer.fallback and answer.mairie.name.startswith("Mairie de Rezé : le CCAS")
    messages = render_answer(answer)
    assert messages[0].startswith("🆘") and "115" in messages[0] and "114" in messages[0]
    assert "Je n'ai pas trouvé de lieu pour « Dormir ce soir » à moins de 30 km de Rezé" in "\n".join(messages)
    assert find_places(shipped_directory, "Rezé", "numerique").emergency_numbers == []


def test_rendering(shipped_directory):
    answer = find_places(shipped_directory, "44400", "demarches-et-droits", now=MONDAY_MORNING)
    messages = render_answer(answer)
    text = "\n".join(messages)
    assert all(len(message) <= 4000 for message in messages)
    assert "près de Rezé" in text and "à moins de 10 km" in text
    assert "📍" in text and "🕒" in text and "☎️" in text and "voir plus" in text
    assert "1. " in text and "France services de Rezé" in text
    small = render_answer(answer, max_chars=300)
    assert len(small) > 1 and all(len(message) <= 300 for message in small)


def test_answer_as_json(shipped_directory):
    import json

    data = find_places(shipped_directory, "44400", "demarches-et-droits", limit=3).to_dict()
    json.dumps(data)
    assert set(data["places"][0]) == {"id", "name", "distance_km", "address", "phone", "hours_text", "open_now",
                                      "map_link", "approximate_location", "where_text", "kind", "source", "date_maj"}
    assert data["commune"]["code_insee"] == "44143"


def test_places_without_coordinates_use_their_commune(shipped_directory):
    approximate = [p for p in shipped_directory.places.places if p.approximate]
    assert len(approximate) > 300  # siao and cd72 records have no coordinates
    assert shipped_directory.left_out < 50


def test_text_positions_need_decimals(shipped_directory):
    assert find_places(shipped_directory, "47.185,-1.559", None).from_position
    assert find_places(shipped_directory, "44400, Rezé", None).commune.code_insee == "44143"


def test_an_arrondissement_postcode_searches_from_its_own_centre(shipped_directory, communes):
    """Paris, Lyon, Marseille: 75011 and 75016 are two places, 7 km apart, not Paris's centre."""
    east, west = (find_places(shipped_directory, where, "demarches-et-droits") for where in ("75011", "75016"))
    assert east.commune.code_insee == "75111" and west.commune.code_insee == "75116"
    assert east.search_point == (communes.get("75111").latitude, communes.get("75111").longitude)
    assert west.search_point == (communes.get("75116").latitude, communes.get("75116").longitude)
    assert east.places[0].id != west.places[0].id
    assert not {card.id for card in east.places[:3]} & {card.id for card in west.places[:3]}
    assert east.places[0].distance_km < 2 and "11ème" in east.places[0].name
    # Written with the city's name, or as Lyon's and Marseille's: the same arrondissement.
    assert [card.id for card in find_places(shipped_directory, "75011 Paris", "demarches-et-droits").places] == \
        [card.id for card in east.places]
    for where, code in (("69003 Lyon", "69383"), ("Marseille 13005", "13205")):
        answer = find_places(shipped_directory, where, "numerique")
        assert answer.status == "places" and answer.commune.code_insee == code


def test_hygiene_is_its_own_need_showers_first(shipped_directory):
    """Issue 14's "a shower": Entourage's showers, laundries and toilets (no data·inclusion
    thématique: matched by their kind), showers before toilets at the same distance."""
    from directory.needs import resolve_need

    answer = find_places(shipped_directory, "69003", "se-laver", limit=10)
    assert answer.status == "places" and not answer.fallback and answer.need_label == "Se laver, toilettes"
    assert answer.places[0].name == "Point Accueil de LAHSO" and answer.places[0].distance_km == 0
    index = shipped_directory.places
    kinds = [next(p for p in index.places if p.id == card.id).kinds for card in answer.places]
    assert all(k & {"douches", "laverie", "toilettes"} for k in kinds)  # specific matches only here
    first_toilet = next(i for i, k in enumerate(kinds) if not k & {"douches", "laverie"})
    assert all(k & {"douches", "laverie"} for k in kinds[:first_toilet])
    assert all(card.approximate_location and card.source == "entourage" for card in answer.places)
    assert "115 — urgence sociale" in answer.numbers[0]
    # Not clothes any more, and no home help: a place offering only "aide ménagère" is no shower.
    assert resolve_need("s-equiper").thematiques == ("equipement-et-alimentation--habillement",
                                                     "equipement-et-alimentation--electromenager")
    assert not any("Douches" in p.services for p, _ in index.nearest(45.75, 4.86, resolve_need("s-equiper"), 20).hits
                   if "equipement-et-alimentation--habillement" not in p.thematiques)


def test_kinds_of_service_from_names():
    from directory.needs import service_kinds
    from directory.places import Place, place_kinds

    assert service_kinds("Bains-Douches B.Delessert") == {"douches"}
    assert service_kinds("Laverie", "Toilettes") == {"laverie", "toilettes"}
    assert service_kinds("Aide à la toilette à domicile") == set()  # personal care, not public toilets
    hygiene = frozenset({"equipement-et-alimentation--aide-menagere"})
    own = Place("o", "Bains-douches municipaux", 45.0, 4.0, thematiques=hygiene, services=("Accueil",))
    assert place_kinds(own) == {"douches"}  # a console place: its name, with the hygiene thématique
    town = Place("t", "Médiathèque de Fontaines-sur-Saône", 45.0, 4.0, services=("Médiation numérique",))
    assert place_kinds(town) == set()  # a commune's name is no fountain
    day = Place("d", "Accueil de jour La Halte", 45.0, 4.0, services=("Hébergement, accueil",))
    assert place_kinds(day) == {"accueil-de-jour"}
    mairie = Place("m", "Mairie de Fontaine", 45.0, 4.0, thematiques=hygiene, kind="mairie")
    assert place_kinds(mairie) == set()
