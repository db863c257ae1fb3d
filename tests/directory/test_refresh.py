"""Imports bump the directory revision; a LiveDirectory reloads its places when it changed.

Real databases (a fresh SQLite file, and PostgreSQL when ALLERVERS_TEST_POSTGRES_URL is set), the
real importer and the real loader: nothing of ours is replaced.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text

from directory.flow import LiveDirectory, places_for_flow
from directory.importer import (
    ImportFileError,
    bump_revision,
    import_files,
    read_revision,
)
from tests.conftest import eventually
from tests.directory.test_importer import service, structure, write_jsonl

FOOD = {"need": "se-nourrir", "where": "Rezé"}


def food_place(id_, name):
    return [structure(id_, nom=name), service(f"{id_}-colis", id_)]


def names(result) -> list[str]:
    return [place["name"] for place in result["places"]]


async def test_an_import_bumps_the_revision_a_broken_or_empty_one_does_not(sessionmaker, tmp_path):
    assert await read_revision(sessionmaker) == 0  # the migration's row

    report = await import_files(sessionmaker, [write_jsonl(tmp_path / "a.jsonl", food_place(1, "Épicerie A"))],
                                progress=False)
    assert report.revision == 1 and await read_revision(sessionmaker) == 1

    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(ImportFileError):
        await import_files(sessionmaker, [tmp_path / "a.jsonl", broken], progress=False)
    assert await read_revision(sessionmaker) == 1

    rejected = await import_files(sessionmaker, [write_jsonl(tmp_path / "bad.jsonl", [structure(2, nom="ab")])],
                                  progress=False)
    assert rejected.rejected and rejected.revision is None  # nothing written: nothing to reload
    assert await read_revision(sessionmaker) == 1

    again = await import_files(sessionmaker, [tmp_path / "a.jsonl"], progress=False)  # an update counts too
    assert again.revision == 2 and await read_revision(sessionmaker) == 2


async def test_concurrent_bumps_are_all_counted(sessionmaker):
    async def bump():
        async with sessionmaker() as session, session.begin():
            await bump_revision(session)

    await asyncio.gather(*(bump() for _ in range(5)))
    assert await read_revision(sessionmaker) == 5


async def test_reload_swaps_in_a_new_directory_and_the_old_one_keeps_answering(sessionmaker, tmp_path):
    await import_files(sessionmaker, [write_jsonl(tmp_path / "a.jsonl", food_place(1, "Épicerie A"))], progress=False)
    live = LiveDirectory()
    await live.load(sessionmaker, False)
    assert live.ready and live.revision == 1
    assert names(await places_for_flow(live, FOOD, {})) == ["Épicerie A"]
    assert await live.refresh_once(sessionmaker) is False  # unchanged: nothing rebuilt

    old = live.directory
    await import_files(sessionmaker, [write_jsonl(tmp_path / "b.jsonl", food_place(2, "Épicerie B"))], progress=False)
    assert await live.refresh_once(sessionmaker) is True
    assert live.directory is not old and live.revision == 2 and live.reloads == 1
    assert sorted(names(await places_for_flow(live, FOOD, {}))) == ["Épicerie A", "Épicerie B"]
    # A search that began with the old Directory finishes on it.
    assert [card.name for card in old.find("Rezé", "se-nourrir").places] == ["Épicerie A"]


async def test_a_failed_reload_keeps_the_places_logs_no_data_and_is_retried(sessionmaker, tmp_path, caplog):
    await import_files(sessionmaker, [write_jsonl(tmp_path / "a.jsonl", food_place(1, "Épicerie A"))], progress=False)
    live = LiveDirectory()
    await live.load(sessionmaker, False)
    loaded = live.directory
    await import_files(sessionmaker, [write_jsonl(tmp_path / "b.jsonl", food_place(2, "Épicerie B"))], progress=False)

    async with sessionmaker() as session, session.begin():  # the places cannot be read for a while
        await session.execute(text("ALTER TABLE directory_services RENAME TO directory_services_away"))
    with caplog.at_level(logging.INFO, logger="directory.flow"):
        assert await live.refresh_once(sessionmaker) is False
    failures = [r for r in caplog.records if "directory reload failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
    assert "Épicerie" not in caplog.text and "directory_services" not in caplog.text  # its type only
    assert live.directory is loaded and live.revision == 1 and not live.failed
    assert names(await places_for_flow(live, FOOD, {})) == ["Épicerie A"]

    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE directory_services_away RENAME TO directory_services"))
    assert await live.refresh_once(sessionmaker) is True  # the next poll tries again
    assert live.revision == 2 and sorted(names(await places_for_flow(live, FOOD, {}))) == ["Épicerie A", "Épicerie B"]


async def test_a_failed_first_load_is_retried_by_the_refresh(sessionmaker, tmp_path):
    await import_files(sessionmaker, [write_jsonl(tmp_path / "a.jsonl", food_place(1, "Épicerie A"))], progress=False)
    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE directory_services RENAME TO directory_services_away"))
    live = LiveDirectory()
    await live.load(sessionmaker, True)  # the retry runs the first-run import too (here: places exist)
    assert live.failed and (await places_for_flow(live, FOOD, {}))["ok"] is False

    async with sessionmaker() as session, session.begin():
        await session.execute(text("ALTER TABLE directory_services_away RENAME TO directory_services"))
    assert await live.refresh_once(sessionmaker) is True
    assert not live.failed and names(await places_for_flow(live, FOOD, {})) == ["Épicerie A"]


async def test_the_polling_task_reloads_after_an_import_and_stops_cleanly(sessionmaker, tmp_path):
    live = LiveDirectory()
    assert live.start_refresh(sessionmaker, 0) is None  # 0: never polls
    task = live.start_refresh(sessionmaker, 0.05)
    await live.load(sessionmaker, False)
    assert (await places_for_flow(live, FOOD, {}))["found"] is False

    await import_files(sessionmaker, [write_jsonl(tmp_path / "a.jsonl", food_place(1, "Épicerie A"))], progress=False)
    await eventually(lambda: live.reloads == 1, timeout=30)
    assert names(await places_for_flow(live, FOOD, {})) == ["Épicerie A"]

    await asyncio.sleep(0.2)  # more polls, nothing changed: no rebuild
    assert live.reloads == 1
    await live.close()
    assert task.done() and task.cancelled()
    await live.close()  # twice is fine


def test_the_setting_defaults_to_a_minute_and_refuses_negative_values(monkeypatch):
    from pydantic import ValidationError

    from kernel.settings import Settings

    assert Settings(_env_file=None).directory_refresh_seconds == 60
    monkeypatch.setenv("ALLERVERS_DIRECTORY_REFRESH_SECONDS", "0.2")
    assert Settings(_env_file=None).directory_refresh_seconds == 0.2
    with pytest.raises(ValidationError):
        Settings(_env_file=None, directory_refresh_seconds=-1)
