"""The answers the "Vérifier mes droits" flow collects, and small checks the flow can reuse.

`Answers` is the one input of the estimator, the same object whether it comes from the chat or from
`allervers rights estimate ANSWERS.json`. It is flat and chat-friendly: one field per question, plain
types, French-free identifiers. Amounts are **net monthly euros**; `None` on a resource means
"je ne sais pas" and becomes a stated assumption in the result (counted as 0 €).

The helpers at the bottom (`parse_amount`, `parse_whole_number`, `check_range`, `RANGES`) are pure:
they take the person's free text and return either a value or a short, kind French message to
re-ask with.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

School = Literal["maternelle", "primaire", "college", "lycee", "superieur", "none"]
Activity = Literal["employee", "self_employed", "job_seeker", "student", "retired", "unable_to_work", "other"]
DisabilityBand = Literal["none", "lt50", "50_79", "ge80"]
Housing = Literal["tenant", "hosted", "owner", "homeless"]
TenantKind = Literal["private", "social", "furnished", "foyer"]
Nationality = Literal["fr", "eu", "other"]

# Plausible ranges: (minimum, maximum) inclusive. The flow re-asks outside them.
RANGES: dict[str, tuple[float, float]] = {
    "age": (0, 120),
    "adult_age": (16, 120),
    "child_age": (0, 25),
    "rent": (0, 10_000),
    "owner_loan": (0, 10_000),
    "monthly_income": (0, 100_000),
    "alimony": (0, 10_000),
    "residence_permit_years": (0, 100),
    "children_count": (0, 15),
}

_LIMITS_MESSAGES = {
    "age": "un âge entre 0 et 120 ans",
    "adult_age": "un âge entre 16 et 120 ans",
    "child_age": "un âge entre 0 et 25 ans",
    "rent": "un loyer entre 0 et 10 000 € par mois",
    "owner_loan": "une mensualité entre 0 et 10 000 €",
    "monthly_income": "un montant mensuel entre 0 et 100 000 €",
    "alimony": "un montant mensuel entre 0 et 10 000 €",
    "residence_permit_years": "un nombre d'années entre 0 et 100",
    "children_count": "un nombre d'enfants entre 0 et 15",
}


class Resources(BaseModel):
    """Net monthly resources of one adult, by kind. 0 = none; None = "je ne sais pas" (counted as 0 €)."""

    model_config = ConfigDict(extra="forbid")

    salary: float | None = Field(0.0, description="salaire net mensuel (ou revenu d'indépendant, voir la documentation)")
    unemployment: float | None = Field(0.0, description="allocation chômage (ARE) nette mensuelle")
    pension: float | None = Field(0.0, description="retraite nette mensuelle")
    other: float | None = Field(0.0, description="autres revenus nets mensuels")

    @field_validator("salary", "unemployment", "pension", "other")
    @classmethod
    def _plausible(cls, value: float | None) -> float | None:
        return _checked(value, "monthly_income")


class Adult(BaseModel):
    """One adult of the household: the person writing, or their partner."""

    model_config = ConfigDict(extra="forbid")

    age: int = Field(description="âge en années")
    activity: Activity = "other"
    disability: DisabilityBand = Field("none", description="taux d'incapacité reconnu par la MDPH")
    restricted_access_to_employment: bool = Field(
        False, description="restriction substantielle et durable d'accès à l'emploi (RSDAE), utile si taux 50-79 %"
    )
    resources: Resources = Field(default_factory=Resources)

    @field_validator("age")
    @classmethod
    def _plausible_age(cls, value: int) -> int:
        return _checked(value, "adult_age")


class Child(BaseModel):
    """A child or young person under 25 living in the household and in the person's care."""

    model_config = ConfigDict(extra="forbid")

    age: int
    school: School | None = None
    alternating_custody: bool = False

    @field_validator("age")
    @classmethod
    def _plausible_age(cls, value: int) -> int:
        return _checked(value, "child_age")


class Answers(BaseModel):
    """Everything the estimator needs, one field per question of the flow.

    The first adult is the person writing (`age`, `activity`, `disability`, `resources`); the partner,
    when `couple` is true, is described by the `partner_*` fields.
    """

    model_config = ConfigDict(extra="forbid")

    # Person writing
    age: int = Field(description="âge de la personne, en années")
    activity: Activity = "other"
    disability: DisabilityBand = "none"
    restricted_access_to_employment: bool = False
    resources: Resources = Field(default_factory=Resources)
    nationality: Nationality = "fr"
    residence_permit_years: float | None = Field(
        None, description="années de titre de séjour (si nationalité hors UE); None = inconnu"
    )

    # Partner
    couple: bool = False
    partner_age: int | None = None
    partner_activity: Activity = "other"
    partner_disability: DisabilityBand = "none"
    partner_restricted_access_to_employment: bool = False
    partner_resources: Resources = Field(default_factory=Resources)

    # Children
    children: list[Child] = Field(default_factory=list)
    single_parent_recent: bool = Field(False, description="seul(e) avec enfant(s) depuis moins de 18 mois")
    alimony_received: float | None = Field(
        0.0, description="pension alimentaire reçue par mois; None = je ne sais pas"
    )

    # Housing
    housing: Housing = "tenant"
    tenant_kind: TenantKind = "private"
    rent: float | None = Field(0.0, description="loyer mensuel hors charges (locataire); None = je ne sais pas")
    flatshare: bool = False
    hosted_contributes: bool = Field(False, description="hébergé: participe aux frais du logement")
    owner_loan: float = Field(0.0, description="propriétaire: mensualité de prêt pour ce logement (0 = aucun)")
    depcom: str = Field(description="code INSEE de la commune (pas le code postal), ex. '44109' pour Nantes")

    # Benefits already received (ids from rights/benefits.yaml, e.g. 'rsa', 'aide_logement', 'af')
    benefits_received: list[str] = Field(default_factory=list)

    @field_validator("age")
    @classmethod
    def _plausible_age(cls, value: int) -> int:
        return _checked(value, "adult_age")

    @field_validator("partner_age")
    @classmethod
    def _plausible_partner_age(cls, value: int | None) -> int | None:
        return _checked(value, "adult_age")

    @field_validator("rent")
    @classmethod
    def _plausible_rent(cls, value: float | None) -> float | None:
        return _checked(value, "rent")

    @field_validator("owner_loan")
    @classmethod
    def _plausible_loan(cls, value: float) -> float:
        return _checked(value, "owner_loan")

    @field_validator("alimony_received")
    @classmethod
    def _plausible_alimony(cls, value: float | None) -> float | None:
        return _checked(value, "alimony")

    @field_validator("residence_permit_years")
    @classmethod
    def _plausible_years(cls, value: float | None) -> float | None:
        return _checked(value, "residence_permit_years")

    @field_validator("children")
    @classmethod
    def _plausible_children(cls, value: list[Child]) -> list[Child]:
        if len(value) > RANGES["children_count"][1]:
            raise ValueError("Merci d'indiquer " + _LIMITS_MESSAGES["children_count"] + ".")
        return value

    @field_validator("depcom")
    @classmethod
    def _insee_code(cls, value: str) -> str:
        value = value.strip().upper()
        if not re.fullmatch(r"(\d[\dAB]\d{3})", value):
            raise ValueError("Le code INSEE de la commune doit avoir 5 caractères, par exemple 44109.")
        return value

    @field_validator("benefits_received")
    @classmethod
    def _known_benefits(cls, value: list[str]) -> list[str]:
        from rights.benefits import benefit_ids

        unknown = sorted(set(value) - set(benefit_ids()))
        if unknown:
            raise ValueError(f"Aide inconnue: {', '.join(unknown)}.")
        return sorted(set(value))

    @model_validator(mode="after")
    def _partner_when_couple(self) -> Answers:
        if self.couple and self.partner_age is None:
            raise ValueError("En couple: merci d'indiquer l'âge de votre conjoint(e).")
        return self

    def adults(self) -> list[Adult]:
        """The person writing, then the partner when in a couple."""
        people = [
            Adult(
                age=self.age,
                activity=self.activity,
                disability=self.disability,
                restricted_access_to_employment=self.restricted_access_to_employment,
                resources=self.resources,
            )
        ]
        if self.couple:
            people.append(
                Adult(
                    age=self.partner_age,
                    activity=self.partner_activity,
                    disability=self.partner_disability,
                    restricted_access_to_employment=self.partner_restricted_access_to_employment,
                    resources=self.partner_resources,
                )
            )
        return people


# --- Pure validation helpers for the flow -------------------------------------------------------

_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(?:[ .]\d{3})+(?:,\d+)?$")


def parse_amount(text: str) -> tuple[float | None, str | None]:
    """Read a number written in French: "1 200 €", "1200,50", "1.200", "850 euros", "  12 ".

    Returns (value, None) or (None, short French message). Words like "mille" are not understood.
    """
    cleaned = (text or "").strip().lower()
    cleaned = cleaned.replace("\u00a0", " ").replace("\u202f", " ")
    cleaned = re.sub(r"(€|euros?|eur)\s*(par mois|/\s*mois|mensuels?)?$", "", cleaned).strip()
    cleaned = re.sub(r"\s+", " ", cleaned)
    if not cleaned:
        return None, "Je n'ai pas compris. Pouvez-vous écrire un nombre, par exemple 850 ?"
    if _GROUPED.match(cleaned):
        cleaned = cleaned.replace(" ", "").replace(".", "")
    cleaned = cleaned.replace(" ", "")
    if not _NUMBER.match(cleaned):
        return None, "Je n'ai pas compris. Pouvez-vous écrire un nombre, par exemple 850 ?"
    value = float(cleaned.replace(",", "."))
    if value < 0:
        return None, "Le montant ne peut pas être négatif. Pouvez-vous vérifier ?"
    return value, None


def parse_whole_number(text: str) -> tuple[int | None, str | None]:
    """Read a whole number (an age, a number of children): "34", "34 ans"."""
    cleaned = re.sub(r"\s*(ans?|enfants?)$", "", (text or "").strip().lower())
    value, error = parse_amount(cleaned)
    if error:
        return None, "Je n'ai pas compris. Pouvez-vous écrire un nombre entier, par exemple 34 ?"
    if value != int(value):
        return None, "Merci d'écrire un nombre entier, par exemple 34."
    return int(value), None


def check_range(kind: str, value: float) -> str | None:
    """None when `value` is plausible for `kind` (a key of RANGES), else a short French message."""
    low, high = RANGES[kind]
    if value < low or value > high:
        return f"Cela me semble inhabituel. Merci d'indiquer {_LIMITS_MESSAGES[kind]}."
    return None


def _checked(value, kind: str):
    if value is None:
        return None
    message = check_range(kind, value)
    if message:
        raise ValueError(message)
    return value
