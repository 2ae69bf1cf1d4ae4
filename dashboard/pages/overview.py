"""``/``: what ran lately, what runs now, what is wrong, and the trend."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from dashboard._charts import Spec, pass_rate_chart
from dashboard._links import run_href
from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.overview import Overview, overview
from datacat_server.store import StoreBase

__all__ = ["OverviewPage", "OverviewPages"]


@dataclasses.dataclass(frozen=True)
class OverviewPage:
    """Context of ``overview.html`` (and ``_overview_live.html``, which polls)."""

    window: WindowFilters
    data: Overview
    pass_rate_chart: Spec

    @property
    def live(self) -> bool:
        """Something runs, hangs: the live part refreshes itself."""
        return bool(self.data.live_runs)


class OverviewPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:overview")
    def overview(
        self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]
    ) -> Template:
        cur = store.reader()
        window = read_window(QueryReader(request.query_params), cur, default_runs=50)
        data = overview(cur, window.project, runs=window.runs)
        page = OverviewPage(window, data, pass_rate_chart(data.pass_rate, run_href))
        return render(request, "overview.html", page, {"overview-live": "_overview_live.html"})
