"""directory/flow.py: the engine's commune lookups and the find_places action's result (shipped data)."""

from __future__ import annotations

import asyncio
import json

from directory.flow import (
    LiveDirectory,
    commune_resolver,
    places_for_flow,
    position_locator,
)


def test_resolver_gives_one_commune_several_or_none(shipped_directory):
    resolve = commune_resolver(shipped_directory.communes)
    [reze] = resolve("44400")
    assert reze == {"value": "insee:44143", "label": "Rezé (44400)", "insee": "44143", "name": "Rezé",
                    "latitude": reze["latitude"], "longitude": reze["longitude"]}
    assert [c["value"] for c in resolve("reze")] == ["insee:44143"]
    assert [c["label"] for c in resolve("st nazaire")] == ["Saint-Nazaire (44600)"]
    several = resolve("44190")
    assert len(several) >= 3 and all(c["label"].endswith("(44190)") for c in several)
    assert resolve("insee:44064")[0]["name"] == "Gorges"
    assert resolve("Zzyzxville-sur-Mer") == [] and resolve("") == []


def test_resolver_accepts_communes_loaded_later(shipped_directory):
    calls = []

    def later():
        calls.append(1)
        return shipped_directory.communes

    assert commune_resolver(later)("44400")[0]["name"] == "Rezé" and calls


def test_locate_a_position_or_nothing_at_sea(shipped_directory):
    locate = position_locator(shipped_directory.communes)
    found = locate(47.19, -1.57)
    assert found["insee"] == "44143" and found["from_position"] is True and "Rezé" in found["label"]
    assert locate(46.0, -4.5) is None


async def test_result_for_the_flow_and_the_worker(shipped_directory):
    place = commune_resolver(shipped_directory.communes)("44400")[0]
    result = await places_for_flow(shipped_directory, {"need": "demarches-et-droits", "where": place, "offset": 0}, {})
    json.dumps(result)  # JSON-able (stored in the flow state and the summary)
    assert result["summary_key"] == "places" and result["ok"] and result["status"] == "places"
    assert result["commune"]["insee"] == "44143" and result["from_position"] is False
    assert result["places"][0]["name"] == "France services de Rezé" and result["radius_km"] == 10
    assert result["text"].startswith("Voici des lieux pour « Démarches et droits » près de Rezé")
    assert "voir plus" not in result["text"] and result["has_more"] and result["next_offset"] == 5
    assert result["emergency_text"] == "" and result["emergency_numbers"] == []
    assert result["label"] == "Démarches et droits : 5 lieux proposés près de Rezé, à moins de 10 km"

    more = await places_for_flow(shipped_directory, {"need": "demarches-et-droits", "where": place, "offset": 5},
                                 {"places_result": result})
    assert more["offset"] == 5 and more["text"].startswith("D'autres lieux")
    assert [p["id"] for p in more["shown"]] == [p["id"] for p in result["places"] + more["places"]]


async def test_position_emergency_and_failures(shipped_directory):
    locate = position_locator(shipped_directory.communes)
    here = {**locate(47.19, -1.57), "latitude": 47.19, "longitude": -1.57}
    night = await places_for_flow(shipped_directory, {"need": "dormir-ce-soir", "where": here}, {})
    assert night["from_position"] is True and night["emergency_numbers"][0] == "115"
    assert night["emergency_text"].split("\n")[1].startswith("📞 115")
    assert "115" not in night["text"]  # said once, first

    unknown = await places_for_flow(shipped_directory, {"need": "sante", "where": "Zzyzxville"}, {})
    assert unknown["status"] == "unknown_place" and "code postal" in unknown["text"]
    assert (await places_for_flow(shipped_directory, {"need": "telepathy", "where": "Rezé"}, {}))["ok"] is False
    assert (await places_for_flow(None, {"need": "sante", "where": "Rezé"}, {}))["ok"] is False


async def test_live_directory_waits_for_the_load_then_answers(shipped_directory, monkeypatch):
    import directory.flow

    gate = asyncio.Event()

    async def slow(sessionmaker, autoload, *departements):
        await gate.wait()
        return shipped_directory

    monkeypatch.setattr(directory.flow, "load_directory", slow)
    live = LiveDirectory()
    loading = asyncio.create_task(live.load(None, True))
    search = asyncio.create_task(places_for_flow(live, {"need": "numerique", "where": "Rezé"}, {}))
    await asyncio.sleep(0.05)
    assert not search.done() and not live.ready
    gate.set()
    assert (await search)["status"] == "places" and live.ready
    await loading

    failing = LiveDirectory()

    async def broken(sessionmaker, autoload, *departements):
        raise RuntimeError("database down")

    monkeypatch.setattr(directory.flow, "load_directory", broken)
    await failing.load(None, True)
    assert failing.failed and (await places_for_flow(failing, {"need": "sante", "where": "Rezé"}, {}))["ok"] is False
