"""``/runs`` and ``/runs/{id}``: the list of test runs, and one run with its tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from dashboard._paging import Paging
from dashboard._params import QueryReader, filters_href
from dashboard._render import render
from dashboard._window import ProjectChoice
from datacat_client.wire import OUTCOMES
from datacat_server.queries.runs import (
    UNFINISHED,
    HangEvent,
    RunInfo,
    TestRow,
    count_run_tests,
    count_runs,
    get_run,
    list_runs,
    run_hangs,
    run_tests,
)
from datacat_server.queries.window import projects
from datacat_server.store import StoreBase

__all__ = ["RUN_OUTCOMES", "RunPage", "RunPages", "RunTestFilters", "RunsFilters", "RunsPage"]

#: How a pytest run can end (``RunFinish.status``), and ``running``: not ended yet.
RUN_OUTCOMES = (
    UNFINISHED,
    "passed",
    "failed",
    "stopped",
    "interrupted",
    "internal_error",
    "usage_error",
    "no_tests",
)
RUNS_PER_PAGE = 50
TESTS_PER_PAGE = 200
SLOWEST = 10
#: Failures whose traceback a run page shows open (the rest fold, to keep it short).
OPEN_TRACEBACKS = 5


@dataclasses.dataclass(frozen=True)
class RunsFilters:
    project: str | None
    branch: str | None
    outcome: str | None
    page: int

    @classmethod
    def read(cls, query: QueryReader) -> RunsFilters:
        return cls(
            project=query.text("project"),
            branch=query.text("branch"),
            outcome=query.choice("outcome", RUN_OUTCOMES),
            page=query.page(),
        )

    def link(self, **changes: object) -> str:
        """This list's URL, with some filters changed."""
        return filters_href("/runs", self, **changes)


@dataclasses.dataclass(frozen=True)
class RunsPage:
    """Context of ``runs.html`` and ``_runs_table.html``."""

    filters: RunsFilters
    projects: list[ProjectChoice]
    runs: list[RunInfo]
    paging: Paging
    outcomes: tuple[str, ...] = RUN_OUTCOMES


@dataclasses.dataclass(frozen=True)
class RunTestFilters:
    outcome: str | None
    q: str | None
    page: int

    @classmethod
    def read(cls, query: QueryReader) -> RunTestFilters:
        return cls(
            outcome=query.choice("outcome", OUTCOMES),
            q=query.text("q"),
            page=query.page(),
        )

    def link(self, run_id: str, **changes: object) -> str:
        """The run's URL with these filters, some changed."""
        return filters_href(f"/runs/{run_id}", self, **changes)


@dataclasses.dataclass(frozen=True)
class RunPage:
    """Context of ``run.html``, ``_run_live.html`` and ``_run_tests.html``."""

    run: RunInfo
    filters: RunTestFilters
    #: Failures and errors first, then by node id; filtered and paged.
    tests: list[TestRow]
    paging: Paging
    slowest: list[TestRow]
    hangs: list[HangEvent]
    outcomes: tuple[str, ...] = OUTCOMES
    #: The first failures of a page show their traceback open.
    open_tracebacks: int = OPEN_TRACEBACKS

    @property
    def live(self) -> bool:
        """The run goes on: its live parts refresh themselves."""
        return self.run.status in ("running", "hung")

    def link(self, **changes: object) -> str:
        """This page's URL, with some test filters changed."""
        return self.filters.link(self.run.id, **changes)


class RunPages(Controller):
    path = "/runs"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:runs")
    def runs(self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]) -> Template:
        filters = RunsFilters.read(QueryReader(request.query_params))
        cur = store.reader()
        chosen = {"project": filters.project, "branch": filters.branch, "outcome": filters.outcome}
        paging = Paging(filters.page, RUNS_PER_PAGE, count_runs(cur, **chosen))
        page = RunsPage(
            filters=filters,
            projects=[ProjectChoice(name, branches) for name, branches in projects(cur)],
            runs=list_runs(cur, **chosen, limit=RUNS_PER_PAGE, offset=paging.offset),
            paging=paging,
        )
        return render(request, "runs.html", page, {"runs-table": "_runs_table.html"})

    @get("/{run_id:str}", sync_to_thread=True, name="dashboard:run")
    def run(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[StoreBase],
        run_id: FromPath[str],
    ) -> Template:
        filters = RunTestFilters.read(QueryReader(request.query_params))
        cur = store.reader()
        run = get_run(cur, run_id)
        if run is None:
            raise NotFoundException(f"There is no run {run_id!r}.")
        total = count_run_tests(cur, run.id, outcome=filters.outcome, search=filters.q)
        paging = Paging(filters.page, TESTS_PER_PAGE, total)
        tests = run_tests(
            cur,
            run.id,
            outcome=filters.outcome,
            search=filters.q,
            limit=TESTS_PER_PAGE,
            offset=paging.offset,
        )
        page = RunPage(
            run=run,
            filters=filters,
            tests=tests,
            paging=paging,
            slowest=run_tests(cur, run.id, order="slowest", limit=SLOWEST),
            hangs=run_hangs(cur, run.id),
        )
        fragments = {"run-live": "_run_poll.html", "run-tests": "_run_tests.html"}
        return render(request, "run.html", page, fragments)
