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
    # Kinds of service (`service_kinds`) a need matches instead of thématiques, most wanted first:
    # data·inclusion v1 has no hygiene thématique, so "Se laver, toilettes" is matched by what the
    # place's services are (the source's own category, kept in the service's name). The thématiques
    # stay what is asked of the data·inclusion API; its answers are filtered by kind too.
    kinds: tuple[str, ...] = ()
    specific_kinds: tuple[str, ...] = ()  # the kinds that make a match specific (the others: generic)

    @property
    def label(self) -> str:
        """Its name in plain French (the CLI, the worker's summary); `name(locale)` for the person."""
        return self.name("fr")

    def name(self, locale: str | None = "fr") -> str:
        from directory.texts import WORDS

        key = f"needs.{self.id}"
        return WORDS.text(key, locale) if key in WORDS.keys() else (self.schema_label or self.id)


HYGIENE_THEMATIQUE = "equipement-et-alimentation--aide-menagere"

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
    # Hygiene (issue 14: "a shower"): showers, laundries, toilets are specific; a drinking-water
    # fountain or an accueil de jour (which often has showers) are generic. `aide-menagere` is the
    # closest thématique of data·inclusion v1 (no hygiene one): our hygiene services carry it.
    Need("se-laver", (HYGIENE_THEMATIQUE,), urgent=True,
         kinds=("douches", "laverie", "toilettes", "eau", "accueil-de-jour"),
         specific_kinds=("douches", "laverie", "toilettes")),
    Need("s-equiper", ("equipement-et-alimentation--habillement", "equipement-et-alimentation--electromenager")),
    Need("se-deplacer", ("mobilite",)),
    Need("apprendre-le-francais", ("lecture-ecriture-calcul",)),
    Need("lien-social", ("remobilisation",)),
)

NEEDS_BY_ID = {need.id: need for need in NEEDS}


class UnknownNeed(ValueError):
    pass


# -- kinds of service, from the names a place and its services carry --------------------------------

# Words (accents and case folded, see `_plain_words`) that say what a service is. "aide à la
# toilette" (personal care at home) is not a public toilet: it is removed before matching.
KIND_PATTERNS: dict[str, str] = {
    "douches": r"\bdouches?\b|\bbains? douches?\b",
    "laverie": r"\blaveries?\b|\blaver (?:son|le|votre|mon) linge\b|\blave linge\b|\bmachines? a laver\b",
    "toilettes": r"\btoilettes\b|\bsanitaires\b|\bwc\b",
    "eau": r"\bfontaines?\b|\bpoints? d eau\b|\beau potable\b",
    "accueil-de-jour": r"\baccueils? de jour\b",
}
_NOT_A_KIND = r"\baides? a la toilette\b"


@lru_cache(maxsize=1)
def _kind_patterns():
    import re

    return re.compile(_NOT_A_KIND), [(kind, re.compile(pattern)) for kind, pattern in KIND_PATTERNS.items()]


def _plain_words(text: str) -> str:
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", (text or "").casefold()).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def service_kinds(*names: str | None) -> frozenset[str]:
    """The kinds of service these names say (a place's name and its services' names):
    "Douches" -> {"douches"}, "Bains-Douches B.Delessert" -> {"douches"}, "Fontaine à eau" -> {"eau"}."""
    excluded, patterns = _kind_patterns()
    found = set()
    for name in names:
        text = excluded.sub(" ", _plain_words(name or ""))
        if text:
            found.update(kind for kind, pattern in patterns if pattern.search(text))
    return frozenset(found)


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
