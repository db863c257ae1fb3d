"""Rights fixtures: the OpenFisca systems are built once per test session (shared with the
thread-mode estimator, which reuses the per-process systems of rights.worker)."""

import pytest

from rights.mapping import Reference

REFERENCE = Reference(2025, 11)  # pinned: published amounts below are those of November 2025


@pytest.fixture(scope="session")
def systems():
    from rights import worker

    return worker.systems()


@pytest.fixture(scope="session")
def reference():
    return REFERENCE
