"""``/tests?nodeid=…``: one test across recent runs (outcomes, durations, failures)."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Template

from dashboard._charts import Spec, history_chart
from dashboard._links import run_href
from dashboard._params import BadFilter, QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.quarantine import (
    Change,
    Policy,
    QuarantineEntry,
    entry,
    history,
    policy,
)
from datacat_server.queries.test_history import HistoryPoint, TestHistory, test_history
from datacat_server.web import OUTCOMES, read_cursor

__all__ = ["TestHistoryPage", "TestHistoryPages"]


@dataclasses.dataclass(frozen=True)
class TestHistoryPage:
    """Context of ``test_history.html`` and ``_test_history.html``."""

    __test__ = False

    window: WindowFilters
    history: TestHistory
    chart: Spec
    #: Its place in quarantine, or None.
    quarantine: QuarantineEntry | None = None
    #: The project's policy (how an automatic quarantine ends), when it is in quarantine.
    policy: Policy | None = None
    #: The last change to its quarantine, when it is not in it (it was taken out).
    released: Change | None = None
    outcomes: tuple[str, ...] = OUTCOMES

    @property
    def failures(self) -> list[HistoryPoint]:
        """The runs it failed in, newest first."""
        bad = [p for p in self.history.points if p.outcome in ("failed", "error")]
        return bad[::-1]


class TestHistoryPages(Controller):
    __test__ = False

    path = "/tests"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:test")
    def history(self, request: Request[Any, Any, Any]) -> Template:
        query = QueryReader(request.query_params)
        nodeid = query.text("nodeid")
        if nodeid is None:
            raise BadFilter("nodeid is required: the test's node id, as pytest prints it")
        cur = read_cursor(request)
        window = read_window(query, cur, default_runs=50)
        found = test_history(cur, window.project, nodeid, window.window) if window.project else None
        if found is None:
            raise NotFoundException(f"No test {nodeid!r} in project {window.project!r}.")
        held = entry(cur, found.project, found.nodeid)
        last = None if held else next(iter(history(cur, found.project, found.nodeid, 1)), None)
        page = TestHistoryPage(
            window,
            found,
            history_chart(found, run_href),
            quarantine=held,
            policy=policy(cur, found.project) if held else None,
            released=last,
        )
        return render(request, "test_history.html", page, {"history": "_test_history.html"})
