"""The waiting message of a call step ("⏳ Je calcule…") is said only if the action makes the person
wait (ALLERVERS_ACTION_NOTICE_AFTER_SECONDS), never after the results, never once the person has
moved on, and not twice after a restart.

Through the web chat API (in-process app), on SQLite and on PostgreSQL + Redis when configured. The
rights flow with the estimator off (an instant answer: "Je n'arrive pas à faire le calcul") or
with a held fake estimator (tests/e2e/test_rights_flow.py): the real check_rights action runs.
"""

from __future__ import annotations

import asyncio
import time

from tests.conftest import app_client
from tests.e2e.test_rights_flow import (
    HeldEstimator,
    at_first_question,
    chat_app,
    go_to_estimate,
)
from tests.webchat import Person, text_of, values

NOTICE = "⏳ Je calcule… cela peut prendre quelques secondes."
FAILED = "😕 Je n'arrive pas à faire le calcul pour le moment."


async def bot_texts(person: Person) -> list[str]:
    return [m["text"] for m in await person.bot_lines()]


async def poll_new(person: Person, timeout: float = 10.0) -> list[dict]:
    """The bot's new messages, without draining (an action may be held on purpose)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        said = await person.new()
        if said:
            return said
        await asyncio.sleep(0.02)
    return []


async def test_a_quick_answer_comes_without_the_waiting_message(settings_for):
    settings = settings_for(action_notice_after_seconds=30)  # rights_backend="off": an instant answer
    async with app_client(settings) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        started = time.perf_counter()
        said = await person.send(choice="aucune")
        assert time.perf_counter() - started < 10, "the results waited for the notice delay"
        assert said[0]["text"].startswith(FAILED) and values(said[-1]) == ["parler", "menu"]
        assert not any("Je calcule" in text for text in await bot_texts(person))


async def test_with_no_delay_the_waiting_message_comes_first_then_the_results(settings_for):
    settings = settings_for(action_notice_after_seconds=0)
    async with app_client(settings) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        said = await person.send(choice="aucune")
        assert [m["text"] for m in said[:1]] == [NOTICE]
        assert len(said) == 2 and said[1]["text"].startswith(FAILED)
        assert (await bot_texts(person)).count(NOTICE) == 1


async def test_a_slow_action_gets_the_waiting_message_after_the_delay_then_the_results(settings_for):
    settings = settings_for(action_notice_after_seconds=0.3)
    held = HeldEstimator()
    async with chat_app(settings, held) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        started = time.perf_counter()
        await person.post(choice="aucune")
        await asyncio.wait_for(held.asked.wait(), 5)
        notice = await poll_new(person)
        assert [m["text"] for m in notice] == [NOTICE]
        assert time.perf_counter() - started >= 0.3

        held.release.set()
        await client.app.state.rt.drain(timeout=10)
        results = await person.new()
        assert "Revenu de solidarité active (RSA) : environ 560 € par mois" in text_of(results)
        assert NOTICE not in text_of(results)  # said once, before the results


async def test_menu_while_the_action_runs_means_no_waiting_message_afterwards(settings_for):
    delay = 2.0
    settings = settings_for(action_notice_after_seconds=delay)
    held = HeldEstimator()
    async with chat_app(settings, held) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        started = time.perf_counter()
        await person.post(choice="aucune")
        await asyncio.wait_for(held.asked.wait(), 5)
        await person.post("menu")
        menu = await poll_new(person)
        assert menu and menu[-1]["text"] == "Que voulez-vous faire ? 👇"
        assert time.perf_counter() - started < delay, "too slow to type « menu » before the delay"

        await asyncio.sleep(delay - (time.perf_counter() - started) + 0.5)  # the delay has passed
        held.release.set()
        await client.app.state.rt.drain(timeout=10)
        assert await person.new() == []  # neither the waiting message nor the old results
        assert not any("Je calcule" in text or "environ 560 €" in text for text in await bot_texts(person))


async def test_stop_while_the_action_runs_means_no_results_afterwards(settings_for):
    settings = settings_for(action_notice_after_seconds=30)
    held = HeldEstimator()
    async with chat_app(settings, held) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        await person.post(choice="aucune")
        await asyncio.wait_for(held.asked.wait(), 5)
        await person.post("stop")
        stopped = await poll_new(person)
        assert len(stopped) == 1 and stopped[0]["text"].startswith("🛑")
        held.release.set()
        await client.app.state.rt.drain(timeout=10)
        assert await person.new() == []  # "stop" is honoured: the estimate is not sent
        said = await person.send("menu")  # restarting works, from the menu, not from old results
        assert said[-1]["text"] == "Que voulez-vous faire ? 👇"
        assert not any("environ 560 €" in text for text in await bot_texts(person))


async def test_after_a_restart_the_action_runs_again_and_the_waiting_message_is_not_repeated(settings_for):
    settings = settings_for(action_notice_after_seconds=0)  # one settings: the same database twice
    held = HeldEstimator()
    async with chat_app(settings, held) as client:
        person = await at_first_question(client)
        await go_to_estimate(person)
        await person.post(choice="aucune")
        await asyncio.wait_for(held.asked.wait(), 5)
        assert [m["text"] for m in await poll_new(person)] == [NOTICE]
        token = person.token
    # The app stopped while the estimate was running (its task cancelled): start it again.
    async with app_client(settings) as client:  # estimator off: the action fails at once
        await client.app.state.rt.drain(timeout=10)
        again = Person(client, token=token)  # the same browser (its identity cookie) on the restarted app
        texts = await bot_texts(again)
        assert texts.count(NOTICE) == 1
        assert texts[-1].startswith(FAILED) and texts.index(NOTICE) < len(texts) - 1
