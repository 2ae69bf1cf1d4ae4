"""``/slow``: the slowest tests, and the tests that got slower."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from dashboard._window import WindowFilters, read_window
from datacat_server.queries.slow import (
    DEFAULT_MIN_SECONDS,
    Regression,
    SlowTest,
    regressions,
    slow_tests,
)
from datacat_server.store import StoreBase

__all__ = ["SlowPage", "SlowPages"]

LIMIT = 100
ORDERS = ("p95", "p50", "max", "total")


@dataclasses.dataclass(frozen=True)
class SlowPage:
    """Context of ``slow.html`` and ``_slow_tables.html``."""

    window: WindowFilters
    order: str
    #: A regression is a median at least ``threshold`` times the older one, over
    #: the ``recent`` newest runs (None: the newest quarter of the window).
    threshold: float
    recent: int | None
    #: Regressions leave out tests whose recent median is under this (seconds).
    min_seconds: float
    tests: list[SlowTest]
    regressions: list[Regression]
    orders: tuple[str, ...] = ORDERS


class SlowPages(Controller):
    path = "/slow"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:slow")
    def slow(self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]) -> Template:
        query = QueryReader(request.query_params)
        order = query.choice("order", ORDERS, "p95") or "p95"
        threshold = query.number("threshold", 1.5, lo=1.01, hi=1000.0)
        recent = query.optional_integer("recent", lo=1, hi=100_000)
        min_seconds = query.number("min_seconds", DEFAULT_MIN_SECONDS, lo=0.0, hi=86_400.0)
        cur = store.reader()
        window = read_window(query, cur)
        runs = window.window(cur)
        page = SlowPage(
            window=window,
            order=order,
            threshold=threshold,
            recent=recent,
            min_seconds=min_seconds,
            tests=slow_tests(cur, runs, order=order, limit=LIMIT),
            regressions=regressions(
                cur,
                runs,
                recent=recent,
                threshold=threshold,
                min_seconds=min_seconds,
                limit=LIMIT,
            ),
        )
        return render(request, "slow.html", page, {"slow-tables": "_slow_tables.html"})
