import pytest

from directory.emergency import EMERGENCY_NUMBERS, is_emergency, numbers_for
from directory.needs import NEEDS, UnknownNeed, all_thematiques, expand, resolve_need


def test_every_need_maps_to_real_thematiques():
    known = set(all_thematiques())
    for need in NEEDS:
        thematiques = expand(need.thematiques)
        assert thematiques and thematiques <= known, need.id


def test_needs_catégories_and_thematiques_resolve():
    assert resolve_need("demarches-et-droits").label == "Démarches et droits"
    assert resolve_need("numerique").thematiques == ("numerique",)  # the need and the catégorie agree
    assert resolve_need("sante--acces-aux-soins").thematiques == ("sante--acces-aux-soins",)
    assert resolve_need("mobilite").id == "mobilite"
    assert resolve_need(None) is None
    with pytest.raises(UnknownNeed):
        resolve_need("n-importe-quoi")


def test_emergency_needs():
    assert is_emergency("dormir-ce-soir") and is_emergency("violences")
    assert not is_emergency("numerique") and not is_emergency(None)
    assert is_emergency(text="Je dors dehors ce soir") and is_emergency(text="il me frappe")
    assert is_emergency(text="je suis en DANGER")
    assert not is_emergency(text="je cherche une aide pour mes papiers")


def test_all_national_numbers_most_relevant_first():
    assert {n.number for n in EMERGENCY_NUMBERS} == {"115", "3919", "119", "15", "17", "112", "114"}
    assert numbers_for("dormir-ce-soir")[0].number == "115"
    assert numbers_for("violences")[0].number == "3919"
    assert len(numbers_for("violences")) == 7
    sms = next(n for n in EMERGENCY_NUMBERS if n.number == "114")
    assert "SMS" in sms.text
