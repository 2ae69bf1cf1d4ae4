"""``/explore``: the metrics explorer (metric, aggregation, state filter)."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from dashboard._charts import Spec, metric_chart
from dashboard._links import session_href
from dashboard._params import QueryReader
from dashboard._render import render
from datacat_server.queries.metrics import (
    AGGREGATIONS,
    MetricSeries,
    metric_names,
    metric_series,
    state_paths,
)
from datacat_server.queries.state_filter import FILTERS
from datacat_server.store import StoreBase

__all__ = ["MetricPages", "MetricsFilters", "MetricsPage"]

#: Points fetched for a chart (the newest ones when there are more).
POINTS = 5000
#: Rows of the table fallback.
TABLE_ROWS = 500
#: State paths suggested for the filter (those most sessions have).
PATHS_SUGGESTED = 200

FILTER_LABELS = {
    "none": "no filter",
    "current": "current state has",
    "history": "state ever had (history)",
    "contains": "state array contains",
}
AGGREGATION_LABELS = {
    "all": "all values",
    "peak": "peak per session",
    "average": "average per session",
    "min": "minimum per session",
}


@dataclasses.dataclass(frozen=True)
class MetricsFilters:
    name: str | None
    aggregation: str
    filter: str
    path: str | None
    value: str | None

    @classmethod
    def read(cls, query: QueryReader, names: list[str]) -> MetricsFilters:
        return cls(
            name=query.text("name") or (names[0] if names else None),
            aggregation=query.choice("aggregation", AGGREGATIONS, "all") or "all",
            filter=query.choice("filter", FILTERS, "none") or "none",
            path=query.text("path"),
            value=query.text("value"),
        )


@dataclasses.dataclass(frozen=True)
class MetricsPage:
    """Context of ``metrics.html`` and ``_metrics_result.html``."""

    filters: MetricsFilters
    names: list[str]
    #: Dot paths in the current state of recent sessions, for the path field.
    paths: list[str]
    #: None until there is a metric to show.
    series: MetricSeries | None
    chart: Spec | None
    aggregations: dict[str, str] = dataclasses.field(default_factory=lambda: AGGREGATION_LABELS)
    filter_modes: dict[str, str] = dataclasses.field(default_factory=lambda: FILTER_LABELS)

    @property
    def table(self) -> list[Any]:
        """The newest points, newest first (the chart's table fallback)."""
        return [] if self.series is None else self.series.points[-TABLE_ROWS:][::-1]


class MetricPages(Controller):
    path = "/explore"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:metrics")
    def metrics(
        self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]
    ) -> Template:
        cur = store.reader()
        names = metric_names(cur)
        filters = MetricsFilters.read(QueryReader(request.query_params), names)
        series = None
        if filters.name is not None:
            series = metric_series(
                cur,
                filters.name,
                aggregation=filters.aggregation,
                filter_mode=filters.filter,
                path=filters.path,
                value=filters.value,
                limit=POINTS,
            )
        chart = None if series is None else metric_chart(series, session_href)
        paths = state_paths(cur, limit=PATHS_SUGGESTED)
        page = MetricsPage(filters, names, paths, series, chart)
        return render(request, "metrics.html", page, {"metrics-result": "_metrics_result.html"})
