"""The pure engine: asks, validation and kind re-asks, branches, conditions, jumps, actions."""

from __future__ import annotations

import pytest

from flows.definition import FlowError, parse_flow
from flows.engine import ActionRequested, AnswerSaved, Engine, HandoffRequested, Input, Said
from flows.inputs import match_choice, parse_number
from flows.intents import command_of, intent_of

FLOW = parse_flow("""
flow: demo
title: Demo
start: age
steps:
  age:
    ask: "Quel âge avez-vous ?"
    input: number
    min: 0
    max: 120
    save: age
    error: "Un âge entre 0 et 120 ans, en chiffres 🔢"
    next: housing
  housing:
    ask: "Votre logement ?"
    buttons:
      - {value: locataire, label: "🏠 Locataire"}
      - {value: heberge, label: "🛏️ Hébergé·e"}
    save: housing
    next: rent
  rent:
    when: "housing == 'locataire'"
    ask: "Votre loyer ?"
    input: number
    min: 0
    save: rent
    next: compute
  compute:
    call: check_rights
    message: "⏳ Je calcule…"
    save: estimate
    next: result
  result:
    branch:
      - {when: "estimate.total > 0", next: good}
    else: human
  good:
    say: "Environ {{ estimate.total }} € par mois."
    next: human
  human:
    handoff: rights
""", "demo.yaml")


def engine() -> Engine:
    return Engine({"demo": FLOW})


def test_numbers_are_validated_kindly_and_the_flow_continues():
    e = engine()
    turn = e.start("demo")
    assert turn.said()[-1].text == "Quel âge avez-vous ?"
    for wrong in ("beaucoup", "140", "-3"):
        again = e.resume(turn.state, Input(text=wrong))
        assert again.said()[-1].text.startswith("Un âge entre 0 et 120 ans")
        assert again.state["step"] == "age"
    ok = e.resume(turn.state, Input(text="34 ans"))
    assert AnswerSaved("age", 34) in ok.events
    assert ok.said()[-1].choices == (("locataire", "🏠 Locataire"), ("heberge", "🛏️ Hébergé·e"))


def test_questions_that_do_not_matter_are_skipped_and_actions_resume():
    e = engine()
    state = e.resume(e.start("demo").state, Input(text="30")).state
    hosted = e.resume(state, Input(text="hebergé"))  # typed title, accent and typo tolerated
    assert hosted.state["answers"]["housing"] == "heberge"
    assert not any(s.text == "Votre loyer ?" for s in hosted.said())  # no rent question when hosted
    # The waiting message travels with the request (the runtime says it only if the action is slow)
    assert ActionRequested("check_rights", {}, "⏳ Je calcule…") in hosted.events
    assert not hosted.said()
    done = e.resume_action(hosted.state, {"total": 420})
    assert done.said()[-1].text == "Environ 420 € par mois."
    assert HandoffRequested("rights") in done.events
    nothing = e.resume_action(hosted.state, {"total": 0})
    assert not nothing.said() and HandoffRequested("rights") in nothing.events


def test_tenant_is_asked_the_rent():
    e = engine()
    state = e.resume(e.start("demo").state, Input(text="30")).state
    tenant = e.resume(state, Input(choice="locataire"))
    assert tenant.said()[-1].text == "Votre loyer ?"


def test_small_matchers():
    assert parse_number("1 200 €") == 1200
    assert parse_number("450,50") == 450.5
    assert parse_number("entre 3 et 4") is None
    assert match_choice("2", [("a", "A"), ("b", "B")]) == "b"
    assert command_of("STOP") == "stop"
    assert command_of("Supprimer mes données") == "erase"
    assert command_of("supprimer mes donées") == "erase"  # small typo
    assert command_of("parler à quelqu'un") == "human"
    assert command_of("je stoppe rien") is None
    assert intent_of("je voudrais parler à quelqu'un svp", {}).kind == "human"
    assert intent_of("Bonjour", {}).kind == "menu"
    assert intent_of("xyzzy", {}) is None


def test_lists_of_numbers_and_buttons_beside_a_number():
    flow = parse_flow("""
flow: kids
title: Kids
start: ages
steps:
  ages:
    ask: "Quels âges ?"
    input: numbers
    min: 0
    max: 25
    save: ages
    next: income
  income:
    ask: "Votre salaire net par mois ?"
    input: number
    min: 0
    buttons: [{value: inconnu, label: "❓ Je ne sais pas"}]
    save: salary
    next: done
  done:
    end: "ok"
""")
    e = Engine({"kids": flow})
    turn = e.start("kids")
    assert e.resume(turn.state, Input(text="3, 30")).said()[-1].text.startswith("Écrivez les nombres")
    ok = e.resume(turn.state, Input(text="3, 7 et 12"))
    assert ok.state["answers"]["ages"] == [3, 7, 12]
    assert e.resume(ok.state, Input(choice="inconnu")).state["answers"]["salary"] == "inconnu"
    assert e.resume(ok.state, Input(text="je ne sais pas")).state["answers"]["salary"] == "inconnu"
    assert e.resume(ok.state, Input(text="1 450 €")).state["answers"]["salary"] == 1450


def test_say_each_says_one_message_per_item_and_each_is_checked():
    flow = parse_flow("""
flow: lines
title: Lines
start: compute
steps:
  compute:
    call: check_rights
    save: result
    next: listed
  listed:
    say: "✅ {{ item }}"
    each: "result.lines"
    next: done
  done:
    end: "Fin ({{ result.lines | length }})"
""")
    e = Engine({"lines": flow})
    turn = e.start("lines")
    resumed = e.resume_action(turn.state, {"lines": ["RSA : 640 €", "APL : 300 €"]})
    assert [said.text for said in resumed.said()] == ["✅ RSA : 640 €", "✅ APL : 300 €", "Fin (2)"]
    assert [s.text for s in e.resume_action(turn.state, {"lines": []}).said()] == ["Fin (0)"]
    assert "item" not in resumed.state["answers"] and "item" not in resumed.state["context"]
    with pytest.raises(FlowError, match="only a say step can have `each`"):
        parse_flow("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    end: bye\n    each: items\n", "x.yaml")
    with pytest.raises(FlowError, match="expression error"):
        parse_flow("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    say: hi\n    each: 'items +'\n    next: a\n", "x.yaml")


def test_repeat_says_the_pending_question_again_in_the_new_language():
    flow = parse_flow("""
flow: lang
title: Lang
start: housing
steps:
  housing:
    ask: {fr: "Votre logement ?", en: "Your home?"}
    buttons:
      - {value: locataire, label: {fr: "🏠 Locataire", en: "🏠 Tenant"}}
    save: housing
    next: done
  done:
    end: "ok"
""", "lang.yaml")
    e = Engine({"lang": flow})
    turn = e.start("lang")
    again = e.repeat(turn.state, "en")
    assert again.said()[-1].text == "Your home?" and again.said()[-1].choices == (("locataire", "🏠 Tenant"),)
    assert again.state["step"] == "housing" and again.state["locale"] == "en"
    assert not [event for event in again.events if isinstance(event, AnswerSaved)]
    done = e.resume(turn.state, Input(choice="locataire"))
    assert e.repeat(done.state, "en").events == []  # nothing pending: nothing said
