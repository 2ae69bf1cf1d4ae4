"""The metrics explorer: one metric across sessions, aggregated, filtered by state.

The seed service's visualisation, done for real: a metric (its names come from the
data), an aggregation (every value, or each session's peak, average or minimum), and a
filter on the sessions (none; the current state has a value at a path; the state ever
had it — from the state history, which the seed only pretended to keep; or an array
in the current state contains it).
"""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import msgspec

from datacat_server.errors import InvalidInputError
from datacat_server.queries._common import iso
from datacat_server.queries.state_filter import state_filter

__all__ = ["AGGREGATIONS", "MetricPoint", "MetricSeries", "metric_names", "metric_series"]

Aggregation = Literal["all", "peak", "average", "min"]
AGGREGATIONS: tuple[Aggregation, ...] = ("all", "peak", "average", "min")

#: Metrics the views derive from test results (see the store's schema).
_TEST_METRICS = {
    "test_duration": "duration",
    "test_cpu_time": "cpu_time",
    "test_rss_delta": "rss_delta",
}


class MetricPoint(msgspec.Struct):
    session_id: str
    timestamp: str
    value: float


class MetricSeries(msgspec.Struct):
    name: str
    aggregation: str
    filter: str
    path: str | None
    value: Any
    #: Oldest first; one per value (``all``) or one per session.
    points: list[MetricPoint]
    #: Over the points: the highest, mean and lowest value (None without points).
    peak: float | None
    average: float | None
    min: float | None
    sessions_matched: int
    #: True when there were more points than ``limit`` (the oldest were left out).
    truncated: bool


def metric_names(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Every metric name in the store, sorted."""
    names = {row[0] for row in cur.execute("SELECT DISTINCT name FROM metric_log").fetchall()}
    for name, column in _TEST_METRICS.items():
        if cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM results WHERE {column} IS NOT NULL)"
        ).fetchone()[0]:  # type: ignore[index]
            names.add(name)
    return sorted(names)


def _source(name: str) -> tuple[str, list[Any]]:
    """The rows of one metric: (sid, ts, value), from the log or from test results."""
    column = _TEST_METRICS.get(name)
    if column is None:
        return "SELECT sid, ts, value FROM metric_log WHERE name = ?", [name]
    return (
        f"SELECT sid, coalesce(stopped_at, started_at) AS ts, {column}::DOUBLE AS value"
        f" FROM results WHERE {column} IS NOT NULL",
        [],
    )


def metric_series(
    cur: duckdb.DuckDBPyConnection,
    name: str,
    *,
    aggregation: str = "all",
    filter_mode: str = "none",
    path: str | None = None,
    value: str | None = None,
    limit: int = 5000,
) -> MetricSeries:
    """The points and statistics of metric ``name`` over the matching sessions."""
    if aggregation not in AGGREGATIONS:
        raise InvalidInputError(
            f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}"
        )
    where, where_params = state_filter(filter_mode, path, value)
    source, source_params = _source(name)
    matched = f"SELECT s.sid, s.id::VARCHAR AS session_id FROM sessions s WHERE {where}"
    if aggregation == "all":
        points_sql = (
            f"SELECT m.session_id, v.ts, v.value FROM ({source}) v JOIN ({matched}) m USING (sid)"
        )
    else:
        fn = {"peak": "max", "average": "avg", "min": "min"}[aggregation]
        points_sql = (
            f"SELECT m.session_id, min(v.ts) AS ts, {fn}(v.value) AS value"
            f" FROM ({source}) v JOIN ({matched}) m USING (sid) GROUP BY m.session_id"
        )
    params = [*source_params, *where_params]
    row = cur.execute(
        f"WITH p AS ({points_sql}) SELECT count(*), max(value), avg(value), min(value),"
        " count(DISTINCT session_id) FROM p",
        params,
    ).fetchone()
    total, peak, average, low, sessions = row if row else (0, None, None, None, 0)
    rows = cur.execute(
        f"SELECT * FROM (SELECT * FROM ({points_sql}) ORDER BY ts DESC LIMIT ?) ORDER BY ts",
        [*params, limit],
    ).fetchall()
    return MetricSeries(
        name=name,
        aggregation=aggregation,
        filter=filter_mode,
        path=path,
        value=value,
        points=[MetricPoint(session_id=r[0], timestamp=iso(r[1]) or "", value=r[2]) for r in rows],
        peak=peak,
        average=average,
        min=low,
        sessions_matched=sessions,
        truncated=total > limit,
    )
