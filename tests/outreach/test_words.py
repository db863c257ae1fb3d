"""The outreach words come from outreach/words (words.catalogue): the news consent in the person's
language, its version the same in every language, French where a language lacks a key."""

from __future__ import annotations

from outreach.sources import WORDS, texts


def test_the_news_consent_is_asked_in_the_persons_language():
    french = texts("fr")["news_consent"]
    for locale, word in (("en", "news"), ("ar", "أخبار"), ("uk", "новин")):
        words = texts(locale)["news_consent"]
        assert words["ask"] != french["ask"] and word in words["ask"] + words["withdrawn"], locale
        assert words["version"] == french["version"] == "news-2026-12"  # one text version, whatever the language
        assert "stop" in words["ask"]  # the command people type is the same everywhere
    assert texts("de")["news_consent"]["ask"] == french["ask"]  # unsupported: French
    assert texts()["kinds"]["france_services"] == "France services"
    assert set(texts("uk")["campaign_buttons"]) == {"cmp:menu", "cmp:human", "cmp:stop"}
    assert WORDS.text("whatsapp_phrase", "en", name="Marché", code="ABCD2345").endswith("(ref. ABCD2345)")
