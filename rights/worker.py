"""What runs where OpenFisca lives (the estimator's child process, or a thread): plain functions
with picklable arguments and results, and the per-process systems.

`load()` builds the systems once per process and warms them up; `run_batch()` estimates a list of
answers payloads for one reference month in one vectorised simulation.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from importlib.metadata import version

from rights.answers import Answers
from rights.mapping import Reference, map_answers

log = logging.getLogger(__name__)

_lock = threading.Lock()
_systems = None

# Representative households used to warm the parameter caches after loading: one alone, then a
# batch covering the expensive paths (AAH and RSA declared as received, students, DOM, old age).
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
        "benefits_received": ["aah", "af"],
    },
    {"age": 22, "activity": "student", "resources": {"salary": 300}, "housing": "tenant", "tenant_kind": "furnished",
     "rent": 400, "depcom": "35238"},
    {"age": 50, "disability": "50_79", "restricted_access_to_employment": True, "resources": {"pension": 300},
     "housing": "hosted", "depcom": "13055", "benefits_received": ["rsa", "prime_activite", "aide_logement"]},
    {"age": 30, "activity": "employee", "resources": {"salary": 1200}, "children": [{"age": 4}, {"age": 9}],
     "alimony_received": 100, "housing": "owner", "owner_loan": 500, "depcom": "75056"},
)


def systems():
    """The systems of this process, built on first use (thread-safe)."""
    global _systems
    with _lock:
        if _systems is None:
            from rights.engine import load_systems

            _systems = load_systems()
            _freeze_heap()
        return _systems


def _freeze_heap() -> None:
    """Move the long-lived OpenFisca objects out of the garbage collector's reach.

    The tax-benefit system is millions of objects; without this, full collections pause the
    process for 0.5-2 s (measured while running tests), during estimates or on the event loop.
    """
    gc.collect()
    gc.freeze()


def load(warm_up: bool = True, month: str | None = None) -> dict:
    """Build the systems and run the warm-up households; returns timings in seconds."""
    started = time.perf_counter()
    loaded = systems()
    warm_seconds = 0.0
    if warm_up:
        warm_started = time.perf_counter()
        run_batch([WARM_UP_ANSWERS[0]], month)
        run_batch(list(WARM_UP_ANSWERS), month)
        warm_seconds = time.perf_counter() - warm_started
        _freeze_heap()  # the parameter caches filled by the warm-up too
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
