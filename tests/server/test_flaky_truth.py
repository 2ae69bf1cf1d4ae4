"""The flaky list against a generated history whose truth the test computes itself:
tests flaky at several rates, tests broken at a commit, reruns, commits run twice and
runs without a commit. Exact: every flaky test found with its evidence, and nothing else,
over a window of results and over the rollups."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from datacat_client import wire
from datacat_server.queries.flaky import flaky_tests
from datacat_server.queries.window import recent_runs
from datacat_server.store import Store
from tests.server.records import RecordMaker

P, F = "passed", "failed"
RUNS = 48
RATES = (0.02, 0.05, 0.1, 0.3, 0.6)


def commit_of(run: int) -> str:
    """Two runs per commit, and every seventh run without one (an sdist, no git)."""
    return "" if run % 7 == 6 else f"c{run // 2}"


@dataclass
class Truth:
    """What the history says of one test, by the flaky rule."""

    outcomes: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    reruns: int = 0

    @property
    def same_commit(self) -> int:
        seen: dict[str, set[str]] = {}
        for outcome, commit in zip(self.outcomes, self.commits, strict=True):
            if commit:
                seen.setdefault(commit, set()).add(outcome)
        return sum(1 for outcomes in seen.values() if outcomes == {P, F})

    @property
    def episodes(self) -> int:
        return sum(
            1
            for i, outcome in enumerate(self.outcomes)
            if outcome == F and (i == 0 or self.outcomes[i - 1] != F)
        )

    @property
    def evidence(self) -> list[str]:
        found = []
        if self.same_commit:
            found.append("same_commit")
        if self.reruns:
            found.append("rerun")
        if self.episodes >= 2:
            found.append("flips")
        return found


def generate(seed: int) -> tuple[dict[str, Truth], list[list[wire.Record]]]:
    """The runs' records, and each test's truth."""
    rng = random.Random(seed)
    plans: dict[str, object] = {}
    for rate in RATES:
        for k in range(4):
            plans[f"t.py::flaky_{int(rate * 100):02d}_{k}"] = rate
    for since in (0, 12, 30, 46):  # each the first run of its commit
        plans[f"t.py::broken_since_{since}"] = ("broken", since)
    plans["t.py::stable"] = 0.0
    plans["t.py::rerun_once"] = ("rerun", 20)
    # Two stretches of failures, each covering both runs of its commit: flips only.
    plans["t.py::fails_twice_by_commit"] = ("runs", {4, 5, 10, 11})
    # Fails only in runs without a commit, in one stretch: no evidence at all.
    plans["t.py::fails_without_a_commit"] = ("nocommit", 13)
    truths = {nodeid: Truth() for nodeid in plans}
    runs = []
    for run in range(RUNS):
        maker = RecordMaker()
        commit = commit_of(run)
        records: list[wire.Record] = [
            maker.start(product="gen"),
            maker.make(wire.RunStart, project="gen", branch="main", commit=commit),
        ]
        for nodeid, plan in plans.items():
            truth = truths[nodeid]
            if isinstance(plan, float):
                outcome = F if rng.random() < plan else P
            elif plan[0] == "broken":
                outcome = F if run >= plan[1] else P
            elif plan[0] == "nocommit":
                outcome = F if run == plan[1] else P
            elif plan[0] == "runs":
                outcome = F if run in plan[1] else P
            else:
                outcome = P
            if plan == ("rerun", run):
                records.append(maker.result(nodeid, F, attempt=0, final=False, exc_type="E"))
                records.append(maker.result(nodeid, P, attempt=1))
                truth.reruns += 1
            else:
                records.append(maker.result(nodeid, outcome))
            truth.outcomes.append(outcome)
            truth.commits.append(commit)
        runs.append(records)
    assert commit_of(13) == ""  # the trap above is a run without a commit
    return truths, runs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_flaky_list_is_exactly_the_truth_over_results_and_rollups(
    store: Store, seed: int
) -> None:
    truths, runs = generate(seed)
    for records in runs:
        store.write_sync(records)
    expected = {nodeid: truth for nodeid, truth in truths.items() if truth.evidence}
    # Every kind of evidence, and every kind of test that is not flaky, is there.
    assert expected["t.py::fails_twice_by_commit"].evidence == ["flips"]
    assert expected["t.py::rerun_once"].evidence == ["rerun"]
    assert any("same_commit" in truth.evidence for truth in expected.values())
    assert not {n for n in expected if n.startswith("t.py::broken")}
    assert "t.py::fails_without_a_commit" not in expected
    assert "t.py::stable" not in expected

    cur = store.reader()
    window = recent_runs(cur, "gen", None, RUNS)
    store.fold_rollups()
    for rollups in (False, True):
        found = {f.nodeid: f for f in flaky_tests(cur, window, limit=1000, rollups=rollups)}
        assert set(found) == set(expected), rollups
        for nodeid, truth in expected.items():
            got = found[nodeid]
            assert got.evidence == truth.evidence, (nodeid, rollups)
            assert got.same_commit == truth.same_commit, (nodeid, rollups)
            assert got.flaky_in_run == truth.reruns, (nodeid, rollups)
            assert got.episodes == truth.episodes, (nodeid, rollups)
            assert got.failures == truth.outcomes.count(F), (nodeid, rollups)
            assert got.runs == RUNS, (nodeid, rollups)
