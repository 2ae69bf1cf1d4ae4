"""``/tests?nodeid=…``: one test across recent runs (outcomes, durations, failures)."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.response import Template

from dashboard._charts import Spec, history_chart
from dashboard._links import run_href
from dashboard._params import BadFilter, QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_client.wire import OUTCOMES
from datacat_server.queries.history import HistoryPoint, TestHistory, test_history
from datacat_server.store import StoreBase

__all__ = ["TestHistoryPage", "TestPages"]


@dataclasses.dataclass(frozen=True)
class TestHistoryPage:
    """Context of ``test.html`` and ``_history.html``."""

    __test__ = False

    window: WindowFilters
    history: TestHistory
    chart: Spec
    outcomes: tuple[str, ...] = OUTCOMES

    @property
    def failures(self) -> list[HistoryPoint]:
        """The runs it failed in, newest first."""
        bad = [p for p in self.history.points if p.outcome in ("failed", "error")]
        return bad[::-1]


class TestPages(Controller):
    __test__ = False

    path = "/tests"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:test")
    def history(
        self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]
    ) -> Template:
        query = QueryReader(request.query_params)
        nodeid = query.text("nodeid")
        if nodeid is None:
            raise BadFilter("nodeid is required: the test's node id, as pytest prints it")
        cur = store.reader()
        window = read_window(query, cur, default_runs=50)
        found = (
            test_history(cur, window.project, nodeid, window.window(cur))
            if window.project
            else None
        )
        if found is None:
            raise NotFoundException(f"No test {nodeid!r} in project {window.project!r}.")
        page = TestHistoryPage(window, found, history_chart(found, run_href))
        return render(request, "test.html", page, {"history": "_history.html"})
