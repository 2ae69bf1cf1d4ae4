"""``/failures``: failures grouped by exception type and normalised message."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.failures import FailureCluster, failure_clusters
from datacat_server.store import StoreBase

__all__ = ["FailurePages", "FailuresPage"]

LIMIT = 100


@dataclasses.dataclass(frozen=True)
class FailuresPage:
    """Context of ``failures.html`` and ``_failures_table.html``."""

    window: WindowFilters
    clusters: list[FailureCluster]


class FailurePages(Controller):
    path = "/failures"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:failures")
    def failures(
        self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]
    ) -> Template:
        cur = store.reader()
        window = read_window(QueryReader(request.query_params), cur)
        page = FailuresPage(window, failure_clusters(cur, window.window(cur), limit=LIMIT))
        return render(request, "failures.html", page, {"failures-table": "_failures_table.html"})
