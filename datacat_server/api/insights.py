"""What the runs add up to: flaky, slow and failing tests, a test's history, the overview.

Every endpoint looks at a window of recent runs: the last ``runs`` runs (default 100)
of a ``project`` (default: the one that ran last), on one ``branch`` or all.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter

from datacat_server.queries.failures import FailureCluster, failure_clusters
from datacat_server.queries.flaky import FlakyTest, flaky_tests
from datacat_server.queries.overview import Overview, overview
from datacat_server.queries.regressions import (
    DEFAULT_MAX_P,
    DEFAULT_MIN_SECONDS,
    DEFAULT_THRESHOLD,
    MAX_RUNS,
    Regression,
    regressions,
)
from datacat_server.queries.slow import SlowTest, slow_tests
from datacat_server.queries.test_history import TestHistory, test_history
from datacat_server.queries.trend import SuiteRun, suite_trend
from datacat_server.queries.window import asked_window, default_project, projects
from datacat_server.store import StoreBase

__all__ = ["InsightController"]

Project = Annotated[
    str | None, QueryParameter(description="Project (default: the one that ran last).")
]
Branch = Annotated[str | None, QueryParameter(description="Only runs on this branch.")]
Runs = Annotated[int, QueryParameter(ge=1, le=100_000, description="How many recent runs.")]
Limit = Annotated[int, QueryParameter(ge=1, le=10_000)]


class ProjectInfo(msgspec.Struct):
    project: str
    branches: list[str]


class InsightController(Controller):
    path = "/api"
    tags = ("insights",)

    @get("/projects", sync_to_thread=True, summary="Projects and their branches")
    def projects(self, store: NamedDependency[StoreBase]) -> list[ProjectInfo]:
        return [ProjectInfo(name, branches) for name, branches in projects(store.reader())]

    @get("/overview", sync_to_thread=True, summary="Recent and live runs, problems, trends")
    def overview(
        self, *, store: NamedDependency[StoreBase], project: Project = None, runs: Runs = 100
    ) -> Overview:
        cur = store.reader()
        return overview(cur, project or default_project(cur), runs=runs)

    @get("/flaky", sync_to_thread=True, summary="Flaky tests, definitive evidence first")
    def flaky(
        self,
        *,
        store: NamedDependency[StoreBase],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 100,
        limit: Limit = 50,
    ) -> list[FlakyTest]:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        return flaky_tests(cur, window, limit=limit)

    @get("/slow", sync_to_thread=True, summary="Slowest tests: p50, p95, max, share")
    def slow(
        self,
        *,
        store: NamedDependency[StoreBase],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 100,
        order: Annotated[
            str, QueryParameter(pattern="^(p95|p50|max|total)$", description="Sort key.")
        ] = "p95",
        limit: Limit = 50,
    ) -> list[SlowTest]:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        return slow_tests(cur, window, order=order, limit=limit)

    @get(
        "/regressions",
        sync_to_thread=True,
        summary="Tests that got slower, where and by how much",
        description="Each test's call durations (final attempt, passed; setup and teardown"
        " left out, so start-up and session fixtures charged to the first test do not"
        " count), one series per branch in run order, are cut where their level changed"
        " (binary segmentation with a t-test on log durations: see the README). A test is"
        " listed if, at a change point, its median since is `threshold` times its median"
        " before and at least `min_seconds`, it is still that slow, the change's p-value is"
        f" under `max_p`, and `min_runs` passing runs came since. At most the newest"
        f" {MAX_RUNS} runs are read: a slowdown older than that is the test's normal speed.",
    )
    def regressions(
        self,
        *,
        store: NamedDependency[StoreBase],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 200,
        threshold: Annotated[
            float,
            QueryParameter(gt=1.0, le=1000.0, description="Median since / median before."),
        ] = DEFAULT_THRESHOLD,
        min_seconds: Annotated[
            float,
            QueryParameter(
                ge=0.0,
                le=86_400.0,
                description="Leave out tests whose median since the change is faster than"
                " this: their noise is bigger than they are.",
            ),
        ] = DEFAULT_MIN_SECONDS,
        max_p: Annotated[
            float,
            QueryParameter(
                ge=1e-12,
                le=0.5,
                description="The p-value a change must be under (smaller: fewer, surer).",
            ),
        ] = DEFAULT_MAX_P,
        min_runs: Annotated[
            int,
            QueryParameter(
                ge=3, le=10_000, description="The fewest passing runs since the change."
            ),
        ] = 3,
        limit: Limit = 50,
    ) -> list[Regression]:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        return regressions(
            cur,
            window,
            threshold=threshold,
            min_seconds=min_seconds,
            max_p=max_p,
            min_runs=min_runs,
            limit=limit,
        )

    @get(
        "/trend",
        sync_to_thread=True,
        summary="The suite's duration, run by run",
        description="Each finished run of the window, oldest first: its duration and the"
        " sum of its tests' durations, with its branch (draw a line per branch). Partial"
        " runs (-k, -m, --lf, named files) are marked `partial`: they are not comparable.",
    )
    def trend(
        self,
        *,
        store: NamedDependency[StoreBase],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 100,
    ) -> list[SuiteRun]:
        cur = store.reader()
        return suite_trend(cur, asked_window(cur, project, branch, runs))

    @get("/failures", sync_to_thread=True, summary="Failures grouped by type and message")
    def failures(
        self,
        *,
        store: NamedDependency[StoreBase],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 100,
        limit: Limit = 50,
    ) -> list[FailureCluster]:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        return failure_clusters(cur, window, limit=limit)

    @get(
        "/tests/history",
        sync_to_thread=True,
        summary="One test over recent runs",
        raises=[NotFoundException],
    )
    def history(
        self,
        *,
        store: NamedDependency[StoreBase],
        nodeid: Annotated[str, QueryParameter(min_length=1, description="The test's node id.")],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 50,
    ) -> TestHistory:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        found = test_history(cur, window.project, nodeid, window) if window.project else None
        if found is None:
            raise NotFoundException(f"unknown test: {nodeid}")
        return found
