"""The rights estimator in the conversation: the `check_rights` action of the "Vérifier mes droits"
flow (flows/definitions/rights.yaml).

* `answers_from_flow(flat)`: THE mapping from the flow's flat answers to `Answers` (below, and in
  docs/rights.md). Answers the flow did not ask stay at their defaults; "❓ Je ne sais pas" becomes
  None, which the estimator counts as 0 € and states in its assumptions; what the flow assumes on
  top (resources shared between adults, nationality not asked...) is returned as more assumptions.
* `estimate_for_flow(estimator, flat)`: runs the estimate (it waits while OpenFisca loads) and
  returns a JSON-able dict: the texts the flow says (`messages`, `why_text`), and the full estimate
  the worker sees on the summary card (`summary_key: "rights"`). Never raises: an estimator that is
  off, still unavailable or failing gives {"ok": False, ...} and the flow offers a worker.

Nothing here logs answers or amounts.

Flow answers (keys saved by rights.yaml) -> `Answers`:

| flow key | values | Answers |
|---|---|---|
| `age` | 16-120 | `age` |
| `couple` | `seul` / `couple` | `couple` |
| `partner_age`, `partner_activity`, `partner_disability` | as below | `partner_*` (couple only) |
| `activity` | `employee` `self_employed` `job_seeker` `student` `retired` `unable_to_work` `other` | `activity` |
| `disability` | `none` `lt50` `50_79` `ge80` | `disability` |
| `rsdae` | `oui` / `non` | `restricted_access_to_employment` |
| `children_count`, `children_ages` | `0`..`15`; a list of ages | `children` (school deduced from age by the mapping, stated) |
| `alimony` | amount, `0`, `nsp` | `alimony_received` (single parents only; `nsp` -> None) |
| `single_recent` | `oui` / `non` | `single_parent_recent` |
| `housing` | `tenant` `hosted` `owner` `homeless` | `housing` |
| `tenant_kind` | `private` `social` `furnished` `foyer` | `tenant_kind` |
| `rent` | amount, `nsp` | `rent` (`nsp` -> None) |
| `owner_loan` | amount, `0`, `nsp` | `owner_loan` (`nsp` -> 0, stated) |
| `commune` | the commune input's dict (`insee`, `name`, `value` "insee:XXXXX") | `depcom` (arrondissements of Paris, Lyon, Marseille -> the commune) |
| `salary`, `unemployment`, `pension`, `other_income` | household amount, `0`, `nsp` | per adult `resources` (below) |
| `benefits_received` | list of benefit ids (the "aucune" loop) | `benefits_received` |

Household resources by kind go to the adults they belong to: salary to the adults who work
(employee, self-employed), else to students and "other", else to the person writing; unemployment
benefit to job seekers; pension to the retired, else to those unable to work; other incomes to the
person writing. An amount shared by two adults is split in two halves (stated). A kind the flow did
not ask counts as 0 €; "je ne sais pas" gives None to each adult concerned.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import ValidationError

from directory.communes import city_of_arrondissement
from rights.answers import Answers, Child

log = logging.getLogger(__name__)

SUMMARY_KEY = "rights"
# Flow answers the card shows in readable words (the inbox does not repeat them raw).
COVERS = ["age", "couple", "partner_age", "partner_activity", "partner_disability", "children_count",
          "children_ages", "alimony", "single_recent", "housing", "tenant_kind", "rent", "owner_loan", "commune",
          "activity", "disability", "rsdae", "salary", "unemployment", "pension", "other_income",
          "benefit_pick", "benefits_received", "rights_next"]
TITLE = "💶 Estimation des droits"
ESTIMATE_TIMEOUT_SECONDS = 180.0  # covers a cold start of OpenFisca (~15 s) with a wide margin
DONT_KNOW = {"nsp", "inconnu", "je ne sais pas", "?"}

ACTIVITY_LABELS = {
    "employee": "travaille (salarié·e)", "self_employed": "travaille (indépendant·e)",
    "job_seeker": "cherche du travail", "student": "études", "retired": "retraite",
    "unable_to_work": "ne peut pas travailler (santé, handicap)", "other": "autre situation",
}
DISABILITY_LABELS = {"none": "non / ne sait pas", "lt50": "moins de 50 %", "50_79": "de 50 à 79 %",
                     "ge80": "80 % ou plus"}
HOUSING_LABELS = {"tenant": "locataire", "hosted": "hébergé·e gratuitement", "owner": "propriétaire",
                  "homeless": "sans logement fixe"}
TENANT_LABELS = {"private": "logement privé vide", "social": "logement social (HLM)",
                 "furnished": "logement meublé", "foyer": "foyer, résidence"}

# Which adults a household resource kind belongs to (first group found among the adults wins).
_OWNERS = {
    "salary": (("employee", "self_employed"), ("student", "other")),
    "unemployment": (("job_seeker",),),
    "pension": (("retired",), ("unable_to_work",)),
    "other": (),
}
_RESOURCE_KEYS = {"salary": "salary", "unemployment": "unemployment", "pension": "pension", "other": "other_income"}
_RESOURCE_LABELS = {"salary": "salaires", "unemployment": "allocations chômage", "pension": "retraites",
                    "other": "autres revenus"}


# -- flat answers -> Answers ------------------------------------------------------------------


def _dont_know(value) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in DONT_KNOW)


def _amount(value, default: float | None = 0.0) -> float | None:
    """A saved amount: a number, a button value ("0", "nsp"), or absent (not asked -> default)."""
    if value is None:
        return default
    if _dont_know(value):
        return None
    try:
        return max(float(str(value).replace(",", ".")), 0.0)
    except ValueError:
        return None


def _int(value, default: int = 0) -> int:
    try:
        return int(float(str(value).replace(",", ".")))
    except (TypeError, ValueError):
        return default


def _yes(value) -> bool:
    return value is True or str(value).lower() in ("oui", "true", "yes")


def _city(code: str) -> str:
    """The commune code every OpenFisca table knows (an arrondissement -> its city)."""
    return city_of_arrondissement(code) or code


def _depcom(commune) -> str | None:
    if isinstance(commune, dict):
        if commune.get("insee"):
            return _city(str(commune["insee"]))
        commune = str(commune.get("value") or "")
    if isinstance(commune, str) and commune.startswith("insee:"):
        return _city(commune.removeprefix("insee:").strip())
    return None


def answers_from_flow(flat: dict) -> tuple[Answers, list[str]]:
    """The flow's flat answers -> (`Answers`, assumptions the flow adds). Raises ValueError /
    pydantic.ValidationError when something essential is missing or impossible."""
    assumptions: list[str] = []
    couple = flat.get("couple") == "couple" or flat.get("couple") is True
    activities = [flat.get("activity") or "other"] + ([flat.get("partner_activity") or "other"] if couple else [])

    # Household resources by kind -> each adult's resources.
    resources = [dict(salary=0.0, unemployment=0.0, pension=0.0, other=0.0) for _ in activities]
    for kind, key in _RESOURCE_KEYS.items():
        if key not in flat:
            continue  # not asked: nobody in the household concerned, 0 €
        amount = _amount(flat.get(key))
        owners = next(([i for i, a in enumerate(activities) if a in group] for group in _OWNERS[kind]
                       if any(a in group for a in activities)), [0])
        if amount is None:
            for i in owners:
                resources[i][kind] = None
        elif amount > 0:
            for i in owners:
                resources[i][kind] = round(amount / len(owners), 2)
            if len(owners) > 1:
                assumptions.append(f"Montant des {_RESOURCE_LABELS[kind]} du foyer partagé à parts égales "
                                   "entre les deux adultes.")

    ages = [_int(age, -1) for age in flat.get("children_ages") or []] if _int(flat.get("children_count")) > 0 else []
    count = _int(flat.get("children_count"))
    if ages and len(ages) != count:
        assumptions.append(f"{count} enfant(s) annoncé(s), {len(ages)} âge(s) donné(s) : les âges donnés sont retenus.")
    children = [Child(age=age) for age in ages]
    single_parent = bool(children) and not couple

    housing = flat.get("housing") or "tenant"
    rent = _amount(flat.get("rent"), default=None) if housing == "tenant" else 0.0
    owner_loan = _amount(flat.get("owner_loan")) if housing == "owner" else 0.0
    if housing == "owner" and owner_loan is None:
        assumptions.append("Mensualité du prêt immobilier inconnue : comptée à 0 €.")
        owner_loan = 0.0
    depcom = _depcom(flat.get("commune"))
    if depcom is None:
        raise ValueError("commune missing")

    answers = Answers(
        age=_int(flat.get("age"), -1),
        activity=activities[0],
        disability=flat.get("disability") or "none",
        restricted_access_to_employment=_yes(flat.get("rsdae")),
        resources=resources[0],
        couple=couple,
        partner_age=_int(flat.get("partner_age"), -1) if couple else None,
        partner_activity=activities[1] if couple else "other",
        partner_disability=(flat.get("partner_disability") or "none") if couple else "none",
        partner_resources=resources[1] if couple else {},
        children=children,
        single_parent_recent=single_parent and _yes(flat.get("single_recent")),
        alimony_received=_amount(flat.get("alimony")) if single_parent else 0.0,
        housing=housing,
        tenant_kind=flat.get("tenant_kind") or "private",
        rent=rent,
        owner_loan=owner_loan,
        depcom=depcom,
        benefits_received=[b for b in flat.get("benefits_received") or [] if b not in ("aucune", "fini")],
    )
    assumptions.append("Nationalité française, ou titre de séjour depuis plus de 5 ans (question non posée).")
    if housing == "hosted":
        assumptions.append("Hébergé·e sans participer aux frais du logement (question non posée).")
    return answers, assumptions


# -- texts ------------------------------------------------------------------------------------


def euros(amount: float, locale: str | None = "fr") -> str:
    """1234.5 -> '1 234,50 €', 640.0 -> '640 €' (French; Babel's formatting for the others)."""
    from rights.results import euros as formatted

    return formatted(amount, locale)


def month_label(reference_month: str, locale: str | None = "fr") -> str:
    """"2025-11" -> "novembre 2025" ("November 2025", "листопад 2025")."""
    from datetime import date

    from babel.dates import format_date

    from words.catalogue import language_of

    year, month = reference_month.split("-")
    return format_date(date(int(year), int(month), 1), "LLLL y", locale=language_of(locale))


def _w(key: str, locale: str | None, **values) -> str:
    from rights.benefits import WORDS

    return WORDS.text(key, locale, **values)


def _benefit(benefit_id: str):
    from rights.benefits import benefit_texts

    return benefit_texts().get(benefit_id)


def amount_text(benefit: dict, locale: str | None = "fr") -> str:
    """How much, in plain words: 'environ 560 € par mois', 'gratuite', '194 € par an'."""
    if benefit["id"] == "css":
        if benefit.get("participation"):
            return _w("result.css_participation", locale, amount=euros(benefit["participation"], locale))
        return _w("result.css_free", locale)
    if benefit.get("yearly_amount"):
        return _w("result.about_year", locale, amount=euros(benefit["yearly_amount"], locale))
    key = "result.up_to_month" if benefit.get("conditional") else "result.about_month"
    return _w(key, locale, amount=euros(benefit["monthly_amount"] or 0, locale))


def benefit_message(benefit: dict, locale: str | None = "fr") -> str:
    """One benefit in words only: its name (French name kept in brackets in other languages), how
    much, what it is, its note. Where to apply is the "👉 Faire la demande" link (benefit_links)."""
    from words.catalogue import language_of

    text = _benefit(benefit["id"])
    label = benefit["label"] if text is None or language_of(locale) == "fr" else text.label_in(locale)
    lines = [_w("result.benefit_line", locale, label=label, amount=amount_text(benefit, locale))]
    if benefit.get("already_received"):
        lines[0] = _w("result.already", locale, line=lines[0])
    french = language_of(locale) == "fr" or text is None  # the estimate's own words are French
    lines.append(benefit["description"] if french else text.description_in(locale))
    note = benefit.get("note") if french else text.note_in(locale)
    if note and benefit["id"] != "css":  # the CSS note is its amount text
        lines.append(_w("result.note", locale, note=note))
    return "\n".join(lines)


def benefit_links(benefit: dict, locale: str | None = "fr") -> list[list[str]]:
    """[["👉 Faire la demande", <the benefit's official page>]] (the outbox payload's shape)."""
    link = benefit.get("link") or (_benefit(benefit["id"]).link if _benefit(benefit["id"]) else None)
    return [[_w("result.apply", locale), link]] if link and link.startswith("https://") else []


def chat_messages(estimate: dict, dont_know: bool, locale: str | None = "fr") -> list[str]:
    """What the person reads: an introduction, one message per benefit."""
    benefits = estimate["benefits"]
    if not benefits:
        return [_w("result.none", locale)]
    intro = _w("result.intro", locale, month=month_label(estimate["reference_month"], locale))
    if estimate.get("monthly_total"):
        intro += "\n" + _w("result.total", locale, amount=euros(estimate["monthly_total"], locale))
    if dont_know:
        intro += "\n" + _w("result.dont_know", locale)
    return [intro] + [benefit_message(b, locale) for b in benefits]


def rich_messages(estimate: dict, messages: list[str], locale: str | None = "fr") -> list[dict]:
    """How the chat messages go out (conversations/actions.py): each benefit's with its link."""
    rich = []
    for benefit, text in zip(estimate["benefits"], messages[1:]):
        links = benefit_links(benefit, locale)
        if links:
            rich.append({"says": text, "messages": [{"text": text, "links": links}]})
    return rich


def _reason_key(french: str | None) -> str | None:
    from rights.benefits import _load

    return next((key for key, text in _load()[1].items() if text == french), None)


def why_text(estimate: dict, locale: str | None = "fr") -> str:
    from rights.benefits import reason

    zeros = estimate["zero_benefits"]
    if not zeros:
        return _w("result.why_none", locale)
    lines = [_w("result.why_heading", locale)]
    for zero in zeros:
        text = _benefit(zero["id"])
        label = text.label_in(locale) if text else zero["label"]
        key = zero.get("why_key") or _reason_key(zero.get("why"))  # estimates stored before why_key
        why = reason(key, locale) if key else zero["why"]
        lines.append(_w("result.why_line", locale, label=label, why=why))
    return "\n".join(lines)


def short_label(estimate: dict) -> str:
    """One line for the inbox timeline."""
    parts = []
    for b in estimate["benefits"]:
        if b["id"] == "css":
            parts.append("CSS " + ("avec participation" if b.get("participation") else "gratuite"))
        elif b.get("yearly_amount"):
            parts.append(f"{b['label'].split(' (')[0]} {euros(b['yearly_amount'])}/an")
        else:
            parts.append(f"{b['label'].split(' (')[0]} {euros(b['monthly_amount'] or 0)}/mois")
    return "estimation : " + (", ".join(parts) if parts else "aucune aide trouvée")


def readable_answers(flat: dict, answers: Answers | None) -> list[list[str]]:
    """[label, value] pairs in French for the worker's card (what the person said)."""
    rows: list[list[str]] = []

    def add(label: str, value) -> None:
        if value is not None and value != "":
            rows.append([label, str(value)])

    def money(key: str) -> str | None:
        if key not in flat:
            return None
        value = flat[key]
        if _dont_know(value):
            return "ne sait pas"
        amount = _amount(value)
        return "aucun" if not amount else euros(amount) + " / mois"

    add("Âge", f"{flat['age']} ans" if "age" in flat else None)
    couple = flat.get("couple") == "couple"
    add("Foyer", "en couple" if couple else ("seul·e" if "couple" in flat else None))
    if couple:
        add("Âge du conjoint", f"{flat.get('partner_age')} ans")
    add("Activité", ACTIVITY_LABELS.get(flat.get("activity")))
    add("Taux d'incapacité", DISABILITY_LABELS.get(flat.get("disability")) if "disability" in flat else None)
    if "rsdae" in flat:
        add("Restriction d'accès à l'emploi (RSDAE)", "oui" if _yes(flat["rsdae"]) else "non")
    if couple:
        add("Activité du conjoint", ACTIVITY_LABELS.get(flat.get("partner_activity")))
        if "partner_disability" in flat:
            add("Taux d'incapacité du conjoint", DISABILITY_LABELS.get(flat.get("partner_disability")))
    count = _int(flat.get("children_count"))
    add("Enfants", count if "children_count" in flat else None)
    if count and flat.get("children_ages"):
        add("Âges des enfants", ", ".join(str(a) for a in flat["children_ages"]) + " ans")
    add("Pension alimentaire reçue", money("alimony"))
    if "single_recent" in flat:
        add("Seul·e avec les enfants depuis moins de 18 mois", "oui" if _yes(flat["single_recent"]) else "non")
    add("Logement", HOUSING_LABELS.get(flat.get("housing")))
    add("Type de location", TENANT_LABELS.get(flat.get("tenant_kind")) if flat.get("housing") == "tenant" else None)
    if flat.get("housing") == "tenant":
        add("Loyer hors charges", money("rent"))
    if flat.get("housing") == "owner":
        add("Prêt immobilier", money("owner_loan"))
    commune = flat.get("commune")
    if isinstance(commune, dict):
        add("Commune", f"{commune.get('label') or commune.get('name')} — INSEE {_depcom(commune)}")
    add("Salaires du foyer", money("salary"))
    add("Allocations chômage", money("unemployment"))
    add("Retraites", money("pension"))
    add("Autres revenus", money("other_income"))
    if "benefits_received" in flat:
        received = [b for b in flat.get("benefits_received") or [] if b not in ("aucune", "fini")]
        from rights.benefits import benefit_texts

        texts = benefit_texts()
        add("Aides déjà reçues", ", ".join(texts[b].label if b in texts else b for b in received) or "aucune")
    return rows


# -- the action ---------------------------------------------------------------------------------


def unavailable(flat: dict, reason: str) -> dict:
    return {"summary_key": SUMMARY_KEY, "title": TITLE, "ok": False, "reason": reason, "covers": COVERS,
            "label": "estimation impossible", "answers_readable": readable_answers(flat, None),
            "messages": [], "why_text": "", "benefits": [], "zero_benefits": [], "assumptions": []}


async def estimate_for_flow(estimator, flat: dict, locale: str | None = "fr") -> dict:
    """The `check_rights` action: flat flow answers -> texts for the chat (in `locale`, with the
    "👉 Faire la demande" links in `rich`) + the estimate for the worker (French)."""
    if estimator is None:
        return unavailable(flat, "off")
    try:
        answers, flow_assumptions = answers_from_flow(flat)
    except (ValueError, ValidationError) as error:
        log.warning("rights: flow answers could not be mapped (%s)", type(error).__name__)
        return unavailable(flat, "answers")
    started = time.perf_counter()
    try:
        estimate = await asyncio.wait_for(estimator.estimate(answers), ESTIMATE_TIMEOUT_SECONDS)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # never crash the conversation: the flow offers a worker
        log.warning("rights: estimate failed (%s)", type(error).__name__)
        return unavailable(flat, "failed")
    seconds = time.perf_counter() - started
    dont_know = any(_dont_know(flat.get(key)) for key in ("salary", "unemployment", "pension", "other_income",
                                                             "alimony", "rent", "owner_loan") if key in flat)
    assumptions = list(estimate.get("assumptions") or []) + flow_assumptions
    return {
        "summary_key": SUMMARY_KEY,
        "title": TITLE,
        "ok": True,
        "covers": COVERS,
        "label": short_label(estimate),  # one line for the inbox timeline
        "messages": (messages := chat_messages(estimate, dont_know, locale)),
        "rich": rich_messages(estimate, messages, locale),
        "locale": locale or "fr",
        "found": bool(estimate["benefits"]),
        "has_zeros": bool(estimate["zero_benefits"]),
        "why_text": why_text(estimate, locale),
        "answers_readable": readable_answers(flat, answers),
        "assumptions": assumptions,
        "benefits": estimate["benefits"],
        "zero_benefits": estimate["zero_benefits"],
        "monthly_total": estimate.get("monthly_total"),
        "reference_month": estimate["reference_month"],
        "reference_month_label": month_label(estimate["reference_month"]),
        "legislation_year": estimate["legislation_year"],
        "computed_at": estimate["computed_at"],
        "openfisca_france_version": estimate.get("openfisca_france_version"),
        "disclaimer": estimate.get("disclaimer"),
        "answers": estimate.get("answers"),
        "seconds": round(seconds, 2),
    }
