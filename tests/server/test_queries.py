"""The query layer on a store with known answers, written through the real writer: on
the embedded file and on a lake (`any_store`), one suite."""

from __future__ import annotations

import time
from typing import Any

import pytest

from datacat_client import wire
from datacat_server.queries.failures import failure_clusters
from datacat_server.queries.flaky import flaky_tests
from datacat_server.queries.metrics import metric_names, metric_series
from datacat_server.queries.overview import overview
from datacat_server.queries.regressions import regressions
from datacat_server.queries.runs import get_run, list_runs, run_tests
from datacat_server.queries.sessions import list_sessions, session_view, state_history
from datacat_server.queries.slow import slow_tests
from datacat_server.queries.test_history import test_history
from datacat_server.queries.window import asked_window, default_project, projects, recent_runs
from datacat_server.store import StoreBase
from tests.server.records import RecordMaker

RUNS = 10
FLAKY_FAILS = {1, 4, 8}  # run numbers (0-based) in which the flaky test fails


def _run(store: StoreBase, number: int, *, commit: str, branch: str = "main") -> str:
    """One pytest run of the project "shop", as the plugin would record it."""
    maker = RecordMaker()
    start = 1_800_000_000.0 + number * 3600
    records: list[Any] = [
        maker.start(product="shop", name="pytest"),
        maker.make(wire.RunStart, project="shop", branch=branch, commit=commit, timestamp=start),
    ]

    def result(nodeid: str, outcome: str = "passed", duration: float = 0.01, **extra: Any) -> None:
        records.append(
            maker.result(
                nodeid,
                outcome,
                call_duration=duration,
                started_at=start,
                stopped_at=start + duration,
                timestamp=start + 1,
                **extra,
            )
        )

    result(
        "t.py::test_flaky",
        "failed" if number in FLAKY_FAILS else "passed",
        exc_type="AssertionError",
        exc_message="flaky",
    )
    result("t.py::test_regressed", duration=0.1 if number < 6 else 0.2)
    result("t.py::test_broken", "failed", exc_type="RuntimeError", exc_message="always")
    for i, seconds in enumerate((3, 30, 12)):
        timeout = number == 9
        result(
            f"t.py::test_timeout_{i}",
            "failed" if timeout else "passed",
            exc_type="TimeoutError" if timeout else None,
            exc_message=f"request to 10.0.0.{i + 7} timed out after {seconds}s"
            if timeout
            else None,
        )
    if number == 5:  # failed, rerun, passed: flaky in this run
        result("t.py::test_rerun", "failed", final=False, exc_type="OSError", exc_message="x")
        result("t.py::test_rerun", "passed", attempt=1)
    else:
        result("t.py::test_rerun")
    result("t.py::test_slowest", duration=1.0)
    records.append(
        maker.make(
            wire.RunFinish,
            exit_status=1,
            status="failed",
            counts={"passed": 6, "failed": 2},
            timestamp=start + 60,
        )
    )
    records.append(maker.make(wire.SessionEnd, timestamp=start + 61))
    store.write_sync(records)
    return maker.session_id


@pytest.fixture
def shop(store: StoreBase) -> list[str]:
    # Two runs per commit: c0 c0 c1 c1 ... (run 1 fails the flaky test on c0, run 0 passes).
    return [_run(store, n, commit=f"c{n // 2}") for n in range(RUNS)]


def test_projects_and_the_default_one(store: StoreBase, shop: list[str]) -> None:
    cur = store.reader()
    assert projects(cur) == [("shop", ["main"])]
    assert default_project(cur) == "shop"
    assert recent_runs(cur, "shop", None, 3).sids == sorted(
        recent_runs(cur, "shop", None, 3).sids, reverse=True
    )
    assert len(recent_runs(cur, "shop", "main", 100).sids) == RUNS
    assert recent_runs(cur, "shop", "other", 100).empty


def test_a_window_that_names_no_project_is_the_last_run_project_s(store: StoreBase) -> None:
    cur = store.reader()
    nothing = asked_window(cur, None, None, 10)
    assert (nothing.project, nothing.empty) == (None, True)
    shop = [_run(store, n, commit="c") for n in range(3)]
    asked = asked_window(cur, None, "main", 2)
    assert asked.project == "shop"
    assert asked.branch == "main"
    assert asked.sids == recent_runs(cur, "shop", "main", 2).sids
    assert len(asked.sids) == 2
    assert len(shop) == 3
    assert asked_window(cur, "elsewhere", None, 10).empty


def test_flaky_with_its_fail_rate_and_same_commit_evidence(
    store: StoreBase, shop: list[str]
) -> None:
    cur = store.reader()
    found = {t.nodeid: t for t in flaky_tests(cur, recent_runs(cur, "shop", None, RUNS))}
    flaky = found["t.py::test_flaky"]
    assert flaky.fail_rate == pytest.approx(0.3)
    assert (flaky.runs, flaky.failures) == (10, 3)
    assert flaky.flips == 6  # p F p p F p p p F p
    assert flaky.same_commit == 3  # c0 (runs 0,1), c2 (4,5), c4 (8,9) saw both outcomes
    assert flaky.last_failure_run == shop[8]
    assert flaky.failing_runs == [shop[8], shop[4], shop[1]]
    assert found["t.py::test_rerun"].flaky_in_run == 1
    assert "t.py::test_broken" not in found  # failing every time is broken, not flaky
    assert "t.py::test_slowest" not in found
    # The timeouts passed on c4 (run 8) and failed on c4 (run 9): flaky too, by the
    # same evidence. Definitive evidence first, then by flip rate.
    assert list(found) == [
        "t.py::test_flaky",
        "t.py::test_timeout_0",
        "t.py::test_timeout_1",
        "t.py::test_timeout_2",
        "t.py::test_rerun",
    ]
    assert found["t.py::test_timeout_0"].same_commit == 1


def test_slow_tests_and_a_2x_regression(store: StoreBase, shop: list[str]) -> None:
    cur = store.reader()
    window = recent_runs(cur, "shop", None, RUNS)
    slow = slow_tests(cur, window, limit=3)
    assert slow[0].nodeid == "t.py::test_slowest"
    assert slow[0].p50 == pytest.approx(1.0)
    assert slow[0].max == pytest.approx(1.0)
    assert slow[0].runs == RUNS
    assert 0 < slow[0].share < 1
    # the slowdown landed in run 6 (of 10): found there, wherever it is in the window
    found = regressions(cur, window, threshold=1.5)
    assert [r.nodeid for r in found] == ["t.py::test_regressed"]
    assert found[0].run == shop[6]
    assert (found[0].commit, found[0].previous_commit) == ("c3", "c2")
    assert found[0].factor == pytest.approx(2.0)
    assert (found[0].before, found[0].after) == (pytest.approx(0.1), pytest.approx(0.2))
    assert (found[0].runs_before, found[0].runs_after) == (6, 4)
    assert regressions(cur, window, threshold=2.5) == []
    # a test whose median since the change is under min_seconds is noise
    assert regressions(cur, window, min_seconds=0.19) == found
    assert regressions(cur, window, min_seconds=0.21) == []


def test_three_timeouts_form_one_cluster(store: StoreBase, shop: list[str]) -> None:
    cur = store.reader()
    clusters = failure_clusters(cur, recent_runs(cur, "shop", None, RUNS))
    timeouts = [c for c in clusters if c.exc_type == "TimeoutError"]
    assert len(timeouts) == 1
    cluster = timeouts[0]
    assert cluster.count == 3
    assert cluster.test_count == 3
    assert cluster.signature == "request to <n>.<n>.<n>.<n> timed out after <n>s"
    assert cluster.tests == ["t.py::test_timeout_0", "t.py::test_timeout_1", "t.py::test_timeout_2"]
    assert cluster.example_run == shop[9]
    broken = next(c for c in clusters if c.exc_type == "RuntimeError")
    assert (broken.count, broken.test_count) == (RUNS, 1)


def test_history_of_one_test(store: StoreBase, shop: list[str]) -> None:
    cur = store.reader()
    history = test_history(cur, "shop", "t.py::test_flaky", recent_runs(cur, "shop", None, RUNS))
    assert history is not None
    assert [p.outcome for p in history.points] == [
        "failed" if n in FLAKY_FAILS else "passed" for n in range(RUNS)
    ]
    assert [p.run for p in history.points] == shop
    assert history.failures == 3
    assert history.failing_since is None  # it passes now
    # runs 2n and 2n+1 share commit c{n}: it failed and passed on c0, c2 and c4
    assert history.flaky_commits == ["c4", "c2", "c0"]
    broken = test_history(cur, "shop", "t.py::test_broken", recent_runs(cur, "shop", None, RUNS))
    assert broken is not None
    assert broken.failing_since == broken.points[0].started_at
    assert broken.flaky_commits == []
    assert broken.points[-1].message == "always"
    assert test_history(cur, "shop", "t.py::nope", recent_runs(cur, "shop", None, RUNS)) is None


def test_run_list_and_detail(store: StoreBase, shop: list[str]) -> None:
    cur = store.reader()
    runs = list_runs(cur, project="shop", limit=3)
    assert [r.id for r in runs] == shop[::-1][:3]
    assert runs[0].outcome == "failed"
    assert runs[0].commit == "c4"
    tests = run_tests(cur, shop[9])
    assert [t.outcome for t in tests][:5] == ["failed"] * 4 + ["passed"]  # failures first
    assert run_tests(cur, shop[9], order="slowest")[0].nodeid == "t.py::test_slowest"
    assert {t.nodeid for t in run_tests(cur, shop[9], search="timeout")} == {
        f"t.py::test_timeout_{i}" for i in range(3)
    }
    assert all(t.outcome == "passed" for t in run_tests(cur, shop[9], outcome="passed"))
    assert run_tests(cur, shop[9], search="100%_") == []  # LIKE wildcards are literal


def test_overview(store: StoreBase, shop: list[str]) -> None:
    data = overview(store.reader(), "shop")
    assert [r.id for r in data.recent_runs] == shop[::-1]
    assert data.live_runs == []
    assert len(data.pass_rate) == RUNS
    assert data.pass_rate[0].rate == pytest.approx(6 / 8)
    assert data.top_slow[0].nodeid == "t.py::test_slowest"
    assert {t.nodeid for t in data.top_flaky} >= {"t.py::test_flaky"}


@pytest.fixture
def apps(store: StoreBase) -> list[str]:
    """Three application sessions with state and metrics, as the seed's users log them."""
    ids = []
    for i, theme in enumerate(("dark", "light", "dark")):
        maker = RecordMaker()
        records: list[Any] = [
            maker.start(
                name="editor",
                product="notes",
                labels={"env": "ci" if i else "dev"},
                state={"settings": {"theme": "light"}, "windows": ["main"]},
            ),
            maker.make(wire.StateUpdate, state={"settings": {"theme": theme}}),
        ]
        if i == 1:  # was dark once, light now
            records.append(maker.make(wire.StateUpdate, state={"settings": {"theme": "dark"}}))
            records.append(
                maker.make(
                    wire.StateUpdate,
                    state={"settings": {"theme": "light"}, "windows": ["main", "prefs"]},
                )
            )
        for value in (10.0 * (i + 1), 20.0 * (i + 1), 5.0):
            records.append(maker.make(wire.Metric, name="fps", value=value, timestamp=time.time()))
        store.write_sync(records)
        ids.append(maker.session_id)
    return ids


def test_metrics_explorer_aggregations_and_filters(store: StoreBase, apps: list[str]) -> None:
    cur = store.reader()
    assert "fps" in metric_names(cur)
    every = metric_series(cur, "fps")
    assert len(every.points) == 9
    assert (every.peak, every.min, every.sessions_matched) == (60.0, 5.0, 3)
    peaks = metric_series(cur, "fps", aggregation="peak")
    assert sorted(p.value for p in peaks.points) == [20.0, 40.0, 60.0]
    averages = metric_series(cur, "fps", aggregation="average")
    assert sorted(round(p.value, 3) for p in averages.points) == [11.667, 21.667, 31.667]
    lows = metric_series(cur, "fps", aggregation="min")
    assert {p.value for p in lows.points} == {5.0}
    now_dark = metric_series(cur, "fps", filter_mode="current", path="settings.theme", value="dark")
    assert {p.session_id for p in now_dark.points} == {apps[0], apps[2]}
    ever_dark = metric_series(
        cur, "fps", filter_mode="history", path="settings.theme", value="dark"
    )
    assert {p.session_id for p in ever_dark.points} == set(apps)  # the seed only pretended
    with_prefs = metric_series(cur, "fps", filter_mode="contains", path="windows", value="prefs")
    assert {p.session_id for p in with_prefs.points} == {apps[1]}
    assert with_prefs.sessions_matched == 1


def test_session_list_filters_and_state_history(store: StoreBase, apps: list[str]) -> None:
    cur = store.reader()
    assert [s.id for s in list_sessions(cur, name="NOTES")] == apps[::-1]
    assert [s.id for s in list_sessions(cur, label="env=dev")] == [apps[0]]
    assert {s.id for s in list_sessions(cur, label="env")} == set(apps)
    assert [s.id for s in list_sessions(cur, path="settings.theme", value="light")] == [apps[1]]
    assert list_sessions(cur, status="ended") == []
    assert len(list_sessions(cur, status="running")) == 3
    patches = state_history(cur, apps[1])
    assert [p.patch.get("settings", {}).get("theme") for p in patches] == [
        "light",
        "light",
        "dark",
        "light",
    ]


def test_a_run_still_going_shows_what_it_has_counted_so_far(store: StoreBase) -> None:
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(product="live", name="pytest"),
            maker.make(wire.RunStart, project="live", branch="main"),
            maker.result("t.py::a", "passed"),
            maker.result("t.py::b", "failed", attempt=0, final=False),
            maker.result("t.py::b", "passed", attempt=1),
            maker.result("t.py::c", "failed"),
            maker.result("t.py::c", "passed", subtest="[x]"),
        ]
    )
    ended = RecordMaker()
    store.write_sync(
        [
            ended.start(product="live", name="pytest"),
            ended.make(wire.RunStart, project="live", branch="main"),
            ended.make(wire.RunFinish, exit_status=0, status="passed", counts={"passed": 7}),
        ]
    )
    cur = store.reader()
    running = list_runs(cur, project="live", outcome="running")
    assert [r.id for r in running] == [maker.session_id]
    assert running[0].counts == {"passed": 2, "failed": 1, "subtests passed": 1}
    finished = list_runs(cur, project="live", outcome="passed")
    assert [r.id for r in finished] == [ended.session_id]
    assert finished[0].counts == {"passed": 7}  # pytest's own, not recounted
    assert get_run(cur, maker.session_id).counts == running[0].counts  # type: ignore[union-attr]


def test_a_session_page_reads_only_the_latest_events_and_values(store: StoreBase) -> None:
    maker = RecordMaker()
    start = 1_800_000_000.0
    records: list[Any] = [maker.start(name="app")]
    records += [maker.event(f"e{i}", {"i": i}, timestamp=start + i) for i in range(10)]
    for i in range(5):
        for name in ("cpu", "mem"):
            records.append(maker.make(wire.Metric, name=name, value=float(i), timestamp=start + i))
    store.write_sync(records)
    view = session_view(store.reader(), maker.session_id, events=4, values_per_metric=2)
    assert view is not None
    assert [e.name for e in view.session.events] == ["e6", "e7", "e8", "e9"]  # oldest first
    assert view.events_total == 10
    assert view.metric_totals == {"cpu": 5, "mem": 5}
    assert [(m.name, m.value) for m in view.session.metrics if m.name == "cpu"] == [
        ("cpu", 3.0),
        ("cpu", 4.0),
    ]
    assert session_view(store.reader(), "not-a-session", events=4, values_per_metric=2) is None


def test_a_test_failing_through_its_subtests_is_clustered_by_their_failures(
    store: StoreBase,
) -> None:
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(product="subs", name="pytest"),
            maker.make(wire.RunStart, project="subs"),
            maker.result(
                "t.py::test_parts", "failed", subtest="[3]", exc_type="KeyError", exc_message="3"
            ),
            # pytest fails the parent too, with no exception of its own
            maker.result("t.py::test_parts", "failed", stdout="checked 5 parts"),
            maker.result("t.py::test_alone", "failed", stdout="no exception either"),
        ]
    )
    cur = store.reader()
    clusters = failure_clusters(cur, recent_runs(cur, "subs", None, 10))
    assert sorted((c.exc_type, c.count) for c in clusters) == [
        ("(no exception)", 1),  # a failure without exception and without subtests stays
        ("KeyError", 1),
    ]


def test_failing_since_counts_on_the_latest_runs_branch(store: StoreBase) -> None:
    outcomes = [("main", "passed"), ("feature", "failed"), ("main", "failed"), ("main", "failed")]
    started = []
    for i, (branch, outcome) in enumerate(outcomes):
        maker = RecordMaker()
        start = 1_900_000_000.0 + i * 60
        started.append(start)
        store.write_sync(
            [
                maker.start(product="br", name="pytest"),
                maker.make(
                    wire.RunStart, project="br", branch=branch, commit=f"k{i}", timestamp=start
                ),
                maker.result("t.py::test_x", outcome, started_at=start, stopped_at=start + 1),
                maker.make(wire.RunFinish, exit_status=0, status="passed", timestamp=start + 2),
            ]
        )
    cur = store.reader()
    history = test_history(cur, "br", "t.py::test_x", recent_runs(cur, "br", None, 10))
    assert history is not None
    assert history.branch == "main"
    # the feature branch's failure in between does not stretch main's streak
    assert history.failing_since == history.points[2].started_at


@pytest.fixture
def store(any_store: StoreBase) -> StoreBase:
    return any_store
