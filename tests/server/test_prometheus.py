"""``GET /metrics``: what it counts, what it reads, who may scrape it.

Every exposition is parsed by `prometheus_client`'s own parser; counts are compared
between two scrapes, so each test checks that they went up by exactly what it did.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from datacat_client import wire
from datacat_server.api.prometheus import PATH
from datacat_server.app import create_app
from datacat_server.auth import load_tokens
from datacat_server.queries.flaky import flaky_tests
from datacat_server.queries.window import recent_runs
from datacat_server.settings import Settings
from datacat_server.store import Store
from datacat_server.telemetry import REASONS, UNMATCHED
from tests.server.records import RecordMaker, batch

Client = TestClient[Litestar]

INGEST = "ingest-token-0123456789abcdef"
READ = "read-token-0123456789abcdef00"
REJECTION_REASONS = {*REASONS.values(), "writer_busy", "storage", "unavailable", "other"}


class Scrape:
    """One exposition, parsed: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a counter's series that does not exist yet."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) <= 1, (name, labels)
        return found[0] if found else 0.0

    def labelled(self, name: str) -> dict[tuple[str, ...], float]:
        """Every sample of ``name``, by its label values (sorted by label name)."""
        return {
            tuple(v for _, v in sorted(s.labels.items())): s.value
            for s in self.samples
            if s.name == name
        }

    def rejected(self) -> dict[str, float]:
        return {
            s.labels["reason"]: s.value
            for s in self.samples
            if s.name == "datacat_http_rejected_total"
        }


def scrape(client: Client, token: str | None = None) -> Scrape:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = client.get(PATH, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(answer.text)


def rejected_delta(before: Scrape, after: Scrape) -> dict[str, float]:
    old, new = before.rejected(), after.rejected()
    assert set(new) == REJECTION_REASONS  # every reason is there from the start
    return {reason: new[reason] - old[reason] for reason in new if new[reason] != old[reason]}


def fresh(client: Client) -> Client:
    """Read the per-project gauges at every scrape (they are cached for 30 s)."""
    client.app.state.telemetry.gauges.cache_seconds = 0.0
    return client


def ingest(client: Client, *records: Any, token: str | None = None) -> Any:
    headers = {"content-type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/api/ingest", content=batch(*records), headers=headers)


@pytest.fixture
def guarded(db_path: Path) -> Iterator[Client]:
    tokens = load_tokens({"DATACAT_TOKENS": f"ingest:{INGEST},read:{READ}"})
    with TestClient(app=create_app(Settings(db_path=db_path), tokens=tokens)) as client:
        yield client


# -- the exposition -----------------------------------------------------------------------


def test_the_exposition_names_every_family_with_its_type(client: Client) -> None:
    families = scrape(client).families
    # In the text format, prometheus_client gives counters and histograms a gauge
    # family of their own for the time they were created.
    created = {name for name in families if name.endswith("_created")}
    assert created == {
        f"{name}_created"
        for name in (
            "datacat_http_rejected",
            "datacat_results_ingested",
            "datacat_writer_commit_seconds",
        )
    }
    types = {name: family.type for name, family in families.items() if name not in created}
    assert types == {
        "datacat_http_requests": "counter",
        "datacat_http_rejected": "counter",
        "datacat_results_ingested": "counter",
        "datacat_writer_commit_seconds": "histogram",
        "datacat_writer_queue_depth": "gauge",
        "datacat_database_bytes": "gauge",
        "datacat_project_pass_ratio": "gauge",
        "datacat_project_failures": "gauge",
        "datacat_project_duration_seconds": "gauge",
        "datacat_project_latest_run_timestamp_seconds": "gauge",
        "datacat_project_flaky_tests": "gauge",
        "datacat_project_gauges_seconds": "gauge",
    }
    assert all(family.documentation for family in families.values())


def test_openmetrics_when_the_scraper_asks_for_it(client: Client) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    answer = client.get(PATH, headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    names = {family.name for family in openmetrics_families(answer.text)}
    assert {"datacat_http_requests", "datacat_writer_commit_seconds"} <= names


def test_each_app_counts_for_itself(tmp_path: Path) -> None:
    # Tests (and any process) make many apps: a registry shared between them would
    # mix their counts, and refuse the second app's metrics as duplicates.
    with TestClient(app=create_app(Settings(db_path=tmp_path / "a.duckdb"))) as first:
        for _ in range(3):
            assert first.get("/api/runs").status_code == 200
        counted = scrape(first).value(
            "datacat_http_requests_total", route="/api/runs", method="GET", status="200"
        )
        assert counted == 3
    with TestClient(app=create_app(Settings(db_path=tmp_path / "b.duckdb"))) as second:
        assert second.get("/api/runs").status_code == 200
        counted = scrape(second).value(
            "datacat_http_requests_total", route="/api/runs", method="GET", status="200"
        )
        assert counted == 1
    assert first.app.state.telemetry.registry is not second.app.state.telemetry.registry


# -- requests -------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_method_and_status(client: Client) -> None:
    before = scrape(client)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for run_id in ids:
        assert client.get(f"/api/runs/{run_id}").status_code == 404
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs").status_code == 200
    for path in ("/no/such/page", f"/no/{ids[0]}"):
        assert client.get(path).status_code == 404
    assert client.request("BREW", "/api/runs").status_code in (400, 405)
    after = scrape(client)

    def delta(**labels: str) -> float:
        name = "datacat_http_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(route="/api/runs/{run_id}", method="GET", status="404") == 3
    assert delta(route="/api/runs", method="GET", status="200") == 2
    assert delta(route=UNMATCHED, method="GET", status="404") == 2
    brewed = {
        k: v for k, v in after.labelled("datacat_http_requests_total").items() if "other" in k
    }
    assert sum(brewed.values()) == 1  # a method no route knows is "other", not "BREW"
    # Raw paths never become label values: the ids are nowhere in the exposition.
    routes = {s.labels.get("route", "") for s in after.samples}
    assert not any(run_id in route for run_id in ids for route in routes)


def test_scrapes_are_not_counted_as_requests(client: Client) -> None:
    for _ in range(5):
        last = scrape(client)
    routes = {s.labels["route"] for s in last.samples if s.name == "datacat_http_requests_total"}
    assert PATH not in routes
    assert last.value("datacat_http_rejected_total", reason="not_found") == 0


# -- rejections -----------------------------------------------------------------------------


def test_invalid_input_not_found_and_too_large_are_counted_by_reason(db_path: Path) -> None:
    settings = Settings(db_path=db_path, max_body_size=10_000)
    with TestClient(app=create_app(settings)) as client:
        before = scrape(client)
        bad = client.post(
            "/api/ingest", content=b'{"records": 5}', headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        unknown = ingest(client, RecordMaker().event("orphan"))  # a session never started
        assert unknown.status_code == 404
        assert client.get(f"/api/sessions/{uuid.uuid4()}").status_code == 404
        big = client.post(
            "/api/ingest", content=b" " * 20_000, headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        assert rejected_delta(before, scrape(client)) == {
            "invalid": 1,
            "not_found": 2,
            "too_large": 1,
        }


def test_unauthorized_and_forbidden_are_counted_even_on_the_exposition(guarded: Client) -> None:
    before = scrape(guarded, READ)
    assert guarded.get("/api/runs").status_code == 401
    assert guarded.get(PATH).status_code == 401  # a scraper without its token
    assert guarded.get(PATH, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert guarded.get(PATH, headers={"Authorization": f"Bearer {INGEST}"}).status_code == 403
    assert rejected_delta(before, scrape(guarded, READ)) == {"unauthorized": 3, "forbidden": 1}


def test_the_exposition_needs_a_read_token_when_tokens_are_set(guarded: Client) -> None:
    answer = guarded.get(PATH)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert guarded.get(PATH, headers={"Authorization": f"Bearer {INGEST}"}).status_code == 403
    assert guarded.get(PATH, headers={"Authorization": f"Bearer {READ}"}).status_code == 200


def test_rate_limited_requests_are_counted_and_do_not_starve_the_scraper(db_path: Path) -> None:
    tokens = load_tokens({"DATACAT_TOKENS": f"ingest:{INGEST},read:{READ}"})
    settings = Settings(db_path=db_path, rate_limit=0.001, rate_burst=4)
    with TestClient(app=create_app(settings, tokens=tokens)) as client:
        before = scrape(client, READ)  # the read token's bucket: 1 of 4
        maker = RecordMaker()
        records = [maker.start(product="p"), *(maker.event(f"e{i}") for i in range(5))]
        statuses = [ingest(client, record, token=INGEST).status_code for record in records]
        assert statuses == [200] * 4 + [429] * 2  # the ingest token's own 4
        after = scrape(client, READ)  # 2 of 4: throttling the ingest token spared it
        assert rejected_delta(before, after) == {"rate_limited": 2}
        # The 429s came from the limiter, before the route ran, and are counted there.
        assert (
            after.value(
                "datacat_http_requests_total", route="/api/ingest", method="POST", status="429"
            )
            == 2
        )


def test_a_full_writer_and_a_stopped_store_are_counted_apart(client: Client) -> None:
    store: Store = client.app.state.store
    maker = RecordMaker()
    assert ingest(client, maker.start(product="p")).status_code == 200
    before = scrape(client)
    with _writer_held(store) as waiting:
        while True:  # fill its queue, then one request more is refused
            future = store.writer.submit([])
            if future.done():
                break
            waiting.append(future)
        busy = ingest(client, maker.event("e"))
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    store.writer.stop()  # as at shutdown: writes are refused as the store being down
    down = ingest(client, maker.event("e"))
    assert down.status_code == 503
    assert rejected_delta(before, scrape(client)) == {"writer_busy": 1, "storage": 1}


class _writer_held:
    """Keep the writer thread busy with a maintenance task until the block ends; the
    futures the block appends to the list are then waited for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()
        self.waiting: list[Any] = []

    def _hold(self, _: Any) -> None:
        self.entered.set()
        assert self.release.wait(30)

    def __enter__(self) -> list[Any]:
        self.task = self.store.writer.maintain(self._hold)
        assert self.entered.wait(10)
        return self.waiting

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.task.result(30)
        for future in self.waiting:
            future.result(30)


# -- the writer -----------------------------------------------------------------------------


def _run_records(maker: RecordMaker, results: int, *, project: str = "shop") -> list[Any]:
    return [
        maker.start(product=project, name="pytest"),
        maker.make(wire.RunStart, project=project, branch="main", commit="c1"),
        *(maker.result(f"t.py::test_{i}") for i in range(results)),
    ]


def test_results_ingested_go_up_by_what_was_stored_once(client: Client) -> None:
    before = scrape(client)
    maker = RecordMaker()
    records = _run_records(maker, 37)
    assert ingest(client, *records).status_code == 200
    assert ingest(client, *records).status_code == 200  # sent again: stored once
    more = [maker.result(f"t.py::test_more_{i}", "failed") for i in range(5)]
    assert ingest(client, *more).status_code == 200
    after = scrape(client)
    assert (
        after.value("datacat_results_ingested_total")
        - before.value("datacat_results_ingested_total")
        == 37 + 5
    )


def test_the_commit_histogram_counts_each_commit(client: Client) -> None:
    before = scrape(client)
    maker = RecordMaker()
    assert ingest(client, maker.start(product="p")).status_code == 200
    for i in range(6):  # one after the other: each is a commit of its own
        assert ingest(client, maker.event(f"e{i}")).status_code == 200
    after = scrape(client)
    name = "datacat_writer_commit_seconds"
    commits = after.value(f"{name}_count") - before.value(f"{name}_count")
    assert commits == 7
    assert after.value(f"{name}_bucket", le="+Inf") == after.value(f"{name}_count")
    assert after.value(f"{name}_sum") > before.value(f"{name}_sum")


def test_queue_depth_is_what_waits_for_the_writer(client: Client) -> None:
    store: Store = client.app.state.store
    assert scrape(client).value("datacat_writer_queue_depth") == 0
    with _writer_held(store) as waiting:
        waiting.extend(store.writer.submit([]) for _ in range(7))
        assert scrape(client).value("datacat_writer_queue_depth") == 7
    assert scrape(client).value("datacat_writer_queue_depth") == 0


def test_database_size_is_the_file_and_its_wal(client: Client, db_path: Path) -> None:
    maker = RecordMaker()
    assert ingest(client, *_run_records(maker, 200)).status_code == 200
    sizes = scrape(client).labelled("datacat_database_bytes")
    assert set(sizes) == {("database",), ("wal",)}
    assert sizes[("database",)] == db_path.stat().st_size > 0
    assert sizes[("database",)] + sizes[("wal",)] > 0


def test_a_failing_observer_never_fails_a_commit(client: Client) -> None:
    store: Store = client.app.state.store

    def broken(results: int, seconds: float) -> None:
        raise RuntimeError("observer broke")

    store.writer.observer = broken
    maker = RecordMaker()
    records = _run_records(maker, 3)
    answer = ingest(client, *records)
    assert answer.status_code == 200
    assert msgspec.json.decode(answer.content)["accepted"] == len(records)
    stored = store.reader().execute("SELECT count(*) FROM results").fetchall()[0][0]
    assert stored == 3  # committed once, not retried as a failure


# -- per-project gauges ---------------------------------------------------------------------


def _run(
    store: Store,
    project: str,
    branch: str,
    commit: str,
    outcomes: dict[str, str],
    *,
    counts: dict[str, int] | None = None,
    duration: float = 10.0,
    finish: bool = True,
) -> None:
    """One pytest run as the plugin records it (finished unless ``finish`` is False)."""
    maker = RecordMaker()
    records: list[Any] = [
        maker.start(product=project, name="pytest"),
        maker.make(wire.RunStart, project=project, branch=branch, commit=commit),
        *(maker.result(nodeid, outcome) for nodeid, outcome in outcomes.items()),
    ]
    if finish:
        if counts is None:
            counts = {}
            for outcome in outcomes.values():
                counts[outcome] = counts.get(outcome, 0) + 1
        records.append(
            maker.make(
                wire.RunFinish, exit_status=0, status="passed", counts=counts, duration=duration
            )
        )
    store.write_sync(records)


def test_per_project_gauges_are_the_latest_finished_run_of_each_branch(client: Client) -> None:
    store: Store = client.app.state.store
    started = time.time()
    # shop/main: the flaky test fails then passes on commit c1; a newer run on c2 is
    # still going (not finished: not "the latest run" yet).
    _run(store, "shop", "main", "c1", {"a": "passed", "b": "passed", "f": "failed"}, duration=30)
    _run(store, "shop", "main", "c1", {"a": "passed", "b": "passed", "f": "passed"}, duration=31)
    _run(store, "shop", "main", "c2", {"a": "failed"}, finish=False)
    # shop/dev: one failure, one error: failing, but once is no evidence of flakiness.
    _run(store, "shop", "dev", "d1", {"a": "passed", "b": "failed", "x": "error"}, duration=12.5)
    # api/main: everything skipped: no pass rate to give.
    _run(store, "api", "main", "e1", {"s1": "skipped", "s2": "skipped"}, duration=2)
    finished = time.time()
    gauges = scrape(fresh(client))

    assert gauges.labelled("datacat_project_pass_ratio") == {
        ("main", "shop"): 1.0,
        ("dev", "shop"): pytest.approx(1 / 3),
    }
    assert gauges.labelled("datacat_project_failures") == {
        ("main", "shop"): 0,
        ("dev", "shop"): 2,
        ("main", "api"): 0,
    }
    assert gauges.labelled("datacat_project_duration_seconds") == {
        ("main", "shop"): 31,
        ("dev", "shop"): 12.5,
        ("main", "api"): 2,
    }
    received = gauges.labelled("datacat_project_latest_run_timestamp_seconds")
    assert set(received) == {("main", "shop"), ("dev", "shop"), ("main", "api")}
    assert all(started - 1 <= value <= finished + 1 for value in received.values())
    assert gauges.labelled("datacat_project_flaky_tests") == {("shop",): 1, ("api",): 0}
    # The same answer as the flaky page's, over its default window.
    cur = store.reader()
    assert [t.nodeid for t in flaky_tests(cur, recent_runs(cur, "shop", None, 100))] == ["f"]


def test_flaky_counts_follow_the_rule_per_project(client: Client) -> None:
    store: Store = client.app.state.store
    # rerun: failed, rerun, passed in one run.
    maker = RecordMaker()
    store.write_sync(
        [
            maker.start(product="rerun", name="pytest"),
            maker.make(wire.RunStart, project="rerun", branch="main", commit="r1"),
            maker.result("t.py::test_r", "failed", final=False),
            maker.result("t.py::test_r", "passed", attempt=1),
        ]
    )
    # flips: fails, passes, fails again on different commits (two stretches); broken:
    # passes, then fails from a commit on (one stretch: broken, not flaky).
    for i, (flip, broken) in enumerate(
        [("failed", "passed"), ("passed", "passed"), ("failed", "failed"), ("passed", "failed")]
    ):
        _run(store, "flips", "main", f"f{i}", {"t.py::test_flip": flip, "t.py::test_b": broken})
    gauges = scrape(fresh(client))
    assert gauges.labelled("datacat_project_flaky_tests") == {("rerun",): 1, ("flips",): 1}
    cur = store.reader()
    for project, count in (("rerun", 1), ("flips", 1)):
        assert len(flaky_tests(cur, recent_runs(cur, project, None, 100))) == count


def test_projects_and_branches_are_bounded_most_recent_first(client: Client) -> None:
    store: Store = client.app.state.store
    gauges = fresh(client).app.state.telemetry.gauges
    gauges.projects, gauges.branches = 2, 3
    for project in ("old", "middle", "new"):
        for branch in ("b1", "b2", "b3", "b4"):
            _run(store, project, branch, "c", {"t": "passed"})
    _run(store, "middle", "b1", "c", {"t": "failed"})  # b1 is now middle's latest branch
    _run(store, "new", "b4", "c", {"t": "passed"})  # the latest project
    shown = scrape(client).labelled("datacat_project_failures")
    assert shown == {
        ("b1", "middle"): 1,
        ("b3", "middle"): 0,
        ("b4", "middle"): 0,
        ("b2", "new"): 0,
        ("b3", "new"): 0,
        ("b4", "new"): 0,
    }
    flaky = scrape(client).labelled("datacat_project_flaky_tests")
    assert set(flaky) == {("middle",), ("new",)}


def test_per_project_gauges_are_cached(client: Client) -> None:
    store: Store = client.app.state.store
    _run(store, "shop", "main", "c1", {"t": "passed"})
    assert scrape(client).labelled("datacat_project_failures") == {("main", "shop"): 0}
    _run(store, "shop", "main", "c2", {"t": "failed"})
    # Within the cache's time the first read is shown again; then the store is read.
    assert scrape(client).labelled("datacat_project_failures") == {("main", "shop"): 0}
    assert scrape(fresh(client)).labelled("datacat_project_failures") == {("main", "shop"): 1}


def test_no_runs_no_project_series(client: Client) -> None:
    gauges = scrape(client)
    for family in ("pass_ratio", "failures", "duration_seconds", "flaky_tests"):
        assert gauges.labelled(f"datacat_project_{family}") == {}
    # The read of nothing took some time, and not much of it.
    assert 0 < gauges.value("datacat_project_gauges_seconds") < 60


def test_a_browser_at_metrics_is_sent_to_the_explorer(client: Client) -> None:
    """The explorer lived at /metrics: a link to it still lands on it, query and all."""
    page = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    answer = client.get(
        "/metrics?name=fps&aggregation=peak", headers={"Accept": page}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/explore?name=fps&aggregation=peak"
    assert (
        client.get("/metrics", headers={"Accept": "*/*"})
        .headers["content-type"]
        .startswith("text/plain")
    )
