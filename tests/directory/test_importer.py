import gzip
import json

import pytest
from sqlalchemy import func, select

from directory.importer import ImportFileError, count_places, ensure_loaded, import_files, read_records
from directory.models import ORIGIN_ADMIN, ORIGIN_OPEN_DATA, Service, Structure


def structure(id_, **fields):
    record = {"source": "test", "id": f"test--{id_}", "nom": f"Lieu {id_}", "date_maj": "2026-01-15",
              "latitude": 47.18, "longitude": -1.55, "code_postal": "44400", "commune": "Rezé"}
    record.update(fields)
    return record


def service(id_, structure_id, **fields):
    record = {"source": "test", "id": f"test--{id_}", "structure_id": f"test--{structure_id}",
              "nom": "Aide alimentaire", "description": "Distribution de colis alimentaires.",
              "date_maj": "2026-01-15", "thematiques": ["equipement-et-alimentation--alimentation"]}
    record.update(fields)
    return record


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


async def rows(sessionmaker, model):
    async with sessionmaker() as session:
        return {row.id: row for row in (await session.scalars(select(model))).all()}


async def test_broken_records_are_reported_and_good_ones_kept(sessionmaker, tmp_path):
    records = [
        structure(1),
        structure(2, nom="ab"),  # too short
        structure(3, code_postal="4440"),
        structure(4, date_maj="2099-01-01"),  # in the future
        structure(5, latitude=123.0),  # out of range
        {"source": "test", "nom": "Sans identifiant", "date_maj": "2026-01-01"},
        "not an object",
        service(10, 1),
        service(11, 1, thematiques=["pas-une-thematique"]),
        service(12, 999),  # unknown structure
        structure(1),  # duplicate id
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    report = await import_files(sessionmaker, [path], progress=False)

    assert (report.structures_created, report.services_created) == (1, 1)
    reasons = {(r.record, name) for r in report.rejected for name, _ in r.errors}
    assert ("test--2", "nom") in reasons and ("test--3", "code_postal") in reasons
    assert ("test--4", "date_maj") in reasons and ("test--5", "latitude") in reasons
    assert ("enregistrement 6", "id") in reasons and ("enregistrement 7", "") in reasons
    assert ("test--11", "thematiques.0") in reasons
    assert ("test--12", "structure_id") in reasons and ("test--1", "id") in reasons
    assert len(report.rejected) == 9
    assert set(await rows(sessionmaker, Structure)) == {"test--1"}
    assert set(await rows(sessionmaker, Service)) == {"test--10"}
    assert all("Rezé" not in str(r) for r in report.rejected)  # reasons carry no field values


@pytest.mark.parametrize(
    "name, content",
    [
        ("broken.json", b'[{"source": "test", "id": "test--1",'),
        ("broken.jsonl", b'{"source": "test", "id": "test--1", "nom": "Lieu 1", "date_maj": "2026-01-15"}\nnot json\n'),
        ("broken.jsonl.gz", b"\x1f\x8b\x08\x00garbage-not-a-gzip-stream"),
        ("columns.csv", "identifiant,nom,date\nx,Lieu,2026-01-01\n".encode()),
        ("cells.csv", "source,id,nom,date_maj\ntest,test--1,Lieu 1,2026-01-15,extra\n".encode()),
        ("latin1.csv", "source,id,nom,date_maj\ntest,test--1,Lieu é,2026-01-15\n".encode("latin-1")),
        ("unknown.txt", b"hello"),
    ],
)
async def test_a_broken_file_changes_nothing(sessionmaker, tmp_path, name, content):
    good = write_jsonl(tmp_path / "good.jsonl", [structure(1), structure(2)])
    await import_files(sessionmaker, [good], progress=False)
    before = await rows(sessionmaker, Structure)

    broken = tmp_path / name
    broken.write_bytes(content)
    new = write_jsonl(tmp_path / "new.jsonl", [structure(3), structure(1, nom="Nom changé")])
    with pytest.raises(ImportFileError):
        await import_files(sessionmaker, [new, broken], progress=False)
    after = await rows(sessionmaker, Structure)
    assert set(after) == set(before) == {"test--1", "test--2"}
    assert after["test--1"].nom == "Lieu 1"


async def test_reimport_updates_without_duplicating(sessionmaker, tmp_path):
    path = write_jsonl(tmp_path / "places.jsonl", [structure(1), structure(2), service(10, 1)])
    first = await import_files(sessionmaker, [path], progress=False)
    assert (first.structures_created, first.services_created) == (2, 1)
    created_at = (await rows(sessionmaker, Structure))["test--1"].created_at

    write_jsonl(path, [structure(1, nom="France services de Rezé", telephone="02 40 00 00 00"), structure(2),
                       service(10, 1, thematiques=["sante--acces-aux-soins", "sante--sante-mentale"])])
    second = await import_files(sessionmaker, [path], progress=False)
    assert (second.structures_created, second.structures_updated) == (0, 2)
    assert (second.services_created, second.services_updated) == (0, 1)
    assert await count_places(sessionmaker) == (2, 1)
    updated = await rows(sessionmaker, Structure)
    assert updated["test--1"].nom == "France services de Rezé"
    assert updated["test--1"].telephone == "02 40 00 00 00"
    assert updated["test--1"].created_at == created_at
    assert updated["test--1"].updated_at >= created_at
    assert (await rows(sessionmaker, Service))["test--10"].thematiques == ["sante--acces-aux-soins", "sante--sante-mentale"]


async def test_admin_csv_with_list_separators(sessionmaker, tmp_path):
    structures = tmp_path / "structures.csv"
    structures.write_text(
        "source,id,nom,date_maj,adresse,code_postal,commune,latitude,longitude,telephone,horaires_accueil,reseaux_porteurs,colonne_perso\n"
        'asso-locale,asso-locale--1,Restos du Cœur de Rezé,2026-10-01,"3 rue de la Paix",44400,Rezé,47.18,-1.55,02 40 11 22 33,"Tu,Th 09:00-12:00",restos-du-coeur,x\n'
        "asso-locale,asso-locale--2,Accueil de nuit,2026-10-01,,44400,Rezé,,,,,,\n",
        encoding="utf-8",
    )
    services = tmp_path / "services.csv"
    services.write_text(
        "source;id;structure_id;nom;description;date_maj;thematiques;publics;frais\n"
        "asso-locale;asso-locale--1--colis;asso-locale--1;Colis alimentaires;Colis chaque semaine, sur inscription.;2026-10-01;"
        "equipement-et-alimentation--alimentation|equipement-et-alimentation--habillement;tous-publics;gratuit\n"
        "asso-locale;asso-locale--2--nuit;asso-locale--2;Hébergement;Quelques lits pour la nuit, appeler le 115.;2026-10-01;"
        "logement-hebergement--rechercher-une-solution-dhebergement-temporaire;;gratuit\n",
        encoding="utf-8",
    )
    report = await import_files(sessionmaker, [structures, services], origin=ORIGIN_ADMIN, progress=False)
    assert report.rejected == []
    assert (report.structures_created, report.services_created) == (2, 2)
    assert any("colonne_perso" in warning for warning in report.warnings)
    saved = await rows(sessionmaker, Structure)
    assert saved["asso-locale--1"].origin == ORIGIN_ADMIN
    assert saved["asso-locale--1"].horaires_accueil == "Tu,Th 09:00-12:00"  # not a list field: kept whole
    assert saved["asso-locale--1"].reseaux_porteurs == ["restos-du-coeur"]
    assert saved["asso-locale--2"].latitude is None
    colis = (await rows(sessionmaker, Service))["asso-locale--1--colis"]
    assert colis.thematiques == ["equipement-et-alimentation--alimentation", "equipement-et-alimentation--habillement"]
    assert colis.publics == ["tous-publics"]


async def test_first_run_loads_the_shipped_data_once(sessionmaker):
    report = await ensure_loaded(sessionmaker)
    # 9,039 France services and médiation numérique places, then (issue 14) 35,609 mairies,
    # 1,035 Entourage places (1,286 services, toilets and fountains included) and 1,453 annuaire 2019 entries.
    assert report.structures_created == 47136 and report.services_created == 47387 and not report.rejected
    assert await ensure_loaded(sessionmaker) is None
    assert await count_places(sessionmaker) == (47136, 47387)
    async with sessionmaker() as session:
        origin = await session.scalar(select(Structure.origin).limit(1))
    assert origin == ORIGIN_OPEN_DATA


async def test_an_older_entourage_import_is_brought_up_to_date(sessionmaker):
    """A deployment that imported Entourage before its hygiene services (no toilets, no fountains,
    showers untyped) gets the shipped file again at its next start: updated, nothing duplicated."""
    from sqlalchemy import delete, update

    departements = frozenset({"37"})  # Tours: Entourage's public toilets
    first = await ensure_loaded(sessionmaker, departements=departements)
    assert first is not None and not first.rejected
    complete = await count_places(sessionmaker)
    async with sessionmaker() as session, session.begin():  # what the older file had
        await session.execute(delete(Service).where(Service.source == "entourage", Service.id.like("%--c40")))
        await session.execute(update(Service).where(Service.source == "entourage").values(type=None))
    assert (await count_places(sessionmaker))[1] < complete[1]
    again = await ensure_loaded(sessionmaker, departements=departements)
    assert again is not None and again.files == ["entourage_di-v1.jsonl.gz"] and again.services_created > 0
    assert await count_places(sessionmaker) == complete
    assert await ensure_loaded(sessionmaker, departements=departements) is None  # up to date: nothing more
    async with sessionmaker() as session:
        toilets = (await session.execute(select(Service.nom, Service.type, Service.thematiques).where(
            Service.source == "entourage", Service.id.like("%--c40")))).all()
    assert toilets and all(row == ("Toilettes", "aide-materielle", ["equipement-et-alimentation--aide-menagere"])
                           for row in toilets)


async def test_a_territory_loads_only_its_places_and_every_service_keeps_its_structure(sessionmaker):
    """Settings.directory_departements: Loire-Atlantique and Corse-du-Sud only (a postcode "20…"
    stands for both Corsican départements)."""
    from directory.importer import departement_of

    report = await ensure_loaded(sessionmaker, departements=frozenset({"44", "2A"}))
    assert not report.rejected and 300 < report.structures_created < 46574 / 20
    async with sessionmaker() as session:
        structures = (await session.execute(select(Structure.id, Structure.code_insee, Structure.code_postal))).all()
        orphans = await session.scalar(select(func.count()).select_from(Service).where(
            Service.structure_id.not_in(select(Structure.id))))
    kept = {departement_of({"code_insee": insee, "code_postal": postcode}) for _, insee, postcode in structures}
    assert kept <= {"44", "2A", "20"} and {"44", "2A"} <= kept
    assert orphans == 0
    assert await ensure_loaded(sessionmaker, departements=frozenset({"44", "2A"})) is None
    assert departement_of({"code_insee": "97411"}) == "974" and departement_of({"code_postal": "2"}) is None


def test_shipped_files_validate_with_the_schema():
    """ensure_loaded trusts the shipped files: they must pass the data·inclusion schema."""
    from directory.importer import SHIPPED_FILES, ImportReport, _Parsed, validate

    parsed, report = _Parsed(), ImportReport()
    for path in SHIPPED_FILES:
        validate(path.name, read_records(path), parsed, report)
    assert report.rejected == []
    assert len(parsed.structures) == len(parsed.services) == 9039


def test_shipped_sources_validate_with_the_schema():
    """The issue 14 sources, trusted on first run too: every Entourage and annuaire record, one
    mairie in ten (the whole file was validated when built: `python -m directory.sources`)."""
    from directory.importer import SHIPPED_SOURCES, ImportReport, _Parsed, validate

    parsed, report = _Parsed(), ImportReport()
    for source, path in SHIPPED_SOURCES:
        records = read_records(path)
        if source == "dila-mairies":
            records = [pair for number, pair in enumerate(records) if number % 20 in (0, 1)]
        validate(path.name, records, parsed, report)
        assert all(record["source"] == source and record["date_maj"] for _, record in records)
    assert report.rejected == []
    assert len(parsed.structures) > 3900


def test_gzip_json_array(tmp_path):
    path = tmp_path / "places.json.gz"
    path.write_bytes(gzip.compress(json.dumps([structure(1), structure(2)]).encode()))
    assert [location for location, _ in read_records(path)] == ["enregistrement 1", "enregistrement 2"]


async def test_the_same_place_from_two_sources_is_shown_once_with_the_best_of_each(sessionmaker, tmp_path):
    """Issue 14: the same name and phone within 100 m, from two sources, is one card (the position,
    address and hours of whichever has them, both sources named); the same name and phone 2 km
    away is another place (a second branch), and so is a namesake with nothing else in common."""
    from datetime import datetime, timezone

    from directory.finder import Directory

    alpha = write_jsonl(tmp_path / "alpha.jsonl", [
        structure(1, source="alpha", id="alpha--1", nom="Épicerie solidaire du Port", telephone="02 40 00 00 01",
                  latitude=47.1800, longitude=-1.5500),
        dict(service(1, 1), source="alpha", id="alpha--1--colis", structure_id="alpha--1"),
    ])
    beta = write_jsonl(tmp_path / "beta.jsonl", [
        # 50 m north, the same phone written another way; it has the address and the hours
        structure(2, source="beta", id="beta--2", nom="EPICERIE SOLIDAIRE DU PORT", telephone="+33 2 40 00 00 01",
                  latitude=47.18045, longitude=-1.5500, adresse="3 quai de la Loire",
                  horaires_accueil="Mo-Fr 09:00-17:00", date_maj="2026-06-01"),
        dict(service(2, 2), source="beta", id="beta--2--colis", structure_id="beta--2"),
        # 2 km east: the same name and phone, another branch
        structure(3, source="beta", id="beta--3", nom="Épicerie solidaire du Port", telephone="02 40 00 00 01",
                  latitude=47.1800, longitude=-1.5236),
        dict(service(3, 3), source="beta", id="beta--3--colis", structure_id="beta--3"),
        # 30 m away, the same name, another phone and no address: not the same place
        structure(4, source="beta", id="beta--4", nom="Épicerie solidaire du Port", telephone="02 40 99 99 99",
                  latitude=47.18027, longitude=-1.5500),
        dict(service(4, 4), source="beta", id="beta--4--colis", structure_id="beta--4"),
    ])
    report = await import_files(sessionmaker, [alpha, beta], progress=False)
    assert report.structures_created == 4 and not report.rejected

    directory = await Directory.load(sessionmaker, autoload=False)
    tuesday_10_am_in_paris = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    cards = directory.find((47.1800, -1.5500), "se-nourrir", limit=10, now=tuesday_10_am_in_paris).places
    named = [card for card in cards if "picerie solidaire du port" in card.name.casefold()]
    assert len(named) == 3, [(card.name, card.distance_km, card.phone) for card in named]
    merged = [card for card in named if (card.address or "").startswith("3 quai de la Loire")]
    assert len(merged) == 1, [(card.name, card.distance_km, card.address) for card in named]
    merged = merged[0]
    assert merged.distance_km < 0.1
    assert "17 h" in merged.hours_text  # beta's hours ("ouvert jusqu'à 17 h"), alpha had none
    assert set(merged.source.replace(" ", "").split("+")) == {"alpha", "beta"}
    assert merged.date_maj == "2026-06-01"  # the newer of the two
    assert sorted(round(card.distance_km) for card in named) == [0, 0, 2]
