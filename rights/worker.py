"""What runs where OpenFisca lives (the estimator's child process, or a thread): plain functions
with picklable arguments and results, and the per-process systems.

`load()` builds the systems once per process and warms them up; `run_batch()` estimates a list of
answers payloads for one reference month in one vectorised simulation.
"""

from __future__ import annotations

import logging
import threading
import time
from importlib.metadata import version

from rights.answers import Answers
from rights.mapping import Reference, map_answers

log = logging.getLogger(__name__)

_lock = threading.Lock()
_systems = None

# Representative households used to warm the parameter caches after loading.
WARM_UP_ANSWERS = (
    {"age": 40, "depcom": "44109", "housing": "tenant", "rent": 500},
    {
        "age": 67,
        "couple": True,
        "partner_age": 45,
        "partner_disability": "ge80",
        "partner_activity": "employee",
        "partner_resources": {"salary": 900},
        "resources": {"pension": 700},
        "children": [{"age": 1}, {"age": 12}, {"age": 17}, {"age": 20, "school": "superieur"}],
        "housing": "tenant",
        "tenant_kind": "social",
        "rent": 600,
        "depcom": "97411",
    },
)


def systems():
    """The systems of this process, built on first use (thread-safe)."""
    global _systems
    with _lock:
        if _systems is None:
            from rights.engine import load_systems

            _systems = load_systems()
        return _systems


def load(warm_up: bool = True, month: str | None = None) -> dict:
    """Build the systems and run the warm-up households; returns timings in seconds."""
    started = time.perf_counter()
    loaded = systems()
    warm_seconds = 0.0
    if warm_up:
        warm_started = time.perf_counter()
        run_batch([WARM_UP_ANSWERS[0]], month)
        run_batch([WARM_UP_ANSWERS[1]], month)
        warm_seconds = time.perf_counter() - warm_started
    log.info("rights worker ready in %.1f s (warm-up %.1f s)", time.perf_counter() - started, warm_seconds)
    return {"load_seconds": loaded.load_seconds, "warm_up_seconds": warm_seconds}


def run_batch(payloads: list[dict], month: str | None = None) -> tuple[list[dict], int]:
    """Estimate every payload (Answers as dicts) for the month 'YYYY-MM' (default: current).

    Returns the results in the same order and the number of simulations built.
    """
    from rights.engine import compute_fast
    from rights.results import build_result

    reference = Reference.parse(month) if month else Reference.current()
    answers = [Answers.model_validate(payload) for payload in payloads]
    households = [map_answers(item, reference) for item in answers]
    raw = compute_fast(systems(), households, reference) if households else []
    of_version = openfisca_france_version()
    results = [
        build_result(item, household, reference, values, of_version)
        for item, household, values in zip(answers, households, raw)
    ]
    log.debug("rights batch of %d households", len(results))
    return results, 1 if households else 0


def openfisca_france_version() -> str:
    try:
        return version("openfisca-france")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return ""
