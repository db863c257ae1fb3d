"""The console's place form: what an admin types -> data·inclusion records, written by the importer.

`PlaceForm.read(form)` takes the posted fields; `check(communes)` validates them (errors in French,
by field) and resolves the commune; `records(owner)` gives one structure and one service that
`directory.importer.import_records` validates with data-inclusion-schema and writes (the same code
path as every import: the same checks, the directory revision bumped in the same transaction).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import date

from admin.directory_hours import HoursForm, build, rows_of

POSITION_EXACT = "exacte"
POSITION_CENTRE = "centre"
SERVICE_SUFFIX = "--accueil"
MAX_POSITION_KM = 30.0  # a typed position this far from every commune centre is a typo

_COORDINATES = re.compile(r"^\s*(-?\d{1,2}(?:[.,]\d+)?)\s*[,; ]\s*(-?\d{1,3}(?:[.,]\d+)?)\s*$")
_PHONE_CHARACTERS = re.compile(r"^[0-9+ .()\-]{6,30}$")


@dataclass(slots=True)
class PlaceForm:
    id: str = ""  # the stored id when editing ("organisation:<slug>--..."), "" for a new place
    corrects: str = ""  # the shared place this one corrects (a new correction)
    nom: str = ""
    thematiques: list[str] = field(default_factory=list)
    adresse: str = ""
    where: str = ""  # postcode or commune name, as typed
    code_insee: str = ""  # the commune chosen (after a choice, or resolved)
    position: str = POSITION_CENTRE
    coordinates: str = ""  # "47.18, -1.55"
    telephone: str = ""
    site_web: str = ""
    description: str = ""
    hours: HoursForm = field(default_factory=HoursForm)
    # Filled by check():
    errors: dict[str, list[str]] = field(default_factory=dict)
    commune: object = None
    candidates: list = field(default_factory=list)
    code_postal: str = ""
    latitude: float | None = None
    longitude: float | None = None
    horaires: str = ""

    @classmethod
    def read(cls, form) -> "PlaceForm":
        text = lambda name, limit=300: str(form.get(name) or "").strip()[:limit]  # noqa: E731
        return cls(
            id=text("id", 400), corrects=text("corrects", 400), nom=text("nom", 200),
            thematiques=[str(value) for value in form.getlist("thematiques")][:80],
            adresse=text("adresse"), where=text("commune", 120), code_insee=text("code_insee", 5),
            position=text("position", 20) or POSITION_CENTRE, coordinates=text("coordonnees", 60),
            telephone=text("telephone", 40), site_web=text("site_web", 300),
            description=text("description", 2000), hours=HoursForm.from_form(form),
        )

    @classmethod
    def of_place(cls, structure, services, *, corrects: str = "") -> "PlaceForm":
        """A stored place (its structure and services) as the form shows it."""
        thematiques = sorted({value for service in services for value in (service.thematiques or [])})
        described = structure.description or next((s.description for s in services if s.description), "")
        exact = structure.latitude is not None
        return cls(
            id="" if corrects else structure.id, corrects=corrects, nom=structure.nom, thematiques=thematiques,
            adresse=structure.adresse or "", where=structure.code_postal or structure.commune or "",
            code_insee=structure.code_insee or "", position=POSITION_EXACT if exact else POSITION_CENTRE,
            coordinates=f"{structure.latitude}, {structure.longitude}" if exact else "",
            telephone=structure.telephone or "", site_web=structure.site_web or "",
            description=described or "",
            hours=rows_of(structure.horaires_accueil or next((s.horaires_accueil for s in services
                                                              if s.horaires_accueil), None)),
        )

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def check(self, communes) -> bool:
        """Validate and resolve; True when the place can be written."""
        from directory.needs import all_thematiques

        if not 3 <= len(self.nom) <= 150:
            self.error("nom", "Le nom compte de 3 à 150 caractères.")
        elif self.nom.endswith(".") and not self.nom.endswith("etc."):
            self.error("nom", "Le nom ne se termine pas par un point.")
        known = set(all_thematiques())
        self.thematiques = [value for value in dict.fromkeys(self.thematiques) if value in known]
        if not self.thematiques:
            self.error("thematiques", "Choisissez au moins une thématique : c'est ainsi que le lieu est trouvé.")
        self._check_commune(communes)
        self._check_position(communes)
        if self.telephone and (not _PHONE_CHARACTERS.match(self.telephone)
                               or sum(c.isdigit() for c in self.telephone) < 4):
            self.error("telephone", "Numéro de téléphone non reconnu (exemple : 02 40 11 22 33).")
        if self.site_web and not re.match(r"^https?://[^\s/]+\.[^\s]+$", self.site_web):
            self.error("site_web", "Adresse de site non reconnue : elle commence par https://")
        if self.description and len(self.description) < 5:
            self.error("description", "La description compte au moins 5 caractères.")
        self.horaires, hours_errors = build(self.hours)
        for message in hours_errors:
            self.error("horaires", message)
        return not self.errors

    def _check_commune(self, communes) -> None:
        from directory.communes import _POSTCODE

        commune = communes.get(self.code_insee) if self.code_insee else None
        if commune is None:
            if not self.where:
                self.error("commune", "Indiquez le code postal ou le nom de la commune.")
                return
            resolution = communes.resolve(self.where)
            if resolution.commune is None:
                self.candidates = resolution.candidates
                self.error("commune", "Plusieurs communes correspondent : choisissez la bonne." if resolution.candidates
                           else "Commune introuvable : écrivez son code postal (5 chiffres) ou son nom.")
                return
            commune = resolution.commune
        self.commune, self.code_insee = commune, commune.code_insee
        typed = _POSTCODE.search(self.where or "")
        if typed and typed.group(1) in commune.postcodes:
            self.code_postal = typed.group(1)
        else:
            self.code_postal = commune.postcodes[0] if commune.postcodes else ""

    def _check_position(self, communes) -> None:
        if self.position != POSITION_EXACT:
            self.position = POSITION_CENTRE
            if self.commune is not None and not self.commune.has_position:
                self.error("position", "Cette commune n'a pas de centre connu : indiquez la position du lieu.")
            return
        match = _COORDINATES.match(self.coordinates)
        if not match:
            self.error("position", "Position non reconnue : latitude, longitude (exemple : 47.18, -1.55).")
            return
        latitude, longitude = (float(value.replace(",", ".")) for value in match.groups())
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or \
                communes.nearest(latitude, longitude, max_km=MAX_POSITION_KM) is None:
            self.error("position", "Cette position est loin de toute commune française : vérifiez-la.")
            return
        self.latitude, self.longitude = latitude, longitude

    def records(self) -> list[tuple[str, dict]]:
        """One data·inclusion structure and its one service, as the importer takes them. Ids in
        the organisation's namespace are added by the importer (owner)."""
        record_id = self.id or (f"correction--{self.corrects}" if self.corrects else f"lieu-{secrets.token_hex(4)}")
        today = date.today().isoformat()
        structure = {
            "source": "console", "id": record_id, "nom": self.nom, "date_maj": today,
            "description": self.description or None, "adresse": self.adresse or None,
            "code_postal": self.code_postal or None, "code_insee": self.code_insee or None,
            "commune": self.commune.name if self.commune is not None else None,
            # No coordinates: the finder places it at its commune's centre and says "environ".
            "latitude": self.latitude, "longitude": self.longitude,
            "telephone": self.telephone or None, "site_web": self.site_web or None,
            "horaires_accueil": self.horaires or None,
        }
        service = {
            "source": "console", "id": record_id + SERVICE_SUFFIX, "structure_id": record_id, "nom": "Accueil",
            "description": self.description if len(self.description) >= 5 else "Accueil du lieu.",
            "date_maj": today, "thematiques": self.thematiques, "horaires_accueil": self.horaires or None,
            "telephone": self.telephone or None,
        }
        return [("formulaire", {k: v for k, v in structure.items() if v is not None}),
                ("formulaire", {k: v for k, v in service.items() if v is not None})]


def thematique_groups() -> list[tuple[str, list[tuple[str, str]]]]:
    """data·inclusion's thématiques with their French labels, by catégorie: [(label, [(value, label)])]."""
    from data_inclusion.schema import v1

    groups = []
    for categorie in v1.Categorie:
        items = [(t.value, t.label) for t in v1.Thematique if t.value.startswith(categorie.value + "--")]
        if items:
            groups.append((categorie.label, items))
    return groups
