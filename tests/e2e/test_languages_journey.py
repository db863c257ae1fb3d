"""Issue 13's journey: a person writing in English, one in Arabic, through the web chat API with the
real OpenFisca-France and the shipped places: the welcome, the rights estimate, places in Lyon,
then a named worker, every bot message in the person's language (no French sentence on the way),
benefit names with their French name in brackets. The words expected are read from the catalogues
and the flow files (what a translator edits), never typed here. Right to left in Chromium:
tests/e2e/test_webchat_access_browser.py."""

from __future__ import annotations

import re

import pytest
import yaml
from sqlalchemy import select

import directory.flow
from handoff.models import Worker
from rights.benefits import WORDS as RIGHTS_WORDS
from tests.conftest import app_client
from tests.directory.conftest import shipped_database_url, shipped_directory  # noqa: F401 (fixtures)
from tests.e2e.test_rights_flow import Lent, openfisca  # noqa: F401 (the session's real estimator)
from tests.webchat import Person, text_of, values
from words.catalogue import room

FLOWS = __import__("pathlib").Path(__file__).resolve().parents[2] / "flows" / "definitions"
DIRECTORY_WORDS = room(directory.flow.__file__)
# French words that a non-French message must not carry (the tell-tale of a text left untranslated).
FRENCH = re.compile(r"\b(vous|votre|Bonjour|Êtes-vous|quelqu'un|lieux|près de|par mois)\b")


class Speaker(Person):
    """A web chat person whose browser asks for a language (Accept-Language)."""

    def __init__(self, client, language: str, **options):
        super().__init__(client, **options)
        self.language = language

    @property
    def headers(self) -> dict:
        return {**super().headers, "Accept-Language": f"{self.language},fr;q=0.3"}


def flow_text(flow: str, step: str, field: str, language: str) -> str:
    data = yaml.safe_load((FLOWS / f"{flow}.yaml").read_text(encoding="utf-8"))
    return data["steps"][step][field][language]


def in_language(messages: list[dict], language: str) -> None:
    for message in messages:
        assert message.get("locale", "fr") == language, message
        # French names the person will meet are kept on purpose, in brackets or quotes ("(APL)", “Trouver un centre”)
        text = re.sub(r"“[^”]*”|«[^»]*»|\([^)]*\)", "", message["text"])
        assert not FRENCH.search(text), f"French left in a {language} message: {message['text']!r}"


@pytest.fixture
def shared_settings(settings_for, shipped_directory, monkeypatch):  # noqa: F811
    async def shared(sessionmaker, autoload, *departements):
        return shipped_directory

    monkeypatch.setattr(directory.flow, "load_directory", shared)
    return settings_for(directory_autoload=True, action_notice_after_seconds=60)


@pytest.mark.slow
@pytest.mark.parametrize("language", ["en", "ar"])
async def test_welcome_rights_places_and_a_named_worker_in_the_persons_language(
        shared_settings, openfisca, language):  # noqa: F811
    async with app_client(shared_settings) as client:
        rt = client.app.state.rt
        rt.rights = Lent(openfisca)
        async with rt.sessionmaker() as session, session.begin():  # Camille speaks it (routing by language)
            camille = (await session.execute(select(Worker).where(Worker.first_name == "Camille"))).scalar_one()
            camille.languages = ["fr", language]
        person = Speaker(client, language, drain_timeout=120)
        welcome = await person.send("/start")
        in_language(welcome, language)
        consent = welcome[-1]
        assert consent["text"].startswith(flow_text("welcome", "privacy", "ask", language).split("\n")[0])
        menu = await person.send(choice="oui")
        in_language(menu, language)

        # Rights: the same answers as the French journey (tests/e2e/test_rights_flow.py), by value.
        said = await person.send(choice="droits")
        for given in ({"text": "35"}, {"choice": "seul"}, {"choice": "0"}, {"choice": "tenant"},
                      {"choice": "private"}, {"text": "450"}, {"text": "44000"}, {"choice": "other"},
                      {"choice": "0"}, {"choice": "0"}):
            in_language(said, language)
            said = await person.send(**given)
        results = await person.send(choice="aucune")
        in_language(results, language)
        text = text_of(results)
        for benefit in ("rsa", "aide_logement"):
            name = RIGHTS_WORDS.text(f"benefits.{benefit}.label", language)
            assert name in text and "(" in name, name  # the French name kept in brackets
        assert "👉" in text or any(link for m in results for link in m.get("links") or [])

        # Places in Lyon for food, from the rights' offer through the menu.
        await person.send(choice="menu")
        needs = await person.send(choice="lieux")
        in_language(needs, language)
        where = await person.send(choice="se-nourrir")
        in_language(where, language)
        places = await person.send("Lyon")
        in_language(places, language)
        assert DIRECTORY_WORDS.text("needs.se-nourrir", language) in text_of(places)
        assert any(message.get("links") for message in places), "places come with links in words"

        # A named worker.
        handed = await person.send(choice="parler") if "parler" in values(places[-1]) else await person.send(
            "human" if language == "en" else "إنسان")
        in_language(handed, language)
        assert "Camille" in text_of(handed)
