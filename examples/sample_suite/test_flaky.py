"""Flaky on purpose: each test fails in some runs, decided by SAMPLE_SEED."""

from __future__ import annotations

import random

import pytest


def test_network_call_flakes(rng: random.Random) -> None:
    """Fails in about 30 % of runs, as a timing-dependent network test would."""
    if rng.random() < 0.3:
        raise TimeoutError(f"request to http://10.0.0.{rng.randint(2, 250)}/health timed out")


def test_race_condition_flakes(rng: random.Random) -> None:
    """Fails in about 10 % of runs."""
    assert rng.random() >= 0.1, "worker finished before the queue was drained"


@pytest.mark.parametrize("shard", range(3))
def test_sharded_cache(shard: int, rng: random.Random) -> None:
    """Each shard fails now and then (about 5 % of runs)."""
    assert rng.random() >= 0.05, f"cache shard {shard} returned a stale entry"
