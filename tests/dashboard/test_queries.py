"""The queries the dashboard added, on a fresh store with known answers: each branch's
headline, the problems of a project, partial runs, metric units, state paths, paging."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datacat_client import wire
from datacat_server.queries.metrics import (
    metric_series,
    metric_unit,
    session_metric_units,
    state_paths,
)
from datacat_server.queries.overview import BranchHeadline, headline, overview, pass_rate
from datacat_server.queries.runs import count_run_tests, count_runs, get_runs, run_tests
from datacat_server.queries.sessions import problem_sessions, problems_elsewhere
from datacat_server.queries.window import recent_runs
from datacat_server.store import Store
from tests.server.records import RecordMaker
from tests.support.wait import wait_for

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "queries.duckdb", soft_flush_interval=0.05)
    try:
        yield opened
    finally:
        opened.close()


def _run(
    store: Store,
    *,
    branch: str = "main",
    project: str = "shop",
    started: float = T0,
    counts: dict[str, int] | None = None,
    status: str = "passed",
    partial: bool = False,
    results: dict[str, str] | None = None,
    hang: bool = False,
) -> str:
    """A run as the plugin records it; unfinished when ``counts`` is None."""
    maker = RecordMaker()
    records: list[Any] = [
        maker.start(product=project, name="pytest"),
        maker.make(
            wire.RunStart,
            project=project,
            branch=branch,
            commit="abc123",
            partial=partial,
            timestamp=started,
        ),
    ]
    for nodeid, outcome in (results or {}).items():
        records.append(maker.result(nodeid, outcome, timestamp=started + 1))
    if hang:
        records.append(maker.event("application_appears_hung", {"nodeid": "t.py::test_x"}))
    if counts is not None:
        records.append(
            maker.make(
                wire.RunFinish,
                exit_status=0 if status == "passed" else 1,
                status=status,
                counts=counts,
                duration=sum(counts.values()) * 1.5,
                timestamp=started + 60,
            )
        )
        records.append(maker.make(wire.SessionEnd, timestamp=started + 61))
    store.write_sync(records)
    return maker.session_id


def test_the_headline_is_each_branch_s_latest_whole_run_by_receive_time(store: Store) -> None:
    # The first run's client clock is ten hours ahead: received first, it is still older.
    _run(store, started=T0 + 36_000, counts={"passed": 8})
    main = _run(
        store,
        status="failed",
        counts={"passed": 6, "failed": 1, "error": 1, "skipped": 2, "subtests passed": 5},
    )
    _run(store, partial=True, status="failed", counts={"failed": 1})  # -k: not main's latest
    _run(store, project="other", counts={"passed": 1})
    dev = _run(store, branch="dev", results={"a": "passed", "b": "passed", "c": "failed"})
    feature = _run(store, branch="feature", partial=True, counts={"passed": 1})

    found = headline(store.reader(), "shop")

    assert found == [
        BranchHeadline(
            branch="feature",
            run=feature,
            outcome="passed",
            session_status="ended",
            partial=True,  # the branch has no whole run: its partial one stands
            passed=1,
            failed=0,
            errors=0,
            tests=1,
            rate=1.0,
            duration=1.5,
            started_at="2027-01-15T08:00:00.000000Z",
            commit="abc123",
        ),
        BranchHeadline(
            branch="dev",
            run=dev,
            outcome=None,
            session_status="running",
            partial=False,
            passed=2,
            failed=1,
            errors=0,
            tests=3,  # counted so far
            rate=pytest.approx(2 / 3),
            duration=None,
            started_at="2027-01-15T08:00:00.000000Z",
            commit="abc123",
        ),
        BranchHeadline(
            branch="main",
            run=main,
            outcome="failed",
            session_status="ended",
            partial=False,
            passed=6,
            failed=1,
            errors=1,
            tests=10,  # subtests are not tests
            rate=0.75,
            duration=22.5,
            started_at="2027-01-15T08:00:00.000000Z",
            commit="abc123",
        ),
    ]
    assert [h.branch for h in headline(store.reader(), "shop", branches=2)] == ["feature", "dev"]
    assert [h.branch for h in headline(store.reader(), "nothing")] == []


def test_partial_runs_are_left_out_of_the_pass_rate_trend(store: Store) -> None:
    whole = _run(store, status="failed", counts={"passed": 9, "failed": 1})
    _run(store, partial=True, status="failed", counts={"failed": 1})
    last = _run(store, counts={"passed": 10})
    cur = store.reader()
    points = pass_rate(cur, recent_runs(cur, "shop"))
    assert [(p.run, p.rate) for p in points] == [(whole, 0.9), (last, 1.0)]
    data = overview(cur, "shop")
    assert data.partial_runs == 1
    assert [p.run for p in data.pass_rate] == [whole, last]
    assert [run.partial for run in data.recent_runs] == [False, True, False]


def _app(store: Store, product: str, *, hung: bool = False, crashed: bool = False) -> str:
    maker = RecordMaker()
    records: list[Any] = [
        maker.start(
            name=product.lower(), product=product, heartbeat_interval=0.001 if crashed else None
        )
    ]
    if hung:
        records.append(maker.event("application_appears_hung", {"seconds_since_heartbeat": 9}))
    store.write_sync(records)
    return maker.session_id


def test_the_problems_of_a_project_are_its_runs_and_its_product_s_sessions(
    store: Store,
) -> None:
    shop_run = _run(store, results={"a": "passed"}, hang=True)
    shop_app = _app(store, "shop", hung=True)  # a program named like the project
    other_run = _run(store, project="billing", results={"a": "passed"}, hang=True)
    editor = _app(store, "Editor", crashed=True)
    _app(store, "Quiet")  # running, no problem
    _run(store, counts={"passed": 1})  # ended
    cur = store.reader()
    # The editor's heartbeat (every 1 ms) is soon overdue: crashed.
    wait_for(lambda: problem_sessions(cur, "Editor"), "the editor to crash")

    assert {s.id for s in problem_sessions(cur, "shop")} == {shop_run, shop_app}
    assert problems_elsewhere(cur, "shop") == {"hung": 1, "crashed": 1}
    assert [s.id for s in problem_sessions(cur, "billing")] == [other_run]
    assert [s.status for s in problem_sessions(cur, "Editor")] == ["crashed"]
    assert {s.id for s in problem_sessions(cur, None)} == {shop_run, shop_app, other_run, editor}
    assert problems_elsewhere(cur, None) == {}
    assert len(problem_sessions(cur, None, limit=2)) == 2
    assert overview(cur, "billing").problems[0].id == other_run


def test_metric_units_are_the_ones_stored(store: Store) -> None:
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(name="app"),
            maker.make(wire.Metric, name="latency", value=0.5, unit="s", timestamp=T0),
            maker.make(wire.Metric, name="latency", value=250.0, unit="ms", timestamp=T0 + 1),
            maker.make(wire.Metric, name="fps", value=60.0, timestamp=T0 + 2),
            maker.make(wire.Metric, name="requests", value=3.0, unit="req", kind="counter"),
        ]
    )
    cur = store.reader()
    assert metric_unit(cur, "latency") == "ms"  # the latest said
    assert metric_unit(cur, "fps") == ""
    assert metric_unit(cur, "test_rss_delta") == "bytes"
    assert metric_series(cur, "latency").unit == "ms"
    units = session_metric_units(cur, maker.session_id)
    assert units["latency"] == "ms"
    assert units["requests"] == "req"
    assert "fps" not in units
    assert units["test_duration"] == "s"  # DataCat's own, for a run's session
    assert session_metric_units(cur, "not-a-session") == {
        "test_duration": "s",
        "test_cpu_time": "s",
        "test_rss_delta": "bytes",
    }


def test_state_paths_are_the_dot_paths_of_recent_states_most_common_first(store: Store) -> None:
    states: list[dict[str, Any]] = [
        {"old": {"only": 1}},
        {"window": {"open": ["Main", {"inside": "an array"}], "title": "x"}, "theme": "dark"},
        {"window": {"title": "y"}, "a.b": 1, "spaced key": {"é": True}, "": 2},
        {"window": {"title": "z"}},
    ]
    for state in states:
        maker = RecordMaker()
        store.write_sync([maker.start(name="app", state=state)])
    cur = store.reader()
    assert state_paths(cur) == [
        "window",
        "window.title",
        "old",
        "old.only",
        "spaced key",
        "spaced key.é",
        "theme",
        "window.open",
    ]
    # bounded: the latest sessions only, and so many paths
    assert "old" not in state_paths(cur, sessions=3)
    assert state_paths(cur, limit=2) == ["window", "window.title"]


def test_a_run_s_results_and_runs_are_counted_as_they_are_paged(store: Store) -> None:
    results = {f"t.py::test_{n}": "failed" if n % 3 == 0 else "passed" for n in range(7)}
    run = _run(store, results=results)
    other = _run(store, counts={"passed": 1})
    cur = store.reader()
    assert count_run_tests(cur, run) == 7
    assert count_run_tests(cur, run, outcome="failed") == 3
    assert count_run_tests(cur, run, search="test_1") == 1
    assert count_run_tests(cur, "not-a-run") == 0
    pages = [run_tests(cur, run, limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [len(page) for page in pages] == [3, 3, 1]
    assert len({t.nodeid for page in pages for t in page}) == 7
    assert count_runs(cur, project="shop") == 2
    assert count_runs(cur, project="shop", outcome="running") == 1
    assert [r.id for r in get_runs(cur, [other, "nope", run])] == [other, run]


def _counter(store: Store, values: list[tuple[float, float]], name: str = "served") -> str:
    maker = RecordMaker()
    metrics = [
        maker.make(
            wire.Metric, name=name, value=v, unit="requests", kind="counter", timestamp=T0 + t
        )
        for t, v in values
    ]
    store.write_sync([maker.start(name="web"), *metrics])
    return maker.session_id


def test_a_counter_reads_as_its_rate_per_second(store: Store) -> None:
    steady = _counter(store, [(0, 0), (1, 10), (2, 30)])
    # 100 -> 160 in 2 s; a reset (5 < 160: the program restarted); then +10 in 1 s
    restarted = _counter(store, [(10, 100), (12, 160), (13, 5), (14, 15)])
    cur = store.reader()
    every = metric_series(cur, "served")
    assert (every.kind, every.unit, every.value_unit) == ("counter", "requests", "requests/s")
    rates = [(p.session_id, p.value) for p in every.points]
    assert rates == [
        (steady, 10.0),
        (steady, 20.0),
        (restarted, 30.0),
        (restarted, 5.0),  # the reset: the new value is the increase
        (restarted, 10.0),
    ]
    at = [dt.datetime.fromisoformat(p.timestamp).timestamp() for p in every.points[:2]]
    assert at == [T0 + 1, T0 + 2]  # at the later value of each pair
    assert (every.peak, every.min) == (30.0, 5.0)
    assert every.average == pytest.approx((30 + 75) / (2 + 4))  # total increase / total time
    peaks = metric_series(cur, "served", aggregation="peak")
    assert [(p.session_id, p.value) for p in peaks.points] == [(steady, 20.0), (restarted, 30.0)]
    lows = metric_series(cur, "served", aggregation="min")
    assert [p.value for p in lows.points] == [10.0, 5.0]
    averages = metric_series(cur, "served", aggregation="average")
    # not the mean of the rates (15 for the second): 75 requests in 4 seconds
    assert [p.value for p in averages.points] == [15.0, 18.75]
    assert averages.average == pytest.approx((15 + 18.75) / 2)


def test_a_counter_with_one_value_or_values_at_one_instant_has_no_rate(store: Store) -> None:
    _counter(store, [(0, 5)])
    _counter(store, [(0, 5), (0, 9)])
    cur = store.reader()
    series = metric_series(cur, "served")
    assert series.points == []
    assert (series.peak, series.average, series.sessions_matched) == (None, None, 0)


def test_a_gauge_is_read_as_it_was_logged(store: Store) -> None:
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(name="app"),
            *(
                maker.make(wire.Metric, name="fps", value=v, timestamp=T0 + t)
                for t, v in ((0, 0.0), (1, 10.0), (2, 30.0))
            ),
        ]
    )
    series = metric_series(store.reader(), "fps")
    assert (series.kind, series.value_unit) == ("gauge", "")
    assert [p.value for p in series.points] == [0.0, 10.0, 30.0]
    assert series.average == pytest.approx(40 / 3)
