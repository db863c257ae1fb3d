"""The needs a person picks with buttons, each mapped to data·inclusion v1 thématiques.

A need can also be given as a data·inclusion catégorie ("numerique") or thématique value
("sante--acces-aux-soins"): `resolve_need` accepts all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Need:
    """A need; its name is in directory/words (needs.<id>), French in `label`."""

    id: str
    thematiques: tuple[str, ...]  # data·inclusion values; a catégorie stands for all its thématiques
    emergency: bool = False  # show the national emergency numbers first
    urgent: bool = False  # nothing within a sensible distance: say so, give what exists, offer a worker
    numbers_only: bool = False  # answered with numbers to call, no places (pharmacie, médecin de garde)
    specific: tuple[str, ...] = ()  # thématiques that make a match specific (default: any of the need's)
    schema_label: str | None = None  # a catégorie or thématique asked as a need: data·inclusion's French label

    @property
    def label(self) -> str:
        """Its name in plain French (the CLI, the worker's summary); `name(locale)` for the person."""
        return self.name("fr")

    def name(self, locale: str | None = "fr") -> str:
        from directory.texts import WORDS

        key = f"needs.{self.id}"
        return WORDS.text(key, locale) if key in WORDS.keys() else (self.schema_label or self.id)


NEEDS: tuple[Need, ...] = (
    Need("se-nourrir", ("equipement-et-alimentation--alimentation",), urgent=True),
    Need("dormir-ce-soir", ("logement-hebergement--rechercher-une-solution-dhebergement-temporaire",),
        emergency=True,
        urgent=True,
    ),
    Need("se-loger", ("logement-hebergement",)),
    Need("sante", ("sante",)),
    # "Santé" split into what people ask (issue 14).
    Need("sante-soins", ("sante--acces-aux-soins",), urgent=True),
    Need("sante-mentale", ("sante--sante-mentale",)),
    Need("addictions", ("sante--addictions",)),
    Need("sante-garde", ("sante--acces-aux-soins",), numbers_only=True),
    Need("demarches-et-droits", ("difficultes-administratives-ou-juridiques",)),
    Need("numerique", ("numerique",)),
    Need("emploi", ("trouver-un-emploi", "preparer-sa-candidature", "choisir-un-metier", "se-former")),
    Need("famille", ("famille",)),
    Need("argent", ("difficultes-financieres",)),
    Need("violences", (
            "famille--surmonter-conflits-separation-violence",
            "difficultes-administratives-ou-juridiques--prendre-en-compte-une-problematique-judiciaire",
        ),
        emergency=True,
        urgent=True,
    ),
    Need("s-equiper", ("equipement-et-alimentation--habillement", "equipement-et-alimentation--electromenager", "equipement-et-alimentation--aide-menagere"),
    ),
    Need("se-deplacer", ("mobilite",)),
    Need("apprendre-le-francais", ("lecture-ecriture-calcul",)),
    Need("lien-social", ("remobilisation",)),
)

NEEDS_BY_ID = {need.id: need for need in NEEDS}


class UnknownNeed(ValueError):
    pass


@lru_cache(maxsize=1)
def all_thematiques() -> tuple[str, ...]:
    """The 69 data·inclusion v1 thématiques, in the schema's order (bit positions in the index)."""
    from data_inclusion.schema import v1

    return tuple(thematique.value for thematique in v1.Thematique)


@lru_cache(maxsize=1)
def all_categories() -> tuple[str, ...]:
    from data_inclusion.schema import v1

    return tuple(categorie.value for categorie in v1.Categorie)


def expand(values: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Catégories -> their thématiques; thématiques kept as they are."""
    thematiques = all_thematiques()
    found = set()
    for value in values:
        if "--" in value:
            found.add(value)
        else:
            found.update(t for t in thematiques if t.startswith(value + "--"))
    return frozenset(found)


def resolve_need(value: str | None) -> Need | None:
    """A need id, a data·inclusion catégorie or thématique -> Need; None means "any place"."""
    if value is None or value == "" or value == "tout":
        return None
    key = value.strip().lower()
    if key in NEEDS_BY_ID:
        return NEEDS_BY_ID[key]
    if key in all_categories() or key in all_thematiques():
        from data_inclusion.schema import v1

        label = v1.Categorie(key).label if "--" not in key else v1.Thematique(key).label
        return Need(key, (key,), emergency=key in EMERGENCY_THEMATIQUES, schema_label=label)
    raise UnknownNeed(value)


EMERGENCY_THEMATIQUES = {
    "logement-hebergement--rechercher-une-solution-dhebergement-temporaire",
    "famille--surmonter-conflits-separation-violence",
}
