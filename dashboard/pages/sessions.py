"""``/sessions`` and ``/sessions/{id}``: any program's sessions, state, events, metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from dashboard._charts import SESSION_POINTS, Spec, session_metric_charts
from dashboard._links import history_href
from dashboard._params import BadFilter, QueryReader, filters_href
from dashboard._render import render
from datacat_server.queries.metrics import session_metric_units, state_paths
from datacat_server.queries.runs import RunInfo, get_run
from datacat_server.queries.sessions import (
    STATUSES,
    EventOut,
    MetricOut,
    SessionDetail,
    SessionSummary,
    StatePatch,
    list_sessions,
    session_view,
    state_history,
)
from datacat_server.store import StoreBase

__all__ = ["MetricChart", "SessionPage", "SessionPages", "SessionsFilters", "SessionsPage"]

PER_PAGE = 50
#: A pytest run's session holds an event per test: the page shows the latest ones.
EVENTS_SHOWN = 300
STATE_PATCHES_SHOWN = 200
METRIC_ROWS_SHOWN = 100
#: State paths suggested for the state filter (those most sessions have).
PATHS_SUGGESTED = 200


@dataclasses.dataclass(frozen=True)
class SessionsFilters:
    status: str | None
    #: Part of the name or product.
    name: str | None
    #: ``key=value``, or ``key`` alone.
    label: str | None
    #: The current state has ``value`` at the dot ``path``.
    path: str | None
    value: str | None
    page: int

    @classmethod
    def read(cls, query: QueryReader) -> SessionsFilters:
        path, value = query.text("path"), query.text("value")
        if (path is None) != (value is None):
            raise BadFilter("the state filter needs both a path (like window.open) and a value")
        return cls(
            status=query.choice("status", STATUSES),
            name=query.text("name"),
            label=query.text("label"),
            path=path,
            value=value,
            page=query.page(),
        )

    def link(self, **changes: object) -> str:
        return filters_href("/sessions", self, **changes)


@dataclasses.dataclass(frozen=True)
class SessionsPage:
    """Context of ``sessions.html`` and ``_sessions_table.html``."""

    filters: SessionsFilters
    sessions: list[SessionSummary]
    has_next: bool
    #: Dot paths in the current state of recent sessions, for the path field.
    paths: list[str]
    statuses: tuple[str, ...] = STATUSES


@dataclasses.dataclass(frozen=True)
class MetricChart:
    """One metric of a session: its chart and values for the table that stands in for it
    (the latest; the highest of a per-test metric)."""

    name: str
    #: The unit its values were logged in (``""`` when not said).
    unit: str
    #: One value per test (DataCat's own metrics of a test run), charted by test.
    per_test: bool
    spec: Spec
    latest: list[MetricOut]
    #: Values in the session, and how many of them (the latest) the page read.
    count: int
    read: int


@dataclasses.dataclass(frozen=True)
class SessionPage:
    """Context of ``session.html`` and ``_session_live.html``."""

    session: SessionDetail
    #: The pytest run this session is, if it is one.
    run: RunInfo | None
    #: The latest patches, oldest first, and how many there are.
    history: list[StatePatch]
    history_total: int
    #: The latest events, oldest first, and how many there are.
    events: list[EventOut]
    events_total: int
    charts: list[MetricChart]

    @property
    def live(self) -> bool:
        """The session goes on: the page refreshes itself."""
        return self.session.status in ("running", "hung")


def _charts(
    metrics: list[MetricOut], totals: dict[str, int], units: dict[str, str], run: RunInfo | None
) -> list[MetricChart]:
    def test_href(nodeid: str) -> str:
        return history_href(nodeid, run.project if run else None)

    return [
        MetricChart(
            name=chart.name,
            unit=units.get(chart.name, ""),
            per_test=chart.per_test,
            spec=chart.spec,
            latest=_table_rows(chart.values, per_test=chart.per_test),
            count=totals.get(chart.name, len(chart.values)),
            read=len(chart.values),
        )
        for chart in session_metric_charts(metrics, units, test_href)
    ]


def _table_rows(values: list[MetricOut], *, per_test: bool) -> list[MetricOut]:
    """The values a chart's table shows: the highest of a per-test metric, else the
    latest, newest first."""
    if per_test:
        return sorted(values, key=lambda v: -v.value)[:METRIC_ROWS_SHOWN]
    return values[-METRIC_ROWS_SHOWN:][::-1]


class SessionPages(Controller):
    path = "/sessions"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:sessions")
    def sessions(
        self, request: Request[Any, Any, Any], store: NamedDependency[StoreBase]
    ) -> Template:
        filters = SessionsFilters.read(QueryReader(request.query_params))
        cur = store.reader()
        found = list_sessions(
            cur,
            status=filters.status,
            name=filters.name,
            label=filters.label,
            path=filters.path,
            value=filters.value,
            limit=PER_PAGE + 1,
            offset=(filters.page - 1) * PER_PAGE,
        )
        paths = state_paths(cur, limit=PATHS_SUGGESTED)
        page = SessionsPage(filters, found[:PER_PAGE], len(found) > PER_PAGE, paths)
        return render(request, "sessions.html", page, {"sessions-table": "_sessions_table.html"})

    @get("/{session_id:str}", sync_to_thread=True, name="dashboard:session")
    def session(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[StoreBase],
        session_id: FromPath[str],
    ) -> Template:
        cur = store.reader()
        view = session_view(cur, session_id, events=EVENTS_SHOWN, values_per_metric=SESSION_POINTS)
        if view is None:
            raise NotFoundException(f"There is no session {session_id!r}.")
        found = view.session
        patches = state_history(cur, found.id)
        run = get_run(cur, found.id)
        units = session_metric_units(cur, found.id)
        page = SessionPage(
            session=found,
            run=run,
            history=patches[-STATE_PATCHES_SHOWN:],
            history_total=len(patches),
            events=found.events,
            events_total=view.events_total,
            charts=_charts(found.metrics, view.metric_totals, units, run),
        )
        return render(request, "session.html", page, {"session-live": "_session_live.html"})
