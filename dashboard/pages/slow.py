"""``/slow``: the slowest tests, and the tests that got slower."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.regressions import (
    DEFAULT_MIN_SECONDS,
    DEFAULT_THRESHOLD,
    MAX_RUNS,
    Regression,
    regressions,
)
from datacat_server.queries.slow import SlowTest, slow_tests
from datacat_server.web import read_cursor

__all__ = ["SlowPage", "SlowPages"]

LIMIT = 100
ORDERS = ("p95", "p50", "max", "total")


@dataclasses.dataclass(frozen=True)
class SlowPage:
    """Context of ``slow.html`` and ``_slow_tables.html``."""

    window: WindowFilters
    order: str
    #: A regression is a change point after which a test's median is at least
    #: ``threshold`` times the one before (`datacat_server.queries.regressions`).
    threshold: float
    #: Regressions leave out tests whose median since the change is under this (seconds).
    min_seconds: float
    tests: list[SlowTest]
    regressions: list[Regression]
    orders: tuple[str, ...] = ORDERS
    #: The most runs a regression search reads (the newest of the window).
    max_regression_runs: int = MAX_RUNS


class SlowPages(Controller):
    path = "/slow"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:slow")
    def slow(self, request: Request[Any, Any, Any]) -> Template:
        query = QueryReader(request.query_params)
        order = query.choice("order", ORDERS, "p95") or "p95"
        threshold = query.number("threshold", DEFAULT_THRESHOLD, lo=1.01, hi=1000.0)
        min_seconds = query.number("min_seconds", DEFAULT_MIN_SECONDS, lo=0.0, hi=86_400.0)
        cur = read_cursor(request)
        window = read_window(query, cur)
        runs = window.window
        page = SlowPage(
            window=window,
            order=order,
            threshold=threshold,
            min_seconds=min_seconds,
            tests=slow_tests(cur, runs, order=order, limit=LIMIT),
            regressions=regressions(
                cur, runs, threshold=threshold, min_seconds=min_seconds, limit=LIMIT
            ),
        )
        return render(request, "slow.html", page, {"slow-tables": "_slow_tables.html"})
