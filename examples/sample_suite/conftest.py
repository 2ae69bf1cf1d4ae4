"""Settings of the sample suite, read from the environment so a run is reproducible."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture(scope="session")
def seed() -> int:
    """``SAMPLE_SEED``: decides which flaky tests fail in this run."""
    return int(os.environ.get("SAMPLE_SEED", "0"))


@pytest.fixture(scope="session")
def slowdown() -> float:
    """``SAMPLE_SLOWDOWN``: how much slower the regressed test is in this run."""
    return float(os.environ.get("SAMPLE_SLOWDOWN", "1.0"))


@pytest.fixture
def rng(seed: int, request: pytest.FixtureRequest) -> random.Random:
    """A random generator fixed by the seed and the test's name."""
    return random.Random(f"{seed}:{request.node.nodeid}")
