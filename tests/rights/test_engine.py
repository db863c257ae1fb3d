"""The real OpenFisca-France: fast path == naive path, published amounts, batches == single runs."""

import numpy as np
import pytest
from openfisca_core.simulation_builder import SimulationBuilder

from rights.answers import Answers
from rights.engine import compute_fast, compute_naive, compute_naive_batch, prime_noel
from rights.mapping import map_answers, to_situation_dict
from rights.results import build_result
from tests.rights.households import HOUSEHOLDS

pytestmark = pytest.mark.slow


def _households(reference, payloads):
    return [map_answers(Answers.model_validate(payload), reference) for payload in payloads]


def _assert_same(left: dict, right: dict, context: str) -> None:
    assert left.keys() == right.keys()
    for name in left:
        if isinstance(left[name], bool):
            assert left[name] == right[name], f"{context}: {name} {left[name]} != {right[name]}"
        else:
            assert left[name] == pytest.approx(right[name], abs=0.01), f"{context}: {name}"


@pytest.fixture(scope="module")
def fast_singles(systems, reference):
    households = _households(reference, HOUSEHOLDS.values())
    return {name: compute_fast(systems, [household], reference)[0] for name, household in zip(HOUSEHOLDS, households)}


def test_fast_path_equals_naive_path_on_varied_households(systems, reference, fast_singles):
    assert len(HOUSEHOLDS) >= 15
    naive = compute_naive_batch(systems, _households(reference, HOUSEHOLDS.values()), reference)
    for (name, fast), slow in zip(fast_singles.items(), naive):
        _assert_same(fast, slow, name)
    # the set is varied enough to exercise most benefits
    paid = {benefit for values in fast_singles.values() for benefit, value in values.items() if value}
    assert {"rsa", "ppa", "aide_logement", "cmu_c", "css_participation_forfaitaire", "af", "asf", "cf",
            "paje_base", "aspa", "aah", "asi", "bourse_college", "bourse_lycee", "ars", "cheque_energie",
            "prime_noel"} <= paid


def test_naive_batch_equals_naive_single(systems, reference):
    households = _households(reference, [HOUSEHOLDS["single_parent_paris_low_wage"], HOUSEHOLDS["homeless_paris"]])
    batch = compute_naive_batch(systems, households, reference)
    _assert_same(batch[1], compute_naive(systems, households[1], reference), "naive single")


def test_one_batch_gives_the_single_results(systems, reference, fast_singles):
    households = _households(reference, HOUSEHOLDS.values())
    batch = compute_fast(systems, households, reference)
    for (name, single), batched in zip(fast_singles.items(), batch):
        _assert_same(batched, single, name)


def _one(systems, reference, **answers):
    answers = Answers(**answers)
    household = map_answers(answers, reference)
    raw = compute_fast(systems, [household], reference)[0]
    return raw, {b["id"]: b for b in build_result(answers, household, reference, raw)["benefits"]}


def test_published_rsa_single_without_resources(systems, reference):
    # RSA "montant forfaitaire" for one person since April 2025: 646.52 €; without housing costs
    # (no fixed home) no forfait logement is deducted.
    raw, shown = _one(systems, reference, age=40, housing="homeless", depcom="75056")
    assert raw["rsa"] == pytest.approx(646.52, abs=0.01)
    assert shown["rsa"]["monthly_amount"] == 640
    # Tenant receiving housing aid: minus the forfait logement of 12 % (77.58 €) = 568.94 €.
    raw, _ = _one(systems, reference, age=40, housing="tenant", rent=500, depcom="44109")
    assert raw["rsa"] == pytest.approx(568.94, abs=0.01)


def test_published_aspa_maximum_single(systems, reference):
    # ASPA for a single person since January 2025: 1,034.28 € a month (OpenFisca: 1,034.29).
    raw, shown = _one(systems, reference, age=70, activity="retired", housing="tenant", rent=400, depcom="44109")
    assert raw["aspa"] == pytest.approx(1034.28, abs=0.02)
    assert shown["aspa"]["monthly_amount"] == 1030


def test_published_family_allowance_two_children(systems, reference):
    # AF for 2 children since April 2025: 151.80 € before CRDS, 151.04 € paid.
    raw, shown = _one(systems, reference, age=38, activity="employee", resources={"salary": 2500}, couple=True,
                      partner_age=37, partner_activity="employee", partner_resources={"salary": 2500},
                      children=[{"age": 6}, {"age": 10}], housing="owner", depcom="44109")
    assert raw["af"] == pytest.approx(151.80, abs=0.01)
    assert shown["af"]["monthly_amount"] == 151  # 151.04 floored to the euro


def test_published_aah_full_rate(systems, reference):
    # AAH full rate since April 2025: 1,033.32 € a month.
    raw, shown = _one(systems, reference, age=35, disability="ge80", activity="unable_to_work", housing="hosted",
                      depcom="44109", benefits_received=["aah"])
    assert raw["aah"] == pytest.approx(1033.32, abs=0.01)
    assert shown["aah"]["monthly_amount"] == 1030


def test_derived_prime_de_noel_matches_openfisca_for_a_year_of_rsa(systems, reference):
    payload = {"age": 30, "children": [{"age": 3}, {"age": 7}], "housing": "hosted", "depcom": "44109",
               "benefits_received": ["rsa"]}
    household = map_answers(Answers.model_validate(payload), reference)
    simulation = SimulationBuilder().build_from_entities(systems.base, to_situation_dict(household, reference))
    expected = simulation.calculate("aefa", str(reference.year))
    parameters = systems.base.parameters(f"{reference.year}-12").prestations_sociales.solidarite_insertion.autre_solidarite.aefa
    derived = prime_noel(simulation.calculate("rsa", str(reference)), simulation.calculate("af_nbenf", str(reference)),
                         simulation.calculate("nb_parents", str(reference)), parameters)
    assert expected[0] > 0
    np.testing.assert_allclose(derived, expected, atol=0.01)
