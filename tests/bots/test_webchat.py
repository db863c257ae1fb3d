"""What the web chat page is given for a message (bots/webchat.py): links only https:// or tel:, a
venue as a map link, the language and direction, the worker who signed, a tap's words; stored
payloads of any shape never raise (hypothesis)."""

from __future__ import annotations

import math

from hypothesis import example, given, settings, strategies as st

from bots.base import Attachment, Choice, Link, OutboundMessage, Venue
from bots.webchat import label_of, safe_links, shown, shown_row, speaker_of, venue_of


def test_shown_carries_links_venue_locale_and_direction():
    message = OutboundMessage("مرحبًا", choices=(Choice("oui", "✅ نعم"),), locale="ar",
                              links=(Link("📞 115", "tel:115"), Link("👉 CAF", "https://www.caf.fr/"),
                                     Link("x", "javascript:alert(1)"), Link("y", "http://plain.example"),
                                     Link("", "https://empty.example")),
                              venue=Venue(48.8566, 2.3522, "Mairie", "Place de l'Hôtel de Ville"),
                              attachment=Attachment("voice", media_id=7))
    page = shown("p1", message)
    assert page["locale"] == "ar" and page["dir"] == "rtl"
    assert page["links"] == [["📞 115", "tel:115"], ["👉 CAF", "https://www.caf.fr/"]]
    assert page["venue"]["url"] == "https://www.openstreetmap.org/?mlat=48.856600&mlon=2.352200#map=17/48.856600/2.352200"
    assert page["venue"]["title"] == "Mairie" and page["choices"] == [["oui", "✅ نعم"]] and page["audio"] == 7
    assert page["speaker"] is None
    # The history says the same for the same stored message (conversations.deliver's payload shape).
    stored = shown_row("p1", "مرحبًا", {"choices": [["oui", "✅ نعم"]], "locale": "ar", "media_id": 7,
                                        "links": [[l.title, l.url] for l in message.links],
                                        "venue": {"latitude": 48.8566, "longitude": 2.3522, "title": "Mairie",
                                                  "address": "Place de l'Hôtel de Ville"}})
    assert {k: v for k, v in stored.items() if k != "request_location"} == \
        {k: v for k, v in page.items() if k != "request_location"}
    assert shown_row("p2", "Bonjour", {})["locale"] == "fr" and shown_row("p2", "Bonjour", None)["dir"] == "ltr"


def test_a_signed_reply_names_its_worker_and_nothing_else_does():
    assert speaker_of("Bonjour, je regarde.\n— Camille") == "Camille"
    assert speaker_of("Bonjour\n— Jean-Pierre") == "Jean-Pierre"
    assert speaker_of("1. Restos du cœur — Paris 11e") is None
    assert speaker_of("Texte\n— 115") is None and speaker_of(None) is None and speaker_of("") is None


def test_a_tap_is_shown_with_its_words():
    titles = {"tenant": "Locataire"}
    assert label_of({"choice": "tenant", "label": "🏠 Locataire"}, titles) == "🏠 Locataire"
    assert label_of({"choice": "tenant"}, titles) == "Locataire"
    assert label_of({"choice": "other"}, titles) == "other"
    assert label_of({"choice": "tenant", "label": " "}, titles) == "Locataire"
    assert label_of(None, titles) == "" and label_of({"label": 3}, {}) == ""


def test_a_venue_out_of_range_is_dropped():
    assert venue_of(Venue(91, 0, "x", "y")) is None and venue_of(Venue(math.nan, 0, "x", "y")) is None
    assert venue_of(Venue("a", 0, "x", "y")) is None and venue_of(None) is None


anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                        max_leaves=12)
payloads = st.one_of(anything, st.fixed_dictionaries({}, optional={
    "links": anything, "venue": anything | st.fixed_dictionaries({
        "latitude": anything, "longitude": anything, "title": anything, "address": anything}),
    "locale": anything, "choices": st.just([["a", "A"]]), "label": anything, "choice": anything}))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=60)), payloads)
def test_any_stored_payload_is_shown_safely(text, payload):
    page = shown_row("id", text, payload)
    assert all(url.startswith("https://") or url.startswith("tel:") for _, url in page["links"])
    assert page["dir"] in ("ltr", "rtl") and isinstance(page["locale"], str)
    assert page["venue"] is None or page["venue"]["url"].startswith("https://www.openstreetmap.org/")
    assert isinstance(label_of(payload if isinstance(payload, dict) else None, {}), str)


@settings(max_examples=200, deadline=None)
@example([("👉 Faire la demande", "https://a.example/\nb"), ("x", "https://"), ("📞", "tel:+33 1 23")])
@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=5))
def test_only_https_and_tel_links_with_words_pass(links):
    for title, url in safe_links([list(link) for link in links]):
        assert title.strip() and (url.startswith("https://") or url.startswith("tel:"))
        assert "\n" not in url
