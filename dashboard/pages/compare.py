"""``/runs/{id}/compare``: a run against another (by default, the one before it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from datacat_server.queries.base import base_run
from datacat_server.queries.compare import RunComparison, TestChange, compare_runs
from datacat_server.queries.regressions import DEFAULT_MIN_SECONDS
from datacat_server.queries.runs import RunInfo, get_run
from datacat_server.web import read_cursor

__all__ = ["ComparePage", "ComparePages"]

#: Tests listed per category.
LIMIT = 500


@dataclasses.dataclass(frozen=True)
class ComparePage:
    """Context of ``compare.html``."""

    run: RunInfo
    #: The base the URL named (None: the run before this one).
    base: str | None
    factor: float
    min_seconds: float
    #: None when the run has no earlier run to compare with and none was named.
    comparison: RunComparison | None
    limit: int = LIMIT

    @property
    def sections(self) -> list[tuple[str, str, list[TestChange]]]:
        """(key, heading, tests) of each category, in the order the page shows them."""
        c = self.comparison
        if c is None:
            return []
        slower = f"{self.factor:g}x slower or more"
        faster = f"{self.factor:g}x faster or more"
        return [
            ("newly_failing", "Newly failing", c.newly_failing),
            ("fixed", "Fixed", c.fixed),
            ("still_failing", "Still failing", c.still_failing),
            ("slower", slower.capitalize(), c.slower),
            ("faster", faster.capitalize(), c.faster),
            ("new_tests", "New tests", c.new_tests),
            ("removed_tests", "Removed tests", c.removed_tests),
        ]


class ComparePages(Controller):
    path = "/runs"
    include_in_schema = False

    @get("/{run_id:str}/compare", sync_to_thread=True, name="dashboard:compare")
    def compare(
        self,
        request: Request[Any, Any, Any],
        run_id: FromPath[str],
    ) -> Template:
        query = QueryReader(request.query_params)
        base = query.text("base")
        factor = query.number("factor", 2.0, lo=1.01, hi=1000.0)
        min_seconds = query.number("min_seconds", DEFAULT_MIN_SECONDS, lo=0.0, hi=86_400.0)
        cur = read_cursor(request)
        run = get_run(cur, run_id)
        if run is None:
            raise NotFoundException(f"There is no run {run_id!r}.")
        base_id = base or base_run(cur, run.id)
        comparison = None
        if base_id is not None:
            comparison = compare_runs(
                cur, run.id, base_id, factor=factor, min_seconds=min_seconds, limit=LIMIT
            )
            if comparison is None:
                raise NotFoundException(f"There is no run {base_id!r} to compare with.")
        page = ComparePage(run, base, factor, min_seconds, comparison)
        return render(request, "compare.html", page)
