"""``/``: what ran lately, what runs now, what is wrong, and the trend."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from dashboard._charts import Spec, branch_series, pass_rate_chart, suite_duration_chart
from dashboard._links import run_href
from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.overview import Overview, overview
from datacat_server.queries.trend import SuiteRun, suite_trend
from datacat_server.web import read_cursor

__all__ = ["OverviewPage", "OverviewPages"]


@dataclasses.dataclass(frozen=True)
class OverviewPage:
    """Context of ``overview.html`` (and ``_overview_live.html``, which polls, and
    ``_suite_trend.html``)."""

    window: WindowFilters
    data: Overview
    pass_rate_chart: Spec
    #: The suite's duration, run by run (`queries/trend.py`), and its chart.
    suite: list[SuiteRun]
    suite_chart: Spec

    @property
    def live(self) -> bool:
        """Something runs, hangs: the live part refreshes itself."""
        return bool(self.data.live_runs)


class OverviewPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:overview")
    def overview(self, request: Request[Any, Any, Any]) -> Template:
        cur = read_cursor(request)
        window = read_window(QueryReader(request.query_params), cur, default_runs=50)
        data = overview(cur, window.project, runs=window.runs)
        suite = suite_trend(cur, window.window)
        # One colour per branch in both charts.
        series = branch_series([run.branch for run in suite if not run.partial])
        page = OverviewPage(
            window,
            data,
            pass_rate_chart(data.pass_rate, run_href, series),
            suite,
            suite_duration_chart(suite, run_href, series),
        )
        return render(request, "overview.html", page, {"overview-live": "_overview_live.html"})
