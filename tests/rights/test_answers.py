"""Answers validation and the pure helpers the flow reuses (no OpenFisca)."""

import pytest
from pydantic import ValidationError

from rights.answers import Answers, check_range, parse_amount, parse_whole_number
from rights.benefits import benefit_ids, benefit_texts
from rights.mapping import Reference, map_answers, to_situation_dict


@pytest.mark.parametrize(
    ("text", "value"),
    [("1 200 €", 1200.0), ("1200,50", 1200.5), ("1.200", 1200.0), ("850 euros", 850.0), (" 12 ", 12.0),
     ("1\u202f250,00 €", 1250.0), ("0", 0.0), ("700€ par mois", 700.0)],
)
def test_parse_amount_reads_french_numbers(text, value):
    assert parse_amount(text) == (value, None)


@pytest.mark.parametrize("text", ["beaucoup", "", "mille", "12 ou 13", "abc 12"])
def test_parse_amount_gives_a_kind_message_for_text(text):
    value, message = parse_amount(text)
    assert value is None
    assert message.startswith("Je n'ai pas compris")


def test_parse_amount_refuses_negative():
    assert parse_amount("-300")[1] == "Le montant ne peut pas être négatif. Pouvez-vous vérifier ?"


def test_parse_whole_number():
    assert parse_whole_number("34 ans") == (34, None)
    assert parse_whole_number("trente")[0] is None
    assert parse_whole_number("3,5")[1] == "Merci d'écrire un nombre entier, par exemple 34."


def test_check_range_messages():
    assert check_range("age", 140) == "Cela me semble inhabituel. Merci d'indiquer un âge entre 0 et 120 ans."
    assert check_range("rent", -5) == "Cela me semble inhabituel. Merci d'indiquer un loyer entre 0 et 10 000 € par mois."
    assert check_range("age", 34) is None


def _errors(payload):
    with pytest.raises(ValidationError) as caught:
        Answers.model_validate(payload)
    return [error["msg"] for error in caught.value.errors()]


def test_answers_refuse_impossible_values_in_french():
    assert any("un âge entre 16 et 120 ans" in message for message in _errors({"age": 140, "depcom": "44109"}))
    assert any("un loyer entre 0 et 10 000 €" in message for message in _errors({"age": 40, "depcom": "44109", "rent": -100}))
    assert any("5 caractères" in message for message in _errors({"age": 40, "depcom": "44"}))
    assert any("âge de votre conjoint" in message for message in _errors({"age": 40, "depcom": "44109", "couple": True}))
    assert any("Aide inconnue" in message for message in _errors({"age": 40, "depcom": "44109", "benefits_received": ["xyz"]}))
    assert _errors({"age": "quarante", "depcom": "44109"})  # text where a number is expected


def test_benefit_texts_cover_every_benefit():
    texts = benefit_texts()
    assert {"rsa", "prime_activite", "aide_logement", "css", "af", "asf", "cf", "paje_base", "aah", "aspa",
            "cheque_energie", "bourse_college", "bourse_lycee", "ars", "cej", "prime_noel"} <= set(benefit_ids())
    for text in texts.values():
        assert text.label and text.description and text.link.startswith("https://")
        assert text.period in ("mois", "an")
    assert texts["rsa"].rounded(646.52) == 640
    assert texts["prime_activite"].rounded(231.99) == 231


def test_mapping_gives_every_answer_over_the_window_and_the_convention():
    reference = Reference(2025, 11)
    answers = Answers(age=35, resources={"salary": 1000, "unemployment": None}, children=[{"age": 4}],
                      housing="tenant", rent=600, depcom="75056", benefits_received=["af"])
    household = map_answers(answers, reference)
    situation = to_situation_dict(household, reference)
    person = situation["individus"]["demandeur"]
    assert person["salaire_net"]["2023"] == 12000
    assert person["salaire_imposable"]["2025"] == pytest.approx(12432)
    assert list(person["salaire_net"]) == ["2020", "2021", "2022", "2023", "2024", "2025"]
    assert person["date_naissance"] == {"ETERNITY": "1990-05-01"}
    famille = situation["familles"]["famille"]
    assert famille["parents"] == ["demandeur"] and famille["enfants"] == ["enfant1"]
    assert sorted(famille["rsa"]) == reference.months_before(1, 12)[::-1]  # M-12..M-1
    assert "2025-10" not in famille["aide_logement"] and "2025-07" in famille["aide_logement"]
    assert "af" not in famille  # declared as received: left to OpenFisca
    assert situation["menages"]["menage"]["loyer"]["2025"] == 7200
    assert any("allocation chômage (vous)" in sentence for sentence in household.assumptions)


def test_constructing_the_estimator_and_the_cli_does_not_import_openfisca():
    import subprocess
    import sys

    code = (
        "import sys; import rights.cli; from rights.estimator import RightsEstimator; e = RightsEstimator(); "
        "assert not e.ready; assert 'openfisca_core' not in sys.modules, 'openfisca imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
