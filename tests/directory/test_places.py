"""The nearest-places index on hand-made places (no database)."""

import pytest

from directory.needs import resolve_need
from directory.places import Place, PlaceIndex

REZE = (47.17333, -1.55729)
FOOD = frozenset({"equipement-et-alimentation--alimentation"})
PAPERS = frozenset({"difficultes-administratives-ou-juridiques--accompagnement-aux-demarches-administratives"})


def place(id_, km_north, thematiques=PAPERS, km_east=0.0):
    return Place(id=id_, name=id_, latitude=REZE[0] + km_north / 111.195, longitude=REZE[1] + km_east / 75.4,
                 thematiques=thematiques)


@pytest.fixture
def index():
    return PlaceIndex([
        place("near-papers", 1), place("near-food", 2, FOOD), place("papers-5", 5), place("papers-8", -8),
        place("papers-15", 15), place("papers-30", 30), place("food-40", 0, FOOD, km_east=40),
        place("papers-60", -60), place("papers-150", 150),
    ])


def test_sorted_by_distance_and_filtered_by_need(index):
    result = index.nearest(*REZE, resolve_need("demarches-et-droits"), limit=3)
    assert [p.id for p, _ in result.hits] == ["near-papers", "papers-5", "papers-8"]
    assert [round(d) for _, d in result.hits] == [1, 5, 8]
    assert result.radius_km == 10 and not result.widened and result.has_more


def test_radius_widens_until_a_page_is_full(index):
    result = index.nearest(*REZE, resolve_need("demarches-et-droits"), limit=5)
    assert result.radius_km == 50 and result.widened
    assert [p.id for p, _ in result.hits] == ["near-papers", "papers-5", "papers-8", "papers-15", "papers-30"]
    assert result.has_more  # papers-60 is within 100 km


def test_voir_plus_is_an_offset(index):
    result = index.nearest(*REZE, resolve_need("demarches-et-droits"), limit=5, offset=5)
    assert [p.id for p, _ in result.hits] == ["papers-60"]
    assert result.radius_km == 100 and not result.has_more


def test_food_widens_to_50_km(index):
    result = index.nearest(*REZE, resolve_need("se-nourrir"), limit=2)
    assert [p.id for p, _ in result.hits] == ["near-food", "food-40"] and result.radius_km == 50


def test_nothing_gives_the_largest_radius(index):
    result = index.nearest(*REZE, resolve_need("sante"))
    assert result.hits == [] and result.radius_km == 100 and result.widened and not result.has_more
    far = index.nearest(-20.9, 55.4)  # La Réunion: nothing there
    assert far.hits == [] and far.radius_km == 100


def test_no_need_means_every_place(index):
    result = index.nearest(*REZE, None, limit=2)
    assert [p.id for p, _ in result.hits] == ["near-papers", "near-food"]


def test_a_catégorie_or_thematique_works_as_a_need(index):
    assert index.nearest(*REZE, resolve_need("equipement-et-alimentation"), limit=1).hits[0][0].id == "near-food"
    assert index.nearest(*REZE, resolve_need("equipement-et-alimentation--alimentation"), limit=1).hits[0][0].id == "near-food"


def test_empty_index():
    result = PlaceIndex([]).nearest(*REZE)
    assert result.hits == [] and result.radius_km == 100
