"""Exploring sessions and metrics: the session list, state history, the metrics explorer."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from datacat_server.api.paging import Offset
from datacat_server.queries.metrics import AGGREGATIONS, MetricSeries, metric_names, metric_series
from datacat_server.queries.sessions import (
    SessionSummary,
    StatePatch,
    list_sessions,
    session_row,
    state_history,
)
from datacat_server.queries.state_filter import FILTERS
from datacat_server.store import StoreBase

__all__ = ["MetricController", "SessionQueries"]

Path = Annotated[str | None, QueryParameter(description="A dot path in the state: window.open")]
Value = Annotated[
    str | None, QueryParameter(description='The value at that path (JSON where it parses: 3, "x")')
]


class SessionQueries(Controller):
    """The session list and state history, served beside the seed's session endpoints
    (one controller per path: `SessionController` inherits these)."""

    @get("/", sync_to_thread=True, summary="Sessions, newest first, filtered")
    def index(
        self,
        *,
        store: NamedDependency[StoreBase],
        status: Annotated[
            str | None, QueryParameter(pattern="^(running|ended|hung|crashed)$")
        ] = None,
        name: Annotated[
            str | None, QueryParameter(description="Part of the name or product.")
        ] = None,
        label: Annotated[str | None, QueryParameter(description="key=value, or key.")] = None,
        path: Path = None,
        value: Value = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 50,
        offset: Offset = 0,
    ) -> list[SessionSummary]:
        return list_sessions(
            store.reader(),
            status=status,
            name=name,
            label=label,
            path=path,
            value=value,
            limit=limit,
            offset=offset,
        )

    @get("/{session_id:str}/state-history", sync_to_thread=True, summary="Every state patch")
    def history(
        self, store: NamedDependency[StoreBase], session_id: FromPath[str]
    ) -> list[StatePatch]:
        cur = store.reader()
        if session_row(cur, session_id) is None:
            raise NotFoundException(f"unknown session: {session_id}")
        return state_history(cur, session_id)


class MetricController(Controller):
    path = "/api/metrics"
    tags = ("metrics",)

    @get("/names", sync_to_thread=True, summary="Every metric name in the store")
    def names(self, store: NamedDependency[StoreBase]) -> list[str]:
        return metric_names(store.reader())

    @get(
        "/series",
        sync_to_thread=True,
        summary="One metric across sessions",
        description="aggregation: all values, or each session's peak, average or min."
        " filter: none; current (the state has value at path now); history (it ever had"
        " it); contains (the array at path holds value). A metric logged as a counter"
        " (kind) answers its rate: per pair of consecutive values of a session, the"
        " increase per second (a lower value is a reset: its increase is the value"
        " itself); value_unit says the points' unit (requests/s).",
    )
    def series(
        self,
        *,
        store: NamedDependency[StoreBase],
        name: Annotated[str, QueryParameter(min_length=1)],
        aggregation: Annotated[
            str, QueryParameter(pattern=f"^({'|'.join(AGGREGATIONS)})$")
        ] = "all",
        filter: Annotated[str, QueryParameter(pattern=f"^({'|'.join(FILTERS)})$")] = "none",
        path: Path = None,
        value: Value = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100_000)] = 5000,
    ) -> MetricSeries:
        return metric_series(
            store.reader(),
            name,
            aggregation=aggregation,
            filter_mode=filter,
            path=path,
            value=value,
            limit=limit,
        )
