"""The suite's duration, run by run, per branch: query, API, the overview's chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from dashboard._charts import suite_duration_chart
from dashboard._links import run_href
from datacat_server.app import create_app
from datacat_server.queries.trend import suite_trend
from datacat_server.queries.window import recent_runs
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.server.history import write_runs


def _tests(*calls: float) -> list[dict[str, Any]]:
    return [
        {
            "nodeid": f"t.py::test_{i}",
            "outcome": "passed",
            "call_duration": c,
            "setup_duration": 0.5,
        }
        for i, c in enumerate(calls)
    ]


def _plans() -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    subtest = {"nodeid": "t.py::test_0", "outcome": "passed", "subtest": "[x]", "call_duration": 9}
    rerun = {"nodeid": "t.py::test_1", "outcome": "failed", "final": False, "call_duration": 9}
    return [
        (_tests(1, 2), {"project": "suite", "duration": 10.0}),
        (_tests(1, 3), {"project": "suite", "branch": "feature", "duration": 20.0}),
        (_tests(2), {"project": "suite", "partial": True, "duration": 3.0}),
        ([*_tests(2, 2), subtest, rerun], {"project": "suite", "duration": 12.0}),
        (_tests(5), {"project": "suite", "finish": False}),  # still running
    ]


def test_each_finished_run_with_its_duration_and_test_time(store: Store) -> None:
    ids = write_runs(store, _plans())
    cur = store.reader()
    trend = suite_trend(cur, recent_runs(cur, "suite", None, 10))
    # oldest first; the run still going is left out; subtests and replaced attempts
    # are not added up
    assert [(r.run, r.branch, r.partial, r.duration, r.test_time, r.tests) for r in trend] == [
        (ids[0], "main", False, 10.0, 4.0, 2),
        (ids[1], "feature", False, 20.0, 5.0, 2),
        (ids[2], "main", True, 3.0, 2.5, 1),
        (ids[3], "main", False, 12.0, 5.0, 2),
    ]
    assert trend[0].commit == "c0000"
    assert [r.run for r in suite_trend(cur, recent_runs(cur, "suite", "feature", 10))] == [ids[1]]
    assert suite_trend(cur, recent_runs(cur, "nothing", None, 10)) == []


def test_the_chart_draws_whole_runs_a_line_per_branch(store: Store) -> None:
    write_runs(store, _plans())
    cur = store.reader()
    spec = suite_duration_chart(suite_trend(cur, recent_runs(cur, "suite", None, 10)), run_href)
    assert [(d["label"], [p["y"] for p in d["points"]]) for d in spec["datasets"]] == [
        ("main: run", [10.0, 12.0]),  # the partial run is not drawn
        ("main: sum of its tests", [4.0, 5.0]),
        ("feature: run", [20.0]),
        ("feature: sum of its tests", [5.0]),
    ]
    assert spec["y"]["unit"] == "s"
    assert spec["datasets"][0]["links"][0].startswith("/runs/")


def test_the_api_and_the_overview(db_path: Path) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        ids = write_runs(client.app.state.store, _plans())
        answer = client.get("/api/trend", params={"project": "suite", "branch": "main"})
        assert answer.status_code == 200
        assert [(p["run"], p["partial"], p["duration"]) for p in answer.json()] == [
            (ids[0], False, 10.0),
            (ids[2], True, 3.0),
            (ids[3], False, 12.0),
        ]
        assert client.get("/api/trend", params={"runs": 0}).status_code == 400
        page = client.get("/", params={"project": "suite"}).text
        section = page.split('id="suite-trend"')[1].split("</section>")[0]
        assert 'data-chart="suite-trend-chart"' in section
        spec = json.loads(section.split('id="suite-trend-chart">')[1].split("</script>")[0])
        assert [d["label"] for d in spec["datasets"]][:2] == ["main: run", "main: sum of its tests"]
        assert (
            f'href="/runs/{ids[2]}">{ids[2][:8]}</a> <span class="muted">(partial)</span>'
            in section
        )


@pytest.mark.parametrize(("seconds", "unit"), [(599.0, "s"), (600.0, "min")])
def test_long_suites_read_in_minutes(store: Store, seconds: float, unit: str) -> None:
    write_runs(store, [(_tests(1), {"project": "long", "duration": seconds})])
    cur = store.reader()
    spec = suite_duration_chart(suite_trend(cur, recent_runs(cur, "long", None, 10)), run_href)
    assert spec["y"]["unit"] == unit
    assert spec["datasets"][0]["points"][0]["y"] == pytest.approx(
        seconds / (60 if unit == "min" else 1)
    )


def test_a_project_with_only_partial_runs_lists_them_and_draws_no_empty_chart(
    db_path: Path,
) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        ids = write_runs(
            client.app.state.store, [(_tests(1), {"project": "probe", "partial": True})]
        )
        page = client.get("/", params={"project": "probe"}).text
        section = page.split('id="suite-trend"')[1].split("</section>")[0]
        assert "data-chart" not in section
        assert "Only partial runs so far" in section
        assert f'href="/runs/{ids[0]}">{ids[0][:8]}</a> <span class="muted">(partial)</span>' in (
            section
        )
        assert "No finished full runs yet (partial runs" in page


def test_a_branch_has_one_colour_in_both_overview_charts(db_path: Path) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        plans = _plans()
        # feature runs more often than main: it comes first in one ranking or another
        plans += [(_tests(1), {"project": "suite", "branch": "feature"})] * 3
        write_runs(client.app.state.store, plans)
        page = client.get("/", params={"project": "suite"}).text

    def spec(chart: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(page.split(f'id="{chart}">')[1].split("</script>")[0])
        return found

    rate = {d["label"]: d["series"] for d in spec("pass-rate-chart")["datasets"]}
    suite = {d["label"]: d["series"] for d in spec("suite-trend-chart")["datasets"]}
    assert set(rate) == {"main", "feature"}
    assert rate["main"] != rate["feature"]
    for branch, colour in rate.items():
        assert suite[f"{branch}: run"] == suite[f"{branch}: sum of its tests"] == colour
