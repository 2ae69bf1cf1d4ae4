"""Rollups give the same insights as the results they fold.

Random histories (branches, commits shared by runs and runs without one, reruns,
subtests, skips, interleaved arrivals) are written through the store with folds,
restarts and retention deletes at random points. Then every stream aggregate, the
flaky list and the slow list are computed three ways and must agree: from the rollups
(and the unfolded tail), from the results themselves, and by a plain-Python oracle
that replays what was written.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from datacat_client import wire
from datacat_server.queries.flaky import evidence_of, flaky_tests
from datacat_server.queries.slow import slow_tests
from datacat_server.queries.streams import folded, streams_cte
from datacat_server.queries.window import recent_runs
from datacat_server.store import Store
from datacat_server.store.retention import RetentionPolicy
from datacat_server.store.rollups import BUCKET_RATIO
from tests.server.records import RecordMaker

TESTS = ("t.py::a", "t.py::b", "t.py::c")
DAY = 86_400.0


@dataclasses.dataclass
class Result:
    nodeid: str
    outcome: str
    duration: float
    attempt: int = 0
    final: bool = True
    subtest: str | None = None


@dataclasses.dataclass
class Run:
    branch: str
    commit: str
    results: list[Result]
    #: Sent in this many batches (each its own transaction).
    parts: int


_outcome = st.sampled_from(["passed", "passed", "failed", "error", "skipped"])


@st.composite
def runs(draw: st.DrawFn) -> Run:
    results = []
    for nodeid in TESTS:
        if draw(st.integers(0, 5)) == 0:
            continue  # not selected in this run
        duration = draw(st.sampled_from([0.0, 0.001, 0.01, 0.5, 1.0, 2.5]))
        if draw(st.integers(0, 4)) == 0:  # a rerun: failed attempts, then the final one
            for attempt in range(draw(st.integers(1, 2))):
                results.append(Result(nodeid, "failed", duration, attempt, final=False))
            results.append(
                Result(nodeid, draw(st.sampled_from(["passed", "failed"])), duration, attempt + 1)
            )
        else:
            results.append(Result(nodeid, draw(_outcome), duration))
        if draw(st.booleans()):  # subtests never count in the streams
            results.append(Result(nodeid, draw(_outcome), 0.3, subtest="i=1"))
    return Run(
        branch=draw(st.sampled_from(["main", "main", "dev", ""])),
        commit=draw(st.sampled_from(["c1", "c2", "c3", ""])),
        results=results,
        parts=draw(st.integers(1, 2)),
    )


Step = tuple[str, Any]


@st.composite
def histories(draw: st.DrawFn) -> list[Step]:
    """Runs sent in parts, their parts interleaved; folds, restarts and retention."""
    chosen = draw(st.lists(runs(), min_size=1, max_size=7))
    pending = {i: list(range(run.parts)) for i, run in enumerate(chosen)}
    steps: list[Step] = []
    started: set[int] = set()
    while pending:
        i = draw(st.sampled_from(sorted(pending)))
        if i not in started:
            started.add(i)
            steps.append(("start", (i, chosen[i])))
        part = pending[i].pop(0)
        steps.append(("part", (i, part)))
        if not pending[i]:
            del pending[i]
        extra = draw(st.sampled_from(["", "", "", "fold", "restart", "age"]))
        if extra:
            steps.append((extra, None))
    if draw(st.booleans()):
        steps.append(("retention", None))
    return steps


class Clock:
    def __init__(self) -> None:
        self.now = time.time() - 30 * DAY

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Written:
    """What the oracle knows: each run's part results, in the order stored."""

    run: Run
    sid_order: int
    received: float
    stored: list[Result] = dataclasses.field(default_factory=list)


def _parts(run: Run) -> list[list[Result]]:
    size = math.ceil(len(run.results) / run.parts) if run.results else 1
    return [run.results[k * size : (k + 1) * size] for k in range(run.parts)]


def _replay(tmp: Path, steps: list[Step]) -> tuple[Store, list[Written], list[Written]]:
    """Write the history; returns the open store, every run, and the order of parts."""
    clock = Clock()
    path = tmp / "history.duckdb"
    store = Store(path, clock=clock, fold_seconds=3600.0, fold_rows=10**9)
    makers: dict[int, RecordMaker] = {}
    written: dict[int, Written] = {}
    order: list[Written] = []
    for kind, arg in steps:
        if kind == "start":
            i, run = arg
            maker = makers[i] = RecordMaker()
            store.write_sync(
                [
                    maker.start(product="p"),
                    maker.make(wire.RunStart, project="p", branch=run.branch, commit=run.commit),
                ]
            )
            written[i] = Written(run, len(written), clock.now)
        elif kind == "part":
            i, part = arg
            maker, w = makers[i], written[i]
            chunk = _parts(w.run)[part]
            records = [
                maker.result(
                    r.nodeid,
                    r.outcome,
                    call_duration=r.duration,
                    attempt=r.attempt,
                    final=r.final,
                    subtest=r.subtest,
                )
                for r in chunk
            ]
            if records:
                store.write_sync(records)
                w.stored.extend(chunk)
                order.append(Written(w.run, w.sid_order, w.received, list(chunk)))
            clock.now += 1
        elif kind == "fold":
            store.fold_rollups()
        elif kind == "restart":
            store.close()
            store = Store(path, clock=clock, fold_seconds=3600.0, fold_rows=10**9)
        elif kind == "age":
            clock.now += 10 * DAY
        elif kind == "retention":
            cutoff = clock.now - 15 * DAY
            store.apply_retention(RetentionPolicy(days=15))
            kept = {i: w for i, w in written.items() if w.received >= cutoff}
            order = [w for w in order if w.received >= cutoff]
            written = kept
    return store, list(written.values()), order


# -- the oracle ---------------------------------------------------------------------------


def _oracle_streams(order: list[Written]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (nodeid, branch): the stream aggregates, replaying the stored order."""
    streams: dict[tuple[str, str], list[tuple[bool, Written, Result]]] = defaultdict(list)
    timed: dict[tuple[str, str], list[float]] = defaultdict(list)
    commits: dict[tuple[str, str, str], set[bool]] = defaultdict(set)
    for part in order:
        for r in part.stored:
            if not r.final or r.subtest is not None:
                continue
            key = (r.nodeid, part.run.branch)
            timed[key].append(r.duration)
            if r.outcome in ("passed", "failed", "error"):
                bad = r.outcome != "passed"
                streams[key].append((bad, part, r))
                if part.run.commit:
                    commits[(r.nodeid, part.run.branch, part.run.commit)].add(bad)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key in set(streams) | set(timed):
        seq = [bad for bad, _, _ in streams.get(key, [])]
        flips = sum(1 for a, b in itertools.pairwise(seq) if a != b)
        episodes = sum(1 for k, bad in enumerate(seq) if bad and (k == 0 or not seq[k - 1]))
        streak = 0
        for bad in reversed(seq):
            if not bad:
                break
            streak += 1
        same = sum(1 for (n, b, _), seen in commits.items() if (n, b) == key and len(seen) == 2)
        reruns = sum(1 for bad, _, r in streams.get(key, []) if not bad and r.attempt > 0)
        durations = timed.get(key, [])
        out[key] = {
            "runs": len(seq),
            "failures": sum(seq),
            "flips": flips,
            "episodes": episodes,
            "streak": streak,
            "first_bad": bool(seq and seq[0]),
            "last_bad": bool(seq and seq[-1]),
            "flaky_in_run": reruns,
            "same_commit": same,
            "timed": len(durations),
            "total": pytest.approx(sum(durations)),
            "longest": max(durations, default=0.0),
        }
    return out


def _bucket_quantile(values: list[float], q: float) -> float:
    buckets = sorted(round(math.log(max(v, 1e-6)) / math.log(BUCKET_RATIO)) for v in values)
    rank = math.ceil(q * len(buckets)) - 1
    return min(BUCKET_RATIO ** buckets[max(rank, 0)], max(values))


# -- the comparison -----------------------------------------------------------------------

_COMPARED = [
    *("runs", "failures", "flips", "episodes", "streak", "first_bad", "last_bad"),
    *("flaky_in_run", "same_commit", "timed", "total", "longest"),
]


def _streams(store: Store, rollups: bool) -> dict[tuple[str, str], dict[str, Any]]:
    cur = store.reader()
    window = recent_runs(cur, "p", None, 10_000)
    if window.empty:
        return {}
    with folded(cur) as reach:
        cte, params = streams_cte(window, rollups=rollups, reach=reach)
        found = cur.execute(
            cte + " SELECT t.nodeid, s.* FROM streams s JOIN tests t USING (test_id)", params
        )
        names = [d[0] for d in found.description or ()]
        fetched = found.fetchall()
    out = {}
    for row in fetched:
        values = dict(zip(names, row, strict=True))
        out[(values["nodeid"], values["branch"])] = {k: values[k] for k in _COMPARED}
    return out


@settings(
    max_examples=30,
    deadline=None,
    # Each example opens a store and writes dozens of transactions: shrinking a failure
    # would take minutes. The failing history is printed whole instead.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=histories())
@pytest.mark.slow
def test_rollups_and_results_give_the_same_insights(
    tmp_path_factory: Any, steps: list[Step]
) -> None:
    tmp = tmp_path_factory.mktemp("history")
    store, _, order = _replay(tmp, steps)
    try:
        oracle = _oracle_streams(order)
        raw = _streams(store, rollups=False)
        rolled = _streams(store, rollups=True)
        assert raw == oracle
        assert rolled == oracle
        store.fold_rollups()  # and once everything is folded
        assert _streams(store, rollups=True) == oracle

        cur = store.reader()
        window = recent_runs(cur, "p", None, 10_000)
        if window.empty:
            return
        by_rollups = flaky_tests(cur, window, rollups=True, limit=100)
        by_results = flaky_tests(cur, window, rollups=False, limit=100)
        assert by_rollups == by_results
        expected_flaky = set()
        for nodeid in TESTS:
            rows = [v for (n, _), v in oracle.items() if n == nodeid]
            total = {k: sum(v[k] for v in rows) for k in ("runs", "same_commit", "flaky_in_run")}
            most = max((v["episodes"] for v in rows), default=0)
            if total["runs"] and evidence_of(total["same_commit"], total["flaky_in_run"], most):
                expected_flaky.add(nodeid)
        assert {t.nodeid for t in by_rollups} == expected_flaky

        slow = {t.nodeid: t for t in slow_tests(cur, window, rollups=True, limit=100)}
        for nodeid in TESTS:
            durations = [
                r.duration
                for part in order
                for r in part.stored
                if r.nodeid == nodeid and r.final and r.subtest is None
            ]
            if not durations:
                assert nodeid not in slow
                continue
            found = slow[nodeid]
            assert found.runs == len(durations)
            assert found.max == max(durations)
            assert found.p50 == pytest.approx(_bucket_quantile(durations, 0.5))
            assert found.p95 == pytest.approx(_bucket_quantile(durations, 0.95))
    finally:
        store.close()


def test_a_fold_in_steps_equals_one_fold(tmp_path: Path) -> None:
    """A rebuild proceeds in bounded steps, each committed: the result is the same."""
    histories_written = []
    for name in ("steps", "whole"):
        store = Store(tmp_path / f"{name}.duckdb", fold_seconds=3600.0, fold_rows=10**9)
        try:
            for i in range(12):
                maker = RecordMaker()
                store.write_sync(
                    [
                        maker.start(product="p"),
                        maker.make(wire.RunStart, project="p", branch="main", commit=f"c{i // 3}"),
                        *(
                            maker.result(f"t.py::{k}", "failed" if (i + k) % 4 == 0 else "passed")
                            for k in range(5)
                        ),
                    ]
                )
            cur = store.db.new_cursor()
            from datacat_server.store.rollups import fold

            if name == "steps":
                steps = 0
                while fold(cur, max_rows=7).more:
                    steps += 1
                assert steps >= 5
            else:
                assert not fold(cur).more
            histories_written.append(_streams(store, rollups=True))
            assert _streams(store, rollups=True) == _streams(store, rollups=False)
        finally:
            store.close()
    assert histories_written[0] == histories_written[1]


@pytest.mark.parametrize("rollups", [False, True])
def test_broken_on_two_branches_is_not_flaky(tmp_path: Path, rollups: bool) -> None:
    """One stretch of failures on each branch is two stretches in all, but no flip: the
    same commit broke both (found by a walk through the dashboard)."""
    store = Store(tmp_path / "two.duckdb", fold_seconds=3600.0, fold_rows=10**9)
    try:
        for i in range(8):
            maker = RecordMaker()
            branch = "main" if i % 2 else "dev"
            outcome = "failed" if i >= 4 else "passed"
            store.write_sync(
                [
                    maker.start(product="p"),
                    maker.make(wire.RunStart, project="p", branch=branch, commit=f"c{i}"),
                    maker.result("t.py::broken", outcome),
                    maker.result("t.py::flaky", "failed" if i in (2, 3, 6, 7) else "passed"),
                ]
            )
        store.fold_rollups()
        cur = store.reader()
        window = recent_runs(cur, "p", None, 100)
        found = {t.nodeid: t.evidence for t in flaky_tests(cur, window, rollups=rollups)}
        assert found == {"t.py::flaky": ["flips"]}
    finally:
        store.close()
