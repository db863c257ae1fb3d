"""Every catalogue complete in every language, with the same placeholders; the language helpers."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from words.catalogue import LANGUAGES, SOURCE, Catalogue, direction, language_of, negotiate, own_name

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = sorted(path.parent for path in ROOT.glob("*/words/fr.yaml"))


def _placeholders(value) -> set[str]:
    if isinstance(value, str):
        return {name for _, name, _, _ in string.Formatter().parse(value) if name}
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    return set()


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.parent.name)
def test_every_language_has_every_string(folder):
    catalogue = Catalogue(folder)
    missing = {language: keys for language, keys in catalogue.missing().items() if keys}
    assert not missing, f"{folder}: strings missing (French is shown instead): {missing}"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.parent.name)
def test_translations_keep_the_placeholders_and_say_they_need_review(folder):
    catalogue = Catalogue(folder)
    for language in LANGUAGES:
        if language == SOURCE or language not in catalogue.languages:
            continue
        for key, value in catalogue.languages[language].items():
            source = catalogue.languages[SOURCE].get(key)
            assert source is not None, f"{folder}/{language}.yaml: {key} is not in the French source"
            assert _placeholders(value) == _placeholders(source), f"{folder}/{language}.yaml: {key}"
        import yaml
        head = yaml.safe_load((folder / f"{language}.yaml").read_text(encoding="utf-8"))
        assert "_review" in head, f"{folder}/{language}.yaml: say whether a native speaker reviewed it"


def test_the_language_helpers():
    assert negotiate("ar-MA,ar;q=0.9,fr;q=0.8") == "ar"
    assert negotiate("de-DE,de;q=0.9") is None
    assert negotiate("de-DE,uk;q=0.3,en;q=0.5") == "en"
    assert language_of("en-GB") == "en" and language_of("pt-BR") == "fr" and language_of(None) == "fr"
    assert direction("ar") == "rtl" and direction("uk") == "ltr"
    assert [own_name(code) for code in LANGUAGES] == ["Français", "English", "العربية", "Українська"]


@given(st.text(max_size=600))
def test_hostile_accept_language_never_raises(header):
    assert negotiate(header) in (None, *LANGUAGES)
    assert language_of(header) in LANGUAGES
