"""Understood by everyone: the shipped flows in four languages, the engine's own words in the
conversation's language, numbers and yes/no in words, commands and triggers in every language, and
never stuck (a person and the menu offered after two misunderstood answers; distress and long
messages offer a person at once with the emergency numbers)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from flows.definition import FlowError, _texts, language_neutral, parse_flow
from flows.definition import missing_languages as definition_missing
from flows.distress import distress_of
from flows.engine import (DistressNoticed, FlowStarted, HandoffRequested, HUMAN, MENU, Engine, Input, Said)
from flows.inputs import parse_number, parse_numbers, parse_yes_no
from flows.intents import command_of, intent_of
from flows.library import FlowLibrary
from words.catalogue import LANGUAGES

LIBRARY = FlowLibrary()
assert LIBRARY.load() == []
FLOWS = LIBRARY.flows
CONTEXT = {"organisation": "Maison Test", "retention_days": 90}


def missing_languages() -> list[str]:
    return [f"{flow.flow}.{line}" for flow in FLOWS.values() for line in definition_missing(flow)]


def test_every_flow_text_is_in_every_language():
    assert missing_languages() == []
    assert language_neutral("{{ places_result.emergency_text }}\n\n{{ places_result.text }}")
    assert not language_neutral("Et maintenant ? {{ x }}")
    gap = parse_flow("flow: g\ntitle: G\nstart: a\nsteps:\n  a:\n    end: {fr: Salut, en: Hi}\n", "g.yaml")
    assert definition_missing(gap) == ["a: ar", "a: uk"]


def test_french_texts_follow_the_plain_words_rules():
    for flow in FLOWS.values():
        for step_id, step in flow.steps.items():
            for text in _texts(step):
                french = text["fr"] if isinstance(text, dict) else text
                assert "·" not in french, (flow.flow, step_id, french)  # no point médian
    asks = [step.ask for flow in FLOWS.values() for step in flow.steps.values() if step.ask]
    for ask in asks:  # one question per message (a template's branches each count once)
        for branch in re.split(r"\{%-?\s*(?:el)?if.*?%\}|\{%-?\s*else\s*-?%\}", ask["fr"]):
            assert branch.count("?") <= 1, branch


def test_a_translated_text_needs_french_and_known_languages():
    base = "flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    end: {%s}\n"
    with pytest.raises(FlowError, match="French version"):
        parse_flow(base % 'en: "Bye"', "x.yaml")
    with pytest.raises(FlowError, match="unknown language xx"):
        parse_flow(base % 'fr: "Au revoir", xx: "?"', "x.yaml")
    assert parse_flow(base % 'fr: "Au revoir", ar: "مع السلامة"', "x.yaml").steps["a"].end["ar"]


def start(flow: str, locale: str, **kwargs):
    engine = Engine(FLOWS)
    return engine, engine.start(flow, answers={"consent": True}, locale=locale, context=CONTEXT, **kwargs)


EXPECTED = {"fr": ("Quel âge avez-vous", "J'attends"), "en": ("How old are you", "I need a number"),
            "ar": ("كم عمرك", "أنتظر رقمًا"), "uk": ("Скільки вам років", "Я чекаю число")}


@pytest.mark.parametrize("locale", LANGUAGES)
def test_the_rights_flow_speaks_the_persons_language_and_offers_a_way_out_after_two_misses(locale):
    engine, turn = start("rights", locale)
    assert EXPECTED[locale][0] in turn.said()[-1].text
    first = engine.resume(turn.state, Input(text="je sais pas"))
    assert first.said()[-1].choices == ()  # one miss: the kind re-ask only
    second = engine.resume(first.state, Input(text="je sais pas"))
    values = [value for value, _ in second.said()[-1].choices]
    assert values == [HUMAN, MENU]
    labels = dict(second.said()[-1].choices)
    assert labels[HUMAN] == {"fr": "🙋 Parler à quelqu'un", "en": "🙋 Talk to someone", "ar": "🙋 التحدث مع شخص",
                             "uk": "🙋 Розмова з людиною"}[locale]
    # the age is still understood, in words too
    answered = engine.resume(second.state, Input(text={"fr": "trente ans", "en": "thirty", "ar": "٣٠",
                                                       "uk": "тридцять"}[locale]))
    assert answered.state["answers"]["age"] == 30 and answered.state["step"] == "couple"
    # pressed, the way out hands over to a person
    helped = engine.resume(second.state, Input(choice=HUMAN))
    assert HandoffRequested("stuck") in helped.events and helped.state["waiting"] == "done"
    back = engine.resume(second.state, Input(choice=MENU))
    assert FlowStarted("menu") in back.events and back.state["flow"] == "menu"


def test_the_engine_words_are_in_the_states_language():
    engine, turn = start("menu", "en")
    # the menu has its own error text, translated
    missed = engine.resume(turn.state, Input(text="xyzzy"))
    assert missed.said()[-1].text.startswith("🤔 I did not quite understand")
    e2, t2 = start("rights", "uk")
    wrong = e2.resume(t2.state, Input(text="200"))
    assert wrong.said()[-1].text.startswith("🤔 Напишіть свій вік")
    yesno = parse_flow("flow: y\ntitle: Y\nstart: q\nsteps:\n  q:\n    ask: Oui ?\n    input: yesno\n"
                       "    save: q\n    next: e\n  e:\n    end: ok\n", "y.yaml")
    t3 = Engine({"y": yesno}).start("y", locale="ar")
    assert t3.said()[-1].choices == (("oui", "✅ نعم"), ("non", "❌ لا"))
    miss = Engine({"y": yesno}).resume(t3.state, Input(text="peut-être"))
    assert miss.said()[-1].text == "اختر إجابة بالأزرار 👇"


@pytest.mark.parametrize("typed", ["Locataire", "I rent", "مستأجر", "Орендую", "1"])
def test_a_button_label_typed_in_any_language_answers(typed):
    engine = Engine(FLOWS)
    turn = engine.start("rights", locale="fr", context=CONTEXT)
    state = {**turn.state, "step": "housing"}
    state = engine.repeat(state).state
    answered = engine.resume(state, Input(text=typed))
    assert answered.state["answers"]["housing"] == "tenant"


def test_a_number_beyond_the_buttons_is_not_a_label_in_another_language():
    engine = Engine(FLOWS)
    turn = engine.start("rights", locale="fr", context=CONTEXT)
    state = engine.repeat({**turn.state, "step": "housing"}).state
    again = engine.resume(state, Input(text="5"))  # 4 buttons: "5" is no answer
    assert "housing" not in again.state["answers"] and again.said()


@pytest.mark.parametrize("typed,value", [("oui", True), ("yes", True), ("نعم", True), ("так", True),
                                         ("non", False), ("no", False), ("لا", False), ("ні", False),
                                         ("peut-être", None)])
def test_yes_and_no_in_every_language(typed, value):
    assert parse_yes_no(typed) is value


@pytest.mark.parametrize("typed,number", [
    ("deux", 2), ("trente ans", 30), ("cinq cents euros", 500), ("mille deux cents", 1200), ("two", 2),
    ("thirty", 30), ("два", 2), ("тридцять", 30), ("тридцять чотири роки", 34), ("٣٠", 30), ("٤٥٠ يورو", 450),
    ("ثلاثون", 30), ("خمسة وثلاثون", 35), ("34 ans", 34), ("1 200 €", 1200), ("450,50", 450.5), ("je sais pas", None),
])
def test_numbers_in_words_and_digits(typed, number):
    assert parse_number(typed) == number


def test_lists_of_numbers_in_words():
    assert parse_numbers("trois, sept et douze") == [3, 7, 12]
    assert parse_numbers("три, сім") == [3, 7]
    assert parse_numbers("٣، ٧") == [3, 7]


@pytest.mark.parametrize("typed,command", [
    ("menu", "menu"), ("main menu", "menu"), ("القائمة", "menu"), ("меню", "menu"),
    ("parler à quelqu'un", "human"), ("talk to someone", "human"), ("أريد التحدث مع شخص", "human"),
    ("поговорити з людиною", "human"), ("stop", "stop"), ("توقف", "stop"), ("стоп", "stop"),
    ("unsubscribe", "stop"), ("supprimer mes données", "erase"), ("delete my data", "erase"),
    ("احذف بياناتي", "erase"), ("видалити мої дані", "erase"), ("trente ans", None),
])
def test_commands_in_every_language(typed, command):
    assert command_of(typed) == command


@pytest.mark.parametrize("typed,flow,answers", [
    ("j'ai faim", "places", {"need": "se-nourrir"}), ("jai faim", "places", {"need": "se-nourrir"}),
    ("I'm hungry", "places", {"need": "se-nourrir"}), ("أنا جائع", "places", {"need": "se-nourrir"}),
    ("я голодний", "places", {"need": "se-nourrir"}),
    ("je dors dehors", "places", {"need": "dormir-ce-soir"}),
    ("pas de logement ce soir", "places", {"need": "dormir-ce-soir"}),
    ("sleeping outside", "places", {"need": "dormir-ce-soir"}),
    ("aide CAF", "rights", {}), ("mes droits", "rights", {}), ("my rights", "rights", {}),
    ("حقوقي", "rights", {}), ("мої права", "rights", {}),
])
def test_common_phrasings_start_what_the_bot_can_do(typed, flow, answers):
    intent = intent_of(typed, FLOWS)
    assert (intent.kind, intent.flow, intent.answers) == ("flow", flow, answers)


@pytest.mark.parametrize("typed", ["loyer impayé", "j'ai reçu un avis d'expulsion", "unpaid rent", "eviction",
                                   "طرد من السكن", "виселення", "il me frappe", "x" * 300])
def test_some_phrasings_go_to_a_person(typed):
    assert intent_of(typed, FLOWS).kind == "human"


@pytest.mark.parametrize("typed", ["bonjour", "hello", "مرحبا", "привіт"])
def test_greetings_in_every_language_show_the_menu(typed):
    assert intent_of(typed, FLOWS).kind == "menu"


def test_a_trigger_with_answers_starts_on_the_need_and_says_the_115():
    intent = intent_of("je dors dehors", FLOWS)
    engine, turn = start(intent.flow, "fr", preset=intent.answers)
    assert turn.state["answers"]["need"] == "dormir-ce-soir" and turn.state["step"] == "where"
    texts = [s.text for s in turn.said()]
    assert len(texts) == 1 and "115" in texts[0]  # the need question is not said: it is answered
    engine, fed = start("places", "en", preset={"need": "se-nourrir"})
    assert fed.state["step"] == "where" and fed.said()[-1].text.startswith("📍 Where are you")
    engine, ignored = start("places", "fr", preset={"need": "not-a-need"})
    assert ignored.state["step"] == "need"  # an unknown value is not forced in


@pytest.mark.parametrize("locale,typed,kind,number", [
    ("fr", "il me frappe", "violence", "3919"), ("fr", "je suis en danger", "danger", "112"),
    ("fr", "mon enfant est en danger", "child", "119"), ("fr", "je vais dormir dehors ce soir", "street", "115"),
    ("fr", "j'ai envie de mourir", "suicide", "3114"), ("en", "he hits me", "violence", "3919"),
    ("en", "I want to die", "suicide", "3114"), ("ar", "زوجي يضربني", "violence", "3919"),
    ("ar", "طفلي في خطر", "child", "119"), ("uk", "він мене б'є", "violence", "3919"),
    ("uk", "я в небезпеці", "danger", "17"), ("uk", "сплю на вулиці", "street", "115"),
])
def test_distress_in_a_question_offers_a_person_at_once_with_the_numbers(locale, typed, kind, number):
    engine, turn = start("rights", locale)
    noticed = engine.resume(turn.state, Input(text=typed))
    assert DistressNoticed(kind) in noticed.events
    said = noticed.said()[-1]
    assert number in said.text and [v for v, _ in said.choices] == [HUMAN, MENU]
    assert noticed.state["step"] == "age" and noticed.state["waiting"] == "input"  # the answer still works
    assert engine.resume(noticed.state, Input(text="34")).state["answers"]["age"] == 34
    assert HandoffRequested("stuck") in engine.resume(noticed.state, Input(choice=HUMAN)).events


def test_a_long_message_offers_a_person_and_no_re_ask():
    story = ("Bonjour, j'ai un problème avec la CAF depuis trois mois, ils ont arrêté mon aide. " * 70)[:5480]
    engine, turn = start("rights", "fr")
    noticed = engine.resume(turn.state, Input(text=story))
    assert noticed.events[0] == DistressNoticed("long")
    said = noticed.said()
    assert len(said) == 1 and "Écrivez votre âge" not in said[0].text and "long" in said[0].text
    assert [v for v, _ in said[0].choices] == [HUMAN, MENU]


def test_a_buttons_own_words_are_not_distress():
    engine, turn = start("places", "fr")
    answered = engine.resume(turn.state, Input(text="Violences, danger"))
    assert answered.state["answers"]["need"] == "violences"
    assert not any(isinstance(e, DistressNoticed) for e in answered.events)


def test_distress_words_are_found_and_ordinary_ones_are_not():
    assert distress_of("Il me frappe tous les soirs") == "violence"
    assert distress_of("hébergement d'urgence") is None
    assert distress_of("je cherche un logement") is None
    assert distress_of(None) is None


def test_no_person_facing_french_in_the_engine_code():
    from pathlib import Path

    for path in Path(__file__).resolve().parents[2].glob("flows/*.py"):
        code = re.sub(r'"""[\s\S]*?"""|#.*', "", path.read_text(encoding="utf-8"))
        for literal in re.findall(r'"([^"\n]*)"', code):
            assert not re.search(r"[éèêàùç]|\b(?:Écrivez|Touchez|votre|vous)\b", literal), (path.name, literal)


def test_said_texts_are_never_empty_in_any_language():
    for locale in LANGUAGES:
        for flow_id in ("welcome", "menu", "places", "talk"):
            turn = Engine(FLOWS).start(flow_id, answers={"consent": True}, locale=locale,
                                       context={**CONTEXT, "attachment": "voice"})
            assert all(isinstance(s, Said) and s.text for s in turn.said())


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_any_text_is_read_without_error(typed):
    """Whatever a person types reaches these through every channel: they never raise."""
    parse_number(typed)
    parse_numbers(typed)
    parse_yes_no(typed)
    distress_of(typed)
    command_of(typed)
    intent_of(typed, FLOWS)


@hsettings(max_examples=60, deadline=None)
@given(st.text(max_size=400), st.sampled_from(LANGUAGES))
def test_any_text_at_a_question_gets_an_answer(typed, locale):
    engine, turn = start("rights", locale)
    after = engine.resume(turn.state, Input(text=typed))
    assert after.said() or after.state["step"] != "age"  # a re-ask, an offer, or the next question
