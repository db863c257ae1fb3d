"""From raw OpenFisca values to the result the chat, the inbox card and the CLI show.

Amounts are "as paid": family benefits, prime d'activité and ARS are given by OpenFisca before the
CRDS (0.5 %) and are multiplied by 0.995 here; then floored to the step of `benefits.yaml`
(10 € for RSA, housing aid, AAH, ASPA, ASF; 1 € for the prime d'activité...). Yearly benefits
(chèque énergie, ARS, bourses, prime de Noël) are labelled "an" and never summed over months.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rights.answers import Answers
from rights.benefits import WORDS, benefit_texts, reason
from rights.mapping import Household, Reference, school_from_age

CRDS_KEPT = 0.995  # amount after CRDS = amount before x (1 - 0.5 %)

DISCLAIMER = WORDS.text("result.disclaimer")  # French: the estimate is the worker's record


def amounts(raw: dict) -> dict[str, float]:
    """Benefit id -> amount as paid, before rounding (monthly, or yearly for yearly benefits)."""
    return {
        "aide_logement": raw["aide_logement"],
        "rsa": raw["rsa"],
        "prime_activite": raw["ppa"] * CRDS_KEPT,
        "aah": raw["aah"] + raw["caah"],
        "aspa": raw["aspa"],
        "asi": raw["asi"],
        "af": raw["af"] * CRDS_KEPT,
        "asf": raw["asf"] * CRDS_KEPT,
        "cf": raw["cf"] * CRDS_KEPT,
        "paje_base": raw["paje_base"] * CRDS_KEPT,
        "cej": raw["contrat_engagement_jeune"],
        "cheque_energie": raw["cheque_energie"],
        "ars": raw["ars"] * CRDS_KEPT,
        "bourse_college": raw["bourse_college"],
        "bourse_lycee": raw["bourse_lycee"],
        "prime_noel": raw["prime_noel"],
    }


def build_result(
    answers: Answers, household: Household, reference: Reference, raw: dict, openfisca_version: str = ""
) -> dict:
    """The JSON-able estimate of one household."""
    texts = benefit_texts()
    values = amounts(raw)
    adults = answers.adults()
    benefits, zero_benefits = [], []
    for benefit_id, text in texts.items():
        entry = {
            "id": benefit_id,
            "label": text.label,
            "description": text.description,
            "monthly_amount": None,
            "yearly_amount": None,
            "period": text.period,
            "link": text.link,
            "conditional": benefit_id == "cej",
            "already_received": benefit_id in answers.benefits_received,
            "note": text.note,
        }
        if benefit_id == "css":
            if raw["cmu_c"]:
                entry["monthly_amount"] = 0.0
                entry["note"] = WORDS.text("result.css_free_note")
            elif raw["css_participation_forfaitaire"] > 0:
                cost = text.rounded(raw["css_participation_forfaitaire"])
                entry["monthly_amount"] = 0.0
                entry["participation"] = cost
                entry["note"] = WORDS.text("result.css_participation_note", amount=euros(cost))
            else:
                zero_benefits.append(_zero(benefit_id, text.label, answers, adults))
                continue
            benefits.append(entry)
            continue
        amount = text.rounded(max(values[benefit_id], 0.0))
        if amount <= 0:
            zero_benefits.append(_zero(benefit_id, text.label, answers, adults))
            continue
        if text.period == "an":
            entry["yearly_amount"] = amount
        else:
            entry["monthly_amount"] = amount
        benefits.append(entry)
    return {
        "reference_month": str(reference),
        "legislation_year": reference.year,
        "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "openfisca_france_version": openfisca_version,
        "answers": answers.model_dump(mode="json"),
        "assumptions": list(household.assumptions),
        "benefits": benefits,
        "zero_benefits": zero_benefits,
        "monthly_total": round(sum(b["monthly_amount"] or 0 for b in benefits if not b["conditional"]), 2),
        "disclaimer": DISCLAIMER,
    }


def euros(amount: float, locale: str | None = "fr") -> str:
    """An amount as the person's language writes it, with Babel's number formatting: "1 234,50 €",
    "450 €" (French), "€1,234.50" (English); whole euros without decimals."""
    from babel.numbers import format_decimal

    from words.catalogue import language_of

    whole = abs(amount - round(amount)) < 0.005
    number = format_decimal(round(amount) if whole else round(amount, 2), format="#,##0" if whole else "#,##0.00",
                            locale=language_of(locale))
    return WORDS.text("result.euros", locale, amount=number)


def _zero(benefit_id: str, label: str, answers: Answers, adults: list) -> dict:
    key = _why(benefit_id, answers, adults)
    return {"id": benefit_id, "label": label, "why": reason(key), "why_key": key}


def _why(benefit_id: str, answers: Answers, adults: list) -> str:
    """The most likely reason key for a benefit at zero (a hint for the person, not a legal ground)."""
    children = answers.children
    ages = [child.age for child in children]
    overseas = answers.depcom.startswith("97")
    earned = any((adult.resources.salary or 0) > 0 for adult in adults)
    foreign_recent = answers.nationality != "fr" and (answers.residence_permit_years or 0) < 5
    if benefit_id == "af":
        if not any(age < 20 for age in ages):
            return "no_child"
        return "not_enough_children" if sum(age < 20 for age in ages) < 2 and not overseas else "unknown"
    if benefit_id == "asf":
        if answers.couple:
            return "couple"
        if not children:
            return "no_child"
        return "alimony" if (answers.alimony_received or 0) > 0 else "unknown"
    if benefit_id == "cf":
        if not children:
            return "no_child"
        return "not_enough_children_cf" if len(children) < 3 and not overseas else "income"
    if benefit_id == "paje_base":
        return "no_young_child" if not any(age < 3 for age in ages) else "income"
    if benefit_id == "rsa":
        if all(adult.activity == "student" for adult in adults):
            return "student"
        if answers.age < 25 and not children and not (answers.couple and (answers.partner_age or 0) >= 25):
            return "too_young_rsa"
        return "residence" if foreign_recent else "income"
    if benefit_id == "prime_activite":
        if not earned:
            return "no_work_income"
        return "residence" if foreign_recent else "income"
    if benefit_id == "aide_logement":
        if answers.housing in ("hosted", "homeless"):
            return "hosted_or_homeless"
        if answers.housing == "owner" and answers.owner_loan <= 0:
            return "housing_status"
        return "income"
    if benefit_id == "aah":
        eligible = any(
            adult.disability == "ge80" or (adult.disability == "50_79" and adult.restricted_access_to_employment)
            for adult in adults
        )
        return "income" if eligible else "no_disability"
    if benefit_id == "asi":
        return "income" if any(a.disability != "none" and (a.resources.pension or 0) > 0 for a in adults) else "no_invalidity"
    if benefit_id == "aspa":
        return "income" if any(adult.age >= 62 for adult in adults) else "not_old_enough_aspa"
    if benefit_id == "cej":
        return "income" if any(16 <= person.age <= 25 for person in [*adults, *children]) else "too_old_cej"
    if benefit_id == "cheque_energie":
        if answers.housing in ("hosted", "homeless") or (
            answers.housing == "tenant" and answers.tenant_kind == "foyer"
        ):
            return "hosted_or_homeless"
        return "income"
    if benefit_id == "ars":
        return "income" if any(6 <= age <= 18 for age in ages) else "no_school_age_child"
    if benefit_id in ("bourse_college", "bourse_lycee"):
        level = "college" if benefit_id == "bourse_college" else "lycee"
        schools = [child.school or school_from_age(child.age) for child in children]
        return "income" if level in schools else "no_school_child"
    if benefit_id == "prime_noel":
        return "not_rsa"
    return "income"
