"""Test runs recorded by ``pytest --datacat``."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from datacat_client import wire
from datacat_server.api.paging import Offset
from datacat_server.queries.base import base_run
from datacat_server.queries.compare import RunComparison, compare_runs
from datacat_server.queries.regressions import DEFAULT_MIN_SECONDS
from datacat_server.queries.runs import (
    HangEvent,
    RunInfo,
    TestRow,
    get_run,
    list_runs,
    run_hangs,
    run_tests,
)
from datacat_server.store import StoreBase

__all__ = ["RunController"]

Outcome = Annotated[wire.Outcome | None, QueryParameter(description="Only this outcome.")]


class RunController(Controller):
    path = "/api/runs"
    tags = ("runs",)

    @get("/", sync_to_thread=True, summary="Runs, newest first")
    def index(
        self,
        *,
        store: NamedDependency[StoreBase],
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
    def detail(self, store: NamedDependency[StoreBase], run_id: FromPath[str]) -> RunInfo:
        run = get_run(store.reader(), run_id)
        if run is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return run

    @get("/{run_id:str}/tests", sync_to_thread=True, summary="A run's test results, failures first")
    def tests(
        self,
        *,
        store: NamedDependency[StoreBase],
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
    def hangs(self, store: NamedDependency[StoreBase], run_id: FromPath[str]) -> list[HangEvent]:
        cur = store.reader()
        if get_run(cur, run_id) is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return run_hangs(cur, run_id)

    @get(
        "/{run_id:str}/compare",
        sync_to_thread=True,
        summary="This run against another: newly failing, fixed, new, removed, slower",
        description="Tests are keyed by node id and subtest; a run's result is the final"
        " attempt. Each test falls in one category: new, removed, still failing, newly"
        " failing, fixed, slower, faster (call durations of tests that passed in both,"
        " by `factor` or more, the longer at least `min_seconds`). The default base is the"
        " run its failures are classified against: the run before this one of its project"
        " and branch (by when the server received it), or for a pull request the target"
        " branch's run on the merge base; a partial run only when there is no full one.",
        raises=[NotFoundException],
    )
    def compare(
        self,
        *,
        store: NamedDependency[StoreBase],
        run_id: FromPath[str],
        base: Annotated[
            str | None,
            QueryParameter(description="The run to compare with (default: the one before)."),
        ] = None,
        factor: Annotated[float, QueryParameter(gt=1.0, le=1000.0)] = 2.0,
        min_seconds: Annotated[
            float,
            QueryParameter(
                ge=0.0,
                le=86_400.0,
                description="Slower and faster leave out tests faster than this in both runs.",
            ),
        ] = DEFAULT_MIN_SECONDS,
        limit: Annotated[
            int, QueryParameter(ge=1, le=100_000, description="Tests listed per category.")
        ] = 1000,
    ) -> RunComparison:
        cur = store.reader()
        if get_run(cur, run_id) is None:
            raise NotFoundException(f"unknown run: {run_id}")
        base_id = base or base_run(cur, run_id)
        if base_id is None:
            raise NotFoundException(
                f"run {run_id} has no earlier run of its project and branch:"
                " name the run to compare with in ?base="
            )
        found = compare_runs(
            cur, run_id, base_id, factor=factor, min_seconds=min_seconds, limit=limit
        )
        if found is None:
            raise NotFoundException(f"unknown base run: {base_id}")
        return found
