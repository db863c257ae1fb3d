"""The one place where `Answers` become an OpenFisca-France situation.

Pure Python (no OpenFisca import): the result, a `Household`, is read by the two builders of
`rights.simulation` (the plain situation dict for the naive path, numpy arrays for the fast path).

Conventions (documented for workers in docs/rights.md):

Entities
  Persons are `demandeur`, `conjoint` (when in a couple), `enfant1`, `enfant2`... in that order.
  One famille (parents: demandeur + conjoint; enfants), one foyer fiscal (both adults declarants,
  children dependants) and one ménage (personne de référence, conjoint, enfants).

Periods
  The reference month M is the current month (injectable for tests); the legislation year is M's
  year. Every answer is taken as true over the whole lookback window, the years `FIRST_YEAR`..M's
  year, given with **year keys**: OpenFisca dispatches states (booleans, enums, strings, rates) to
  each month and divides yearly amounts by 12. This covers the RSA/PPA quarter (M-3..M-1), the
  housing-aid rolling year (M-13..M-2), the N-2 tax year (family benefits, bourses, chèque énergie)
  and January lookups, with a "stable situation" assumption.
  Birth dates are the 1st of the month, `age` years and 6 months before M (ages are asked in years).

Resources (net monthly answers)
  salary        -> salaire_net; salaire_imposable = net x 1.036; salaire_de_base = net / 0.7916
                   (private non-cadre ratios measured with OpenFisca 2025). Self-employed income
                   given as "salary" is treated the same way (assumption stated).
  unemployment  -> chomage_net = chomage_brut = chomage_imposable
  pension       -> retraite_nette = retraite_brute = retraite_imposable
  other         -> prestation_compensatoire (counted by RSA, prime d'activité, CSS, AAH and ASPA)
  alimony       -> pensions_alimentaires_percues of the person writing
  None ("je ne sais pas") counts as 0 and adds a French sentence to `assumptions`.

Past benefits (required by the issue; aides-jeunes convention)
  A benefit listed in `benefits_received` counts as received: it is left to OpenFisca over the
  whole window (steady state, received at the amount OpenFisca computes). Any other counts as not
  received from M-12 to M-4 (zero), and the RSA and the CEJ allowance as not received from M-12 to
  M-1 (a CEJ only exists once signed); the last three months of the others are left to OpenFisca,
  because zeroing them gives misleading results (RSA on top of a full AAH). See `NOT_RECEIVED`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from rights.answers import Answers

FIRST_YEAR = 2020

SALARY_NET_TO_TAXABLE = 1.036
SALARY_NET_TO_GROSS = 1 / 0.7916

# Input variables that hold monthly amounts (OpenFisca divides a year value by 12).
AMOUNT_VARIABLES = {
    "salaire_net", "salaire_imposable", "salaire_de_base",
    "chomage_net", "chomage_brut", "chomage_imposable",
    "retraite_nette", "retraite_brute", "retraite_imposable",
    "prestation_compensatoire", "pensions_alimentaires_percues", "loyer",
}  # fmt: skip

# Every resource variable the answers can fill, per person (the fast path gives 0 when undeclared).
RESOURCE_VARIABLES = (
    "salaire_net", "salaire_imposable", "salaire_de_base",
    "chomage_net", "chomage_brut", "chomage_imposable",
    "retraite_nette", "retraite_brute", "retraite_imposable",
    "prestation_compensatoire", "pensions_alimentaires_percues",
)  # fmt: skip

# Past-benefits convention: benefit id -> (OpenFisca variables, first and last month offsets zeroed).
NOT_RECEIVED: dict[str, tuple[tuple[str, ...], int, int]] = {
    "rsa": (("rsa",), 1, 12),
    "cej": (("contrat_engagement_jeune",), 1, 12),
    "prime_activite": (("ppa",), 4, 12),
    "aide_logement": (("aide_logement",), 4, 12),
    "af": (("af",), 4, 12),
    "asf": (("asf",), 4, 12),
    "cf": (("cf",), 4, 12),
    "paje_base": (("paje_base",), 4, 12),
    "aah": (("aah", "caah"), 4, 12),
    "aspa": (("aspa",), 4, 12),
    "asi": (("asi",), 4, 12),
}
# Variables of NOT_RECEIVED defined on persons (the others are on the famille).
INDIVIDUAL_BENEFIT_VARIABLES = {"aah", "caah", "asi", "contrat_engagement_jeune"}

NATIONALITY_CODES = {"fr": "FR", "eu": "BE", "other": "MA"}
ACTIVITIES = {
    "employee": "actif",
    "self_employed": "actif",
    "job_seeker": "chomeur",
    "student": "etudiant",
    "retired": "retraite",
    "unable_to_work": "inactif",
    "other": "inactif",
}
INCAPACITY_RATES = {"none": 0.0, "lt50": 0.3, "50_79": 0.65, "ge80": 0.8}
SCHOOLS = {
    "maternelle": "maternelle",
    "primaire": "primaire",
    "college": "college",
    "lycee": "lycee",
    "superieur": "enseignement_superieur",
    "none": "inconnue",
}
TENANT_STATUSES = {
    "private": "locataire_vide",
    "social": "locataire_hlm",
    "furnished": "locataire_meuble",
    "foyer": "locataire_foyer",
}


@dataclass(frozen=True)
class Reference:
    """The month simulated (M) and the lookback window."""

    year: int
    month: int

    @classmethod
    def current(cls, today: date | None = None) -> Reference:
        today = today or date.today()
        return cls(today.year, today.month)

    @classmethod
    def parse(cls, text: str) -> Reference:
        """'2025-11' -> Reference(2025, 11)."""
        year, month = text.split("-")
        if not 1 <= int(month) <= 12:
            raise ValueError(f"invalid month: {text}")
        return cls(int(year), int(month))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def shifted(self, months: int) -> Reference:
        index = self.year * 12 + self.month - 1 + months
        return Reference(index // 12, index % 12 + 1)

    def months_before(self, first: int, last: int) -> list[str]:
        """'YYYY-MM' of M-first .. M-last."""
        return list(_months_before(self, first, last))

    @property
    def years(self) -> list[str]:
        return [str(year) for year in range(FIRST_YEAR, self.year + 1)]

    def birth_date(self, age: int) -> str:
        born = self.shifted(-(age * 12 + 6))
        return f"{born}-01"


@lru_cache(maxsize=256)
def _months_before(reference: Reference, first: int, last: int) -> tuple[str, ...]:
    return tuple(str(reference.shifted(-offset)) for offset in range(first, last + 1))


@dataclass
class Household:
    """Answers translated into OpenFisca variables, values constant over the window.

    Person values are monthly amounts for AMOUNT_VARIABLES, states otherwise.
    """

    person_ids: list[str]
    famille_roles: list[str]  # 'demandeur' | 'conjoint' | 'enfant'
    foyer_roles: list[str]  # 'declarant_principal' | 'conjoint' | 'personne_a_charge'
    menage_roles: list[str]  # 'personne_de_reference' | 'conjoint' | 'enfant'
    birth_dates: list[str]
    ages: list[int] = field(default_factory=list)
    person_values: dict[str, list] = field(default_factory=dict)
    famille_values: dict[str, object] = field(default_factory=dict)
    menage_values: dict[str, object] = field(default_factory=dict)
    not_received: dict[str, list[str]] = field(default_factory=dict)  # variable -> months at 0
    assumptions: list[str] = field(default_factory=list)

    @property
    def adult_count(self) -> int:
        return sum(role != "enfant" for role in self.famille_roles)


def map_answers(answers: Answers, reference: Reference) -> Household:
    """Translate the answers into a Household (see the module docstring for the conventions)."""
    adults = answers.adults()
    children = answers.children
    ids = ["demandeur"] + (["conjoint"] if answers.couple else []) + [f"enfant{i + 1}" for i in range(len(children))]
    n_adults = len(adults)
    household = Household(
        person_ids=ids,
        famille_roles=["demandeur", "conjoint"][:n_adults] + ["enfant"] * len(children),
        foyer_roles=["declarant_principal", "conjoint"][:n_adults] + ["personne_a_charge"] * len(children),
        menage_roles=["personne_de_reference", "conjoint"][:n_adults] + ["enfant"] * len(children),
        birth_dates=[reference.birth_date(person.age) for person in [*adults, *children]],
        ages=[person.age for person in [*adults, *children]],
    )
    values: dict[str, list] = {}

    def put(variable: str, index: int, value) -> None:
        column = values.setdefault(variable, [None] * len(ids))
        column[index] = value

    unknown: list[str] = []
    for index, adult in enumerate(adults):
        who = "vous" if index == 0 else "votre conjoint(e)"
        put("activite", index, ACTIVITIES[adult.activity])
        if adult.activity == "unable_to_work":
            put("inapte_travail", index, True)
        if adult.disability != "none":
            put("handicap", index, True)
            put("taux_incapacite", index, INCAPACITY_RATES[adult.disability])
            if adult.restricted_access_to_employment:
                put("aah_restriction_substantielle_durable_acces_emploi", index, True)
        put("nationalite", index, NATIONALITY_CODES[answers.nationality])
        if answers.nationality != "fr":
            put("duree_possession_titre_sejour", index, answers.residence_permit_years or 0)
        resources = adult.resources
        for kind, label in (
            ("salary", "salaire"),
            ("unemployment", "allocation chômage"),
            ("pension", "retraite"),
            ("other", "autres revenus"),
        ):
            if getattr(resources, kind) is None:
                unknown.append(f"{label} ({who})")
        salary = resources.salary or 0.0
        if salary > 0:
            put("salaire_net", index, salary)
            put("salaire_imposable", index, round(salary * SALARY_NET_TO_TAXABLE, 2))
            put("salaire_de_base", index, round(salary * SALARY_NET_TO_GROSS, 2))
            if adult.activity == "self_employed":
                household.assumptions.append(
                    "Revenus d'indépendant comptés comme un salaire net (estimation approximative)."
                )
        for amount, names in (
            (resources.unemployment, ("chomage_net", "chomage_brut", "chomage_imposable")),
            (resources.pension, ("retraite_nette", "retraite_brute", "retraite_imposable")),
            (resources.other, ("prestation_compensatoire",)),
        ):
            if amount:
                for name in names:
                    put(name, index, float(amount))
    if answers.alimony_received:
        put("pensions_alimentaires_percues", 0, float(answers.alimony_received))
    elif answers.alimony_received is None and children and not answers.couple:
        unknown.append("pension alimentaire reçue")
    if unknown:
        household.assumptions.append("Revenus inconnus, comptés à 0 € : " + ", ".join(unknown) + ".")

    guessed_school = False
    for offset, child in enumerate(children):
        index = n_adults + offset
        school = child.school or school_from_age(child.age)
        guessed_school |= child.school is None and school != "none"
        if school != "none":
            put("scolarite", index, SCHOOLS[school])
        if child.alternating_custody:
            put("garde_alternee", index, True)
    if guessed_school:
        household.assumptions.append("Scolarité des enfants déduite de leur âge quand elle n'était pas indiquée.")
    if answers.nationality != "fr" and answers.residence_permit_years is None:
        household.assumptions.append("Durée du titre de séjour inconnue : comptée à 0 an.")
    household.person_values = values

    if children and not answers.couple and answers.single_parent_recent:
        household.famille_values["rsa_isolement_recent"] = True
    _map_housing(answers, household)

    for benefit_id, (variables, first, last) in NOT_RECEIVED.items():
        if benefit_id not in answers.benefits_received:
            for variable in variables:
                household.not_received[variable] = reference.months_before(first, last)
    if answers.benefits_received:
        household.assumptions.append(
            "Aides déjà perçues (" + ", ".join(answers.benefits_received) + ") : comptées comme reçues "
            "au montant estimé ; les autres comme non perçues au cours de l'année écoulée."
        )
    else:
        household.assumptions.append("Aucune aide déclarée comme déjà perçue au cours de l'année écoulée.")
    household.assumptions.append(
        "Situation et revenus supposés identiques depuis " + str(FIRST_YEAR) + " (revenus fiscaux compris)."
    )
    return household


def _map_housing(answers: Answers, household: Household) -> None:
    menage = household.menage_values
    menage["depcom"] = answers.depcom
    if answers.housing == "tenant":
        menage["statut_occupation_logement"] = TENANT_STATUSES[answers.tenant_kind]
        if answers.rent is None:
            household.assumptions.append("Loyer inconnu : compté à 0 €, l'aide au logement n'est pas estimée.")
        elif answers.rent > 0:
            menage["loyer"] = float(answers.rent)
        if answers.flatshare:
            menage["coloc"] = True
    elif answers.housing == "owner":
        if answers.owner_loan > 0:
            menage["statut_occupation_logement"] = "primo_accedant"
            menage["loyer"] = float(answers.owner_loan)
        else:
            menage["statut_occupation_logement"] = "proprietaire"
    elif answers.housing == "hosted":
        menage["statut_occupation_logement"] = "loge_gratuitement"
        if answers.hosted_contributes:
            menage["participation_frais"] = True
    else:
        menage["statut_occupation_logement"] = "sans_domicile"


def school_from_age(age: int) -> str:
    if 3 <= age <= 5:
        return "maternelle"
    if 6 <= age <= 10:
        return "primaire"
    if 11 <= age <= 14:
        return "college"
    if 15 <= age <= 17:
        return "lycee"
    return "none"


def year_value(variable: str, monthly_value):
    """The value to give with a year key: 12 x a monthly amount, the state itself otherwise."""
    if variable in AMOUNT_VARIABLES:
        return round(float(monthly_value) * 12, 2)
    return monthly_value


def to_situation_dict(household: Household, reference: Reference) -> dict:
    """The plain OpenFisca situation (for build_from_entities): the naive path, and a readable dump."""
    years = reference.years

    def over_window(variable: str, value) -> dict:
        return {year: year_value(variable, value) for year in years}

    individus = {}
    for index, person_id in enumerate(household.person_ids):
        person = {"date_naissance": {"ETERNITY": household.birth_dates[index]}}
        for variable, column in household.person_values.items():
            if column[index] is not None:
                person[variable] = over_window(variable, column[index])
        individus[person_id] = person
    famille = {"parents": [], "enfants": []}
    foyer = {"declarants": [], "personnes_a_charge": []}
    menage = {"personne_de_reference": [], "conjoint": [], "enfants": []}
    for person_id, fam, foy, men in zip(
        household.person_ids, household.famille_roles, household.foyer_roles, household.menage_roles
    ):
        famille["enfants" if fam == "enfant" else "parents"].append(person_id)
        foyer["personnes_a_charge" if foy == "personne_a_charge" else "declarants"].append(person_id)
        menage["enfants" if men == "enfant" else men].append(person_id)
    for variable, value in household.famille_values.items():
        famille[variable] = over_window(variable, value)
    for variable, value in household.menage_values.items():
        menage[variable] = over_window(variable, value)
    for variable, months in household.not_received.items():
        zeros = dict.fromkeys(months, 0)
        if variable in INDIVIDUAL_BENEFIT_VARIABLES:
            for person in individus.values():
                person[variable] = dict(zeros)
        else:
            famille[variable] = dict(zeros)
    if not menage["conjoint"]:
        del menage["conjoint"]
    return {
        "individus": individus,
        "familles": {"famille": famille},
        "foyers_fiscaux": {"foyer_fiscal": foyer},
        "menages": {"menage": menage},
    }
