"""Test runs recorded by ``pytest --datacat``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from datacat_client import wire
from datacat_server.api.paging import Offset
from datacat_server.queries.runs import (
    HangEvent,
    RunInfo,
    TestRow,
    get_run,
    list_runs,
    run_hangs,
    run_tests,
)
from datacat_server.store import Store

__all__ = ["RunController"]

Outcome = Annotated[wire.Outcome | None, QueryParameter(description="Only this outcome.")]


class RunController(Controller):
    path = "/api/runs"
    tags = ("runs",)

    @get("/", sync_to_thread=True, summary="Runs, newest first")
    def index(
        self,
        *,
        store: NamedDependency[Store],
        project: Annotated[str | None, QueryParameter()] = None,
        branch: Annotated[str | None, QueryParameter()] = None,
        outcome: Annotated[
            str | None,
            QueryParameter(
                description="How the run ended: passed, failed, stopped, interrupted,"
                " internal_error, usage_error, no_tests; or running (not ended yet)."
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        offset: Offset = 0,
    ) -> list[RunInfo]:
        return list_runs(
            store.reader(),
            project=project,
            branch=branch,
            outcome=outcome,
            limit=limit,
            offset=offset,
        )

    @get("/{run_id:str}", sync_to_thread=True, summary="One run")
    def detail(self, store: NamedDependency[Store], run_id: FromPath[str]) -> RunInfo:
        run = get_run(store.reader(), run_id)
        if run is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return run

    @get("/{run_id:str}/tests", sync_to_thread=True, summary="A run's test results, failures first")
    def tests(
        self,
        *,
        store: NamedDependency[Store],
        run_id: FromPath[str],
        outcome: Outcome = None,
        q: Annotated[str | None, QueryParameter(description="Node id contains.")] = None,
        order: Annotated[
            str, QueryParameter(pattern="^(failures|slowest|nodeid)$", description="Order.")
        ] = "failures",
        limit: Annotated[int, QueryParameter(ge=1, le=100_000)] = 500,
        offset: Offset = 0,
    ) -> list[TestRow]:
        cur = store.reader()
        if get_run(cur, run_id) is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return run_tests(
            cur, run_id, outcome=outcome, search=q, order=order, limit=limit, offset=offset
        )

    @get("/{run_id:str}/hangs", sync_to_thread=True, summary="A run's hangs, with stacks")
    def hangs(self, store: NamedDependency[Store], run_id: FromPath[str]) -> list[HangEvent]:
        cur = store.reader()
        if get_run(cur, run_id) is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return run_hangs(cur, run_id)
