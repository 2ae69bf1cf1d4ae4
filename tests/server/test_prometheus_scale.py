"""The per-project gauges stay bounded however much the store holds: 1,000 projects
with 20 branches each, and a project with 5,000 flaky tests, make no more series than
the bounds (50 projects, 10 branches each) allow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.prometheus import build
from datacat_client import wire
from datacat_server.api.prometheus import PATH
from datacat_server.app import create_app
from datacat_server.queries.flaky import flaky_tests
from datacat_server.queries.window import recent_runs
from datacat_server.settings import Settings
from datacat_server.store import Store
from datacat_server.telemetry import DEFAULT_BRANCHES, DEFAULT_PROJECTS
from tests.server.records import RecordMaker

pytestmark = pytest.mark.slow

#: Two runs per branch, on one commit: the generated projects' occasional failures are
#: flaky by the same-commit evidence.
PROJECTS, BRANCHES, RUNS, TESTS = 1000, 20, 2, 20
WIDE_TESTS = 5000
BRANCH_FAMILIES = (
    "datacat_project_pass_ratio",
    "datacat_project_failures",
    "datacat_project_duration_seconds",
    "datacat_project_latest_run_timestamp_seconds",
)


def _wide_project(store: Store) -> None:
    """The latest project: 5,000 tests that passed, then failed on the same commit."""
    for outcome in ("passed", "failed"):
        maker = RecordMaker()
        records: list[Any] = [
            maker.start(product="wide", name="pytest"),
            maker.make(wire.RunStart, project="wide", branch="main", commit="w1"),
            *(maker.result(f"t.py::test_{i}", outcome) for i in range(WIDE_TESTS)),
            maker.make(wire.RunFinish, exit_status=0, status=outcome, counts={outcome: WIDE_TESTS}),
        ]
        store.write_sync(records)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    path = tmp_path_factory.mktemp("prometheus") / "big.duckdb"
    build(path, projects=PROJECTS, branches=BRANCHES, runs=RUNS, tests=TESTS)
    store = Store(path)
    try:
        _wide_project(store)
        with TestClient(app=create_app(Settings(db_path=path), store=store)) as client:
            yield client
    finally:
        store.close()


def test_the_series_are_bounded_by_the_settings_not_the_store(big: TestClient[Litestar]) -> None:
    cur = big.app.state.store.reader()
    projects, runs, tests = cur.execute(
        "SELECT (SELECT count(DISTINCT project) FROM runs), (SELECT count(*) FROM runs),"
        " (SELECT count(*) FROM tests)"
    ).fetchall()[0]
    assert (projects, runs, tests) == (PROJECTS + 1, PROJECTS * BRANCHES * RUNS + 2, 25_000)

    answer = big.get(PATH)
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}

    # The 50 most recently run: "wide", then the generated ones from the newest down.
    newest = {f"project-{p}" for p in range(PROJECTS - DEFAULT_PROJECTS + 1, PROJECTS)}
    shown = {s.labels["project"]: s.value for s in families["datacat_project_flaky_tests"].samples}
    assert set(shown) == newest | {"wide"}
    assert shown["wide"] == WIDE_TESTS  # one series, however many tests are flaky

    # Their 10 most recently run branches each (branch b of project p ran as run
    # b * 1000 + p): 49 x 10, and "wide"'s one.
    recent = {f"branch-{b}" for b in range(BRANCHES - DEFAULT_BRANCHES, BRANCHES)}
    expected = {(p, b) for p in newest for b in recent} | {("wide", "main")}
    for name in BRANCH_FAMILIES:
        labels = {(s.labels["project"], s.labels["branch"]) for s in families[name].samples}
        assert labels == expected, name

    # Each count is the flaky page's, though the projects' windows interleave and were
    # read in one query.
    for project, count in shown.items():
        window = recent_runs(cur, project, None, 100)
        assert count == len(flaky_tests(cur, window, limit=10_000)), project
    assert sum(shown.values()) > WIDE_TESTS  # the generated projects have some too

    # Everything together: a constant, whatever the number of tests, runs or projects.
    samples = sum(len(f.samples) for f in families.values())
    assert samples <= len(BRANCH_FAMILIES) * DEFAULT_PROJECTS * DEFAULT_BRANCHES + 200
