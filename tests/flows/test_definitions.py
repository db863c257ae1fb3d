"""Flow files are validated when loaded: errors name the file, the step and the problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.definition import FlowError, parse_flow
from flows.library import DEFINITIONS, FlowLibrary

GOOD = """
flow: sample
title: Sample
start: ask_age
steps:
  ask_age:
    ask: "Quel âge avez-vous ?"
    input: number
    min: 0
    max: 120
    save: age
    next: done
  done:
    end: "Merci, {{ age }} ans."
"""


def test_shipped_flows_are_valid():
    library = FlowLibrary()
    assert library.load() == []
    assert {"welcome", "menu", "talk"} <= set(library.flows)


@pytest.mark.parametrize("source, expected", [
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    say: hi\n", "step 'a': a say step needs `next`"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    say: hi\n    next: nowhere\n", "step 'a': unknown next step 'nowhere'"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    ask: q\n    next: a\n", "step 'a': an ask needs `save`"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    say: hi\n    end: bye\n", "step 'a': a step needs exactly one of"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    say: \"{{ oops \"\n    next: a\n", "step 'a': template error"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    ask: q\n    input: telepathy\n    save: v\n    next: a\n", "unknown input 'telepathy'"),
    ("flow: x\ntitle: X\nstart: missing\nsteps:\n  a:\n    end: bye\n", "start step 'missing' does not exist"),
    ("flow: x\ntitle: X\nstart: a\nsteps:\n  a:\n    end: bye\n    colour: blue\n", "step 'a': colour: Extra inputs are not permitted"),
    ("- just\n- a list\n", "a flow file holds one mapping"),
    ("flow: [unclosed\n", "not valid YAML"),
])
def test_invalid_flows_are_refused_with_a_named_error(source, expected):
    with pytest.raises(FlowError) as error:
        parse_flow(source, "broken.yaml")
    assert str(error.value).startswith("broken.yaml: ")
    assert expected in str(error.value)


def test_invalid_file_keeps_previous_flows_in_use(tmp_path: Path):
    for path in DEFINITIONS.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    library = FlowLibrary()
    assert library.load(tmp_path) == []
    before = dict(library.flows)
    revision = library.revision
    (tmp_path / "sample.yaml").write_text(GOOD, encoding="utf-8")
    assert library.load(tmp_path) == []
    assert "sample" in library.flows
    (tmp_path / "menu.yaml").write_text("flow: menu\ntitle: M\nstart: a\nsteps:\n  a:\n    say: x\n    next: b\n",
                                        encoding="utf-8")
    errors = library.load(tmp_path)
    assert errors == ["menu.yaml: step 'a': unknown next step 'b'"]
    assert library.flows["menu"] is not None and "sample" in library.flows  # previous set still in use
    assert library.revision != revision and set(before) <= set(library.flows)


def test_check_flows_command_reports_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: bad\ntitle: B\nstart: a\nsteps:\n  a:\n    say: x\n    next: \"@nowhere\"\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "allervers.cli", "check-flows", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "bad.yaml: step 'a': unknown flow 'nowhere'" in result.stdout
    ok = subprocess.run([sys.executable, "-m", "allervers.cli", "check-flows"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_shipped_texts_fit_whatsapp_limits():
    """Button titles at most 20 characters, at most 10 choices, questions at most 1,024 characters."""
    library = FlowLibrary()
    assert library.load() == []
    for flow in library.flows.values():
        for step_id, step in flow.steps.items():
            labels = [b.label if isinstance(b.label, str) else b.label["fr"] for b in step.buttons]
            assert all(len(label) <= 20 for label in labels), (flow.flow, step_id, labels)
            assert len(labels) <= 10, (flow.flow, step_id)
            ask = step.ask if isinstance(step.ask, str) or step.ask is None else step.ask["fr"]
            assert ask is None or len(ask) <= 1024, (flow.flow, step_id)
    menu = library.flows["menu"].steps["choose"]
    assert [b.value for b in menu.buttons][0] == "droits" and menu.next["droits"] == "@rights"
