"""rights/flow.py without OpenFisca: the flow's answers -> Answers, texts, and failures that never crash."""

from __future__ import annotations

import asyncio

import pytest

from rights.estimator import RightsUnavailable
from rights.flow import answers_from_flow, benefit_message, chat_messages, estimate_for_flow, why_text

NANTES = {"value": "insee:44109", "label": "Nantes (44000)", "insee": "44109", "name": "Nantes"}


def flat(**answers) -> dict:
    return {"age": 35, "couple": "seul", "children_count": "0", "housing": "tenant", "tenant_kind": "private",
            "rent": 450, "commune": NANTES, "activity": "other", "salary": "0", "other_income": "0",
            "benefit_pick": "aucune", **answers}


def test_single_tenant_maps_to_the_plain_answers():
    answers, assumptions = answers_from_flow(flat())
    assert answers.age == 35 and not answers.couple and answers.children == []
    assert answers.housing == "tenant" and answers.tenant_kind == "private" and answers.rent == 450
    assert answers.depcom == "44109" and answers.benefits_received == []
    assert answers.resources.model_dump() == {"salary": 0, "unemployment": 0, "pension": 0, "other": 0}
    assert any("Nationalité française" in a for a in assumptions)


def test_dont_know_becomes_none_and_household_resources_go_to_the_right_adult():
    answers, assumptions = answers_from_flow(flat(
        couple="couple", partner_age="41", activity="employee", partner_activity="job_seeker",
        salary="nsp", unemployment=900, other_income=120, rent="nsp"))
    assert answers.resources.salary is None and answers.partner_resources.salary == 0
    assert answers.partner_resources.unemployment == 900 and answers.resources.unemployment == 0
    assert answers.resources.other == 120 and answers.rent is None and answers.partner_age == 41

    both_work, assumptions = answers_from_flow(flat(couple="couple", partner_age=30, activity="employee",
                                                    partner_activity="self_employed", salary="3000"))
    assert both_work.resources.salary == both_work.partner_resources.salary == 1500
    assert any("partagé à parts égales" in a for a in assumptions)

    retired, _ = answers_from_flow(flat(age=70, activity="retired", pension=900))
    assert retired.resources.pension == 900


def test_children_single_parent_alimony_and_commune_codes():
    answers, assumptions = answers_from_flow(flat(children_count=2, children_ages=[3, 12], alimony="nsp",
                                                  single_recent="oui"))
    assert [child.age for child in answers.children] == [3, 12] and answers.children[0].school is None
    assert answers.alimony_received is None and answers.single_parent_recent
    couple, _ = answers_from_flow(flat(couple="couple", partner_age=40, children_count="1", children_ages=[5],
                                       alimony=200, single_recent="oui"))
    assert couple.alimony_received == 0 and not couple.single_parent_recent  # only asked to single parents
    mismatch, assumptions = answers_from_flow(flat(children_count=3, children_ages=[4, 8]))
    assert len(mismatch.children) == 2 and any("âges donnés sont retenus" in a for a in assumptions)
    for code, commune in (("75111", "75056"), ("69383", "69123"), ("13201", "13055"), ("97411", "97411")):
        answers, _ = answers_from_flow(flat(commune={"value": f"insee:{code}", "label": "x"}))
        assert answers.depcom == commune


def test_housing_answers_only_count_for_their_housing():
    hosted, assumptions = answers_from_flow(flat(housing="hosted", rent=900))
    assert hosted.rent == 0 and any("Hébergé·e" in a for a in assumptions)
    owner, assumptions = answers_from_flow(flat(housing="owner", owner_loan="nsp"))
    assert owner.owner_loan == 0 and any("prêt immobilier inconnue" in a for a in assumptions)
    received, _ = answers_from_flow(flat(benefits_received=["rsa", "af"], benefit_pick="fini"))
    assert received.benefits_received == ["af", "rsa"]


class Estimator:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.ready = True

    async def estimate(self, answers):
        if self.error:
            raise self.error
        return {"reference_month": "2025-11", "legislation_year": 2025, "computed_at": "2025-11-22T10:00:00+00:00",
                "openfisca_france_version": "176.1.8", "answers": answers.model_dump(mode="json"),
                "assumptions": ["Revenus inconnus, comptés à 0 € : salaire (vous)."], "monthly_total": 860.0,
                "disclaimer": "", "zero_benefits": [{"id": "af", "label": "Allocations familiales",
                                                     "why": "pas d'enfant à charge"}],
                "benefits": [
                    {"id": "rsa", "label": "Revenu de solidarité active (RSA)", "description": "Un revenu minimum.",
                     "monthly_amount": 560.0, "yearly_amount": None, "link": "https://example.org/rsa",
                     "conditional": False, "already_received": False, "note": None},
                    {"id": "css", "label": "Complémentaire santé solidaire", "description": "Une mutuelle.",
                     "monthly_amount": 0.0, "yearly_amount": None, "participation": 30.5, "link": "https://x/css",
                     "conditional": False, "already_received": True, "note": "Avec une participation..."},
                    {"id": "cheque_energie", "label": "Chèque énergie", "description": "Une aide par an.",
                     "monthly_amount": None, "yearly_amount": 1194.0, "link": "https://x/ce",
                     "conditional": False, "already_received": False, "note": "Envoyé automatiquement."},
                ]}


async def test_the_action_result_holds_the_chat_texts_and_the_worker_card():
    result = await estimate_for_flow(Estimator(), flat(salary="nsp"))
    assert result["ok"] and result["summary_key"] == "rights" and result["reference_month_label"] == "novembre 2025"
    intro, rsa, css, energy = result["messages"]
    assert "novembre 2025" in intro and "860 €" in intro and "j'ai compté 0 €" in intro
    assert rsa.startswith("✅ Revenu de solidarité active (RSA) : environ 560 € par mois\nUn revenu minimum.")
    assert "https://" not in rsa and "http" not in "".join(result["messages"])  # links are words, not URLs
    assert {"says": rsa, "messages": [{"text": rsa, "links": [["👉 Faire la demande", "https://example.org/rsa"]]}]} \
        in result["rich"]
    assert "participation d'environ 30,50 € par mois (vous la touchez déjà)" in css
    assert "environ 1\u202f194 € par an" in energy and "ℹ️ Envoyé automatiquement." in energy
    assert result["why_text"] == "❓ Les autres aides sont à 0 € d'après vos réponses :\n• Allocations familiales : pas d'enfant à charge"
    assert "Revenus inconnus, comptés à 0 € : salaire (vous)." in result["assumptions"]
    assert ["Salaires du foyer", "ne sait pas"] in result["answers_readable"]
    assert result["label"].startswith("estimation : Revenu de solidarité active 560 €/mois, CSS avec participation")


@pytest.mark.parametrize("estimator", [None, Estimator(RightsUnavailable("x")), Estimator(RuntimeError("boom"))])
async def test_off_or_failing_estimator_gives_not_ok_never_raises(estimator):
    result = await estimate_for_flow(estimator, flat())
    assert result["ok"] is False and result["summary_key"] == "rights" and result["messages"] == []


async def test_impossible_or_missing_answers_give_not_ok():
    assert (await estimate_for_flow(Estimator(), flat(commune=None)))["reason"] == "answers"
    assert (await estimate_for_flow(Estimator(), flat(age=140)))["reason"] == "answers"


async def test_a_slow_estimate_times_out_as_not_ok(monkeypatch):
    import rights.flow

    class Slow(Estimator):
        async def estimate(self, answers):
            await asyncio.sleep(10)

    monkeypatch.setattr(rights.flow, "ESTIMATE_TIMEOUT_SECONDS", 0.05)
    assert (await estimate_for_flow(Slow(), flat()))["reason"] == "failed"


def test_texts_without_benefits():
    empty = {"benefits": [], "zero_benefits": [], "reference_month": "2025-11"}
    assert chat_messages(empty, False)[0].startswith("🔎 D'après vos réponses, je ne trouve pas")
    assert why_text(empty) == "Je n'ai pas trouvé d'autre aide à vérifier."
    cej = {"id": "cej", "label": "CEJ", "description": "d", "monthly_amount": 528.0, "yearly_amount": None,
           "link": "l", "conditional": True, "note": "Seulement si..."}
    assert benefit_message(cej).startswith("✅ CEJ : jusqu'à 528 € par mois") and "ℹ️ Seulement si..." in benefit_message(cej)


@pytest.mark.parametrize("locale, intro, rsa, apply, why", [
    ("en", "November 2025", "✅ Minimum income (Revenu de solidarité active, RSA): about €560 a month", "👉 Apply",
     "• Family allowance (Allocations familiales): no dependent child"),
    ("ar", "نوفمبر 2025", "✅ الدخل الأدنى (Revenu de solidarité active، RSA): حوالي 560 € في الشهر", "👉 تقديم الطلب",
     "• المنح العائلية (Allocations familiales): لا يوجد طفل في رعايتك"),
    ("uk", "листопад 2025", "✅ Мінімальний дохід (Revenu de solidarité active, RSA): приблизно 560 € на місяць",
     "👉 Подати заяву", "• Сімейна допомога (Allocations familiales): немає дитини на утриманні"),
])
async def test_the_answer_in_the_persons_language_keeps_the_french_name(locale, intro, rsa, apply, why):
    result = await estimate_for_flow(Estimator(), flat(salary="nsp"), locale)
    first, benefit, css, energy = result["messages"]
    assert intro in first and benefit.startswith(rsa), benefit
    assert [apply, "https://example.org/rsa"] in result["rich"][0]["messages"][0]["links"]
    assert why in result["why_text"]
    assert "1,194" in energy or "1\u00a0194" in energy  # Babel's grouping per language
    assert result["label"].startswith("estimation : Revenu de solidarité active")  # the worker's card stays French
