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
from datacat_server.queries.slow import (
    DEFAULT_MIN_SECONDS,
    Regression,
    SlowTest,
    regressions,
    slow_tests,
)
from datacat_server.queries.test_history import TestHistory, test_history
from datacat_server.queries.window import asked_window, default_project, projects
from datacat_server.store import Store

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
    def projects(self, store: NamedDependency[Store]) -> list[ProjectInfo]:
        return [ProjectInfo(name, branches) for name, branches in projects(store.reader())]

    @get("/overview", sync_to_thread=True, summary="Recent and live runs, problems, trends")
    def overview(
        self, *, store: NamedDependency[Store], project: Project = None, runs: Runs = 100
    ) -> Overview:
        cur = store.reader()
        return overview(cur, project or default_project(cur), runs=runs)

    @get("/flaky", sync_to_thread=True, summary="Flaky tests, definitive evidence first")
    def flaky(
        self,
        *,
        store: NamedDependency[Store],
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
        store: NamedDependency[Store],
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
        summary="Tests that got slower",
        description="Median over the newest `recent` runs of the window (default: its"
        " newest quarter) against the median over the older ones.",
    )
    def regressions(
        self,
        *,
        store: NamedDependency[Store],
        project: Project = None,
        branch: Branch = None,
        runs: Runs = 200,
        recent: Annotated[int | None, QueryParameter(ge=1, le=100_000)] = None,
        threshold: Annotated[float, QueryParameter(gt=1.0, le=1000.0)] = 1.5,
        min_seconds: Annotated[
            float,
            QueryParameter(
                ge=0.0,
                le=86_400.0,
                description="Leave out tests whose recent median is faster than this:"
                " their noise is bigger than they are.",
            ),
        ] = DEFAULT_MIN_SECONDS,
        limit: Limit = 50,
    ) -> list[Regression]:
        cur = store.reader()
        window = asked_window(cur, project, branch, runs)
        return regressions(
            cur,
            window,
            recent=recent,
            threshold=threshold,
            min_seconds=min_seconds,
            limit=limit,
        )

    @get("/failures", sync_to_thread=True, summary="Failures grouped by type and message")
    def failures(
        self,
        *,
        store: NamedDependency[Store],
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
        store: NamedDependency[Store],
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
