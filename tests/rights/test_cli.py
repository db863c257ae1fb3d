"""`allervers rights estimate ANSWERS.json` as a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "single_parent_paris.json"


def _run(*args, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "allervers.cli", "rights", "estimate", *args],
        capture_output=True, text=True, input=stdin, timeout=300,
    )


@pytest.mark.slow
def test_estimate_prints_the_result_as_json():
    done = _run(str(FIXTURE), "--month", "2025-11")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reference_month"] == "2025-11" and result["legislation_year"] == 2025
    shown = {benefit["id"]: benefit for benefit in result["benefits"]}
    assert shown["af"]["monthly_amount"] == 151 and shown["af"]["already_received"] is True
    assert shown["aide_logement"]["monthly_amount"] > 0
    assert shown["aide_logement"]["link"].startswith("https://")
    assert shown["bourse_college"]["yearly_amount"] > 0 and shown["bourse_college"]["period"] == "an"
    assert {zero["id"] for zero in result["zero_benefits"]} >= {"aspa", "aah"}
    assert all(zero["why"] for zero in result["zero_benefits"])
    assert any("pension alimentaire" in sentence for sentence in result["assumptions"])


def test_invalid_json_exits_2_with_a_clear_message(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"age": 40,', encoding="utf-8")
    done = _run(str(broken))
    assert done.returncode == 2
    assert "is not valid JSON" in done.stderr and done.stdout == ""


def test_invalid_answers_exit_2_and_name_the_field(tmp_path):
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"age": 140, "depcom": "44109", "rent": -5}), encoding="utf-8")
    done = _run(str(answers))
    assert done.returncode == 2
    assert "age:" in done.stderr and "un âge entre 16 et 120 ans" in done.stderr
    assert "rent:" in done.stderr


def test_bad_month_exits_2():
    done = _run(str(FIXTURE), "--month", "2025-13")
    assert done.returncode == 2 and "--month" in done.stderr
