"""``/flaky``: tests that both pass and fail, with the evidence."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.flaky import FlakyTest, flaky_tests
from datacat_server.store import StoreBase

__all__ = ["FlakyPage", "FlakyPages"]

LIMIT = 100


@dataclasses.dataclass(frozen=True)
class FlakyPage:
    """Context of ``flaky.html`` and ``_flaky_table.html``."""

    window: WindowFilters
    tests: list[FlakyTest]


class FlakyPages(Controller):
    path = "/flaky"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:flaky")
    def flaky(self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]) -> Template:
        cur = store.reader()
        window = read_window(QueryReader(request.query_params), cur)
        page = FlakyPage(window, flaky_tests(cur, window.window(cur), limit=LIMIT))
        return render(request, "flaky.html", page, {"flaky-table": "_flaky_table.html"})
