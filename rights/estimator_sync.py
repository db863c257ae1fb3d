"""Synchronous one-off estimates in this process (command line, checks): no worker, no batching."""

from __future__ import annotations

from rights.answers import Answers
from rights.mapping import Reference, map_answers


def estimate_now(answers: Answers, month: str | None = None, naive: bool = False) -> dict:
    """Load OpenFisca here, estimate one household, return the result dict."""
    from rights import worker
    from rights.engine import compute_fast, compute_naive
    from rights.results import build_result

    reference = Reference.parse(month) if month else Reference.current()
    household = map_answers(answers, reference)
    systems = worker.systems()
    raw = compute_naive(systems, household, reference) if naive else compute_fast(systems, [household], reference)[0]
    return build_result(answers, household, reference, raw, worker.openfisca_france_version())
