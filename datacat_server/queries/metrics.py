"""The metrics explorer: one metric across sessions, aggregated, filtered by state.

The seed service's visualisation, done for real: a metric (its names come from the
data), an aggregation (every value, or each session's peak, average or minimum), and a
filter on the sessions (none; the current state has a value at a path; the state ever
had it — from the state history, which the seed only pretended to keep; or an array
in the current state contains it).

A metric logged as a ``counter`` (a running total: requests served) is read as its
rate: for each pair of consecutive values of one session, the increase divided by the
seconds between them, at the later value's time. A value below the one before means
the counter was reset (its program restarted and counts from zero again), so the
increase is the new value itself, as Prometheus' ``rate`` reads a reset. Two values at
the same instant give no rate. A session's (or all sessions') average rate is its
total increase over its total time, not the mean of the rates: an hour at 1/s and a
second at 100/s average about 1/s.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import duckdb
import msgspec

from datacat_server.errors import InvalidInputError
from datacat_server.queries._common import iso, select_list, structs
from datacat_server.queries._common import rows as rows_by_name
from datacat_server.queries.state_filter import state_filter

__all__ = [
    "AGGREGATIONS",
    "TEST_METRICS",
    "MetricPoint",
    "MetricSeries",
    "metric_kind",
    "metric_names",
    "metric_series",
    "metric_unit",
    "rate_unit",
    "session_metric_units",
    "state_paths",
]

Aggregation = Literal["all", "peak", "average", "min"]
AGGREGATIONS: tuple[Aggregation, ...] = ("all", "peak", "average", "min")

#: Metrics the views derive from test results: their column and unit (as the store's
#: ``metrics`` view gives them).
_TEST_METRICS = {
    "test_duration": ("duration", "s"),
    "test_cpu_time": ("cpu_time", "s"),
    "test_rss_delta": ("rss_delta", "bytes"),
}
#: DataCat's own per-test metrics: one value per test, not a series over time.
TEST_METRICS = tuple(_TEST_METRICS)


class MetricPoint(msgspec.Struct):
    session_id: str
    timestamp: str
    value: float


class MetricSeries(msgspec.Struct):
    name: str
    #: The unit its values were logged with (the latest one said), or ``""``.
    unit: str
    #: ``gauge`` (a level) or ``counter`` (a running total), as last logged.
    kind: str
    #: The unit of the points' values: ``unit``, or a counter's rate (``requests/s``;
    #: ``/s`` when it has no unit).
    value_unit: str
    aggregation: str
    filter: str
    path: str | None
    value: Any
    #: Oldest first; one per value (``all``; one per pair of values for a counter) or
    #: one per session.
    points: list[MetricPoint]
    #: Over the points: the highest, mean and lowest value (None without points); a
    #: counter's ``all`` average is its total increase over its total time.
    peak: float | None
    average: float | None
    min: float | None
    sessions_matched: int
    #: True when there were more points than ``limit`` (the oldest were left out).
    truncated: bool


def metric_names(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Every metric name in the store, sorted."""
    names = {row[0] for row in cur.execute("SELECT DISTINCT name FROM metric_log").fetchall()}
    for name, (column, _) in _TEST_METRICS.items():
        if cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM results WHERE {column} IS NOT NULL)"
        ).fetchone()[0]:  # type: ignore[index]
            names.add(name)
    return sorted(names)


def _source(name: str) -> tuple[str, list[Any]]:
    """The rows of one metric: (sid, ts, seq, value), from the log or from test results."""
    if name not in _TEST_METRICS:
        return "SELECT sid, ts, seq, value FROM metric_log WHERE name = ?", [name]
    column = _TEST_METRICS[name][0]
    return (
        f"SELECT sid, coalesce(stopped_at, started_at) AS ts, seq, {column}::DOUBLE AS value"
        f" FROM results WHERE {column} IS NOT NULL",
        [],
    )


_FUNCTIONS = {"peak": "max", "average": "avg", "min": "min"}


def _points(values: str, aggregation: str, counter: bool) -> tuple[str, str]:
    """The points' SQL (``session_id, ts, value``) over ``values`` (``session_id, ts,
    seq, value``), and the SQL of their average."""
    if not counter:
        if aggregation == "all":
            return f"SELECT session_id, ts, value FROM ({values})", "avg(value)"
        fn = _FUNCTIONS[aggregation]
        return (
            f"SELECT session_id, min(ts) AS ts, {fn}(value) AS value FROM ({values})"
            " GROUP BY session_id",
            "avg(value)",
        )
    # A counter: one step per pair of consecutive values of a session (see the module).
    steps = f"""
        SELECT session_id, ts,
               CASE WHEN value >= before THEN value - before ELSE value END AS increase,
               date_diff('microsecond', before_ts, ts) / 1e6 AS seconds
        FROM (SELECT session_id, ts, value,
                     lag(value) OVER w AS before, lag(ts) OVER w AS before_ts
              FROM ({values}) WINDOW w AS (PARTITION BY session_id ORDER BY ts, seq))
        WHERE before_ts IS NOT NULL AND ts > before_ts"""
    if aggregation == "all":
        return (
            f"SELECT session_id, ts, increase / seconds AS value, increase, seconds FROM ({steps})",
            "sum(increase) / sum(seconds)",
        )
    rate = {
        "peak": "max(increase / seconds)",
        "average": "sum(increase) / sum(seconds)",
        "min": "min(increase / seconds)",
    }[aggregation]
    return (
        f"SELECT session_id, min(ts) AS ts, {rate} AS value FROM ({steps}) GROUP BY session_id",
        "avg(value)",
    )


_POINT_COLUMNS = select_list(MetricPoint, "p", {"timestamp": "p.ts"})


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
    """The points and statistics of metric ``name`` over the matching sessions; a
    counter's as rates per second (see the module)."""
    if aggregation not in AGGREGATIONS:
        raise InvalidInputError(
            f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}"
        )
    where, where_params = state_filter(filter_mode, path, value)
    source, source_params = _source(name)
    unit, kind = metric_unit(cur, name), metric_kind(cur, name)
    matched = f"SELECT s.sid, s.id::VARCHAR AS session_id FROM sessions s WHERE {where}"
    values = (
        "SELECT m.session_id, v.ts, v.seq, v.value"
        f" FROM ({source}) v JOIN ({matched}) m USING (sid)"
    )
    points_sql, average = _points(values, aggregation, kind == "counter")
    params = [*source_params, *where_params]
    stats = rows_by_name(
        cur.execute(
            f"WITH p AS ({points_sql}) SELECT count(*) AS total, max(value) AS peak,"
            f" {average} AS average, min(value) AS low,"
            " count(DISTINCT session_id) AS sessions FROM p",
            params,
        )
    )[0]
    points = structs(
        cur.execute(
            f"SELECT {_POINT_COLUMNS} FROM"
            f" (SELECT * FROM ({points_sql}) ORDER BY ts DESC LIMIT ?) p ORDER BY p.ts",
            [*params, limit],
        ),
        MetricPoint,
        {"timestamp": lambda v: iso(v) or ""},
    )
    return MetricSeries(
        name=name,
        unit=unit,
        kind=kind,
        value_unit=rate_unit(unit) if kind == "counter" else unit,
        aggregation=aggregation,
        filter=filter_mode,
        path=path,
        value=value,
        points=points,
        peak=stats["peak"],
        average=stats["average"],
        min=stats["low"],
        sessions_matched=stats["sessions"],
        truncated=stats["total"] > limit,
    )


def rate_unit(unit: str) -> str:
    """The unit of a counter's rate: ``requests/s``, or ``/s`` for a counter without one."""
    return f"{unit}/s"


def metric_kind(cur: duckdb.DuckDBPyConnection, name: str) -> str:
    """``counter`` if metric ``name`` was last logged as one, else ``gauge``."""
    if name in _TEST_METRICS:
        return "gauge"
    rows = cur.execute(
        "SELECT kind FROM metric_log WHERE name = ? ORDER BY ts DESC, seq DESC LIMIT 1", [name]
    ).fetchall()
    return "counter" if rows and rows[0][0] == "counter" else "gauge"


def metric_unit(cur: duckdb.DuckDBPyConnection, name: str) -> str:
    """The unit metric ``name`` was last logged with (``""`` if it never said one)."""
    if name in _TEST_METRICS:
        return _TEST_METRICS[name][1]
    rows = cur.execute(
        "SELECT unit FROM metric_log WHERE name = ? AND unit <> '' ORDER BY ts DESC LIMIT 1",
        [name],
    ).fetchall()
    return str(rows[0][0]) if rows else ""


def session_metric_units(cur: duckdb.DuckDBPyConnection, session_id: str) -> dict[str, str]:
    """The unit of each metric of one session that said one (DataCat's own per-test
    metrics included), by metric name."""
    units = {name: unit for name, (_, unit) in _TEST_METRICS.items()}
    rows = cur.execute(
        "SELECT m.name, arg_max(m.unit, m.ts) FROM metric_log m JOIN sessions s USING (sid)"
        " WHERE s.id = TRY_CAST(? AS UUID) AND m.unit <> '' GROUP BY m.name",
        [session_id],
    ).fetchall()
    units.update({str(name): str(unit) for name, unit in rows})
    return units


def state_paths(
    cur: duckdb.DuckDBPyConnection, *, sessions: int = 1000, limit: int = 200
) -> list[str]:
    """The dot paths (``window.open``) in the current state of the latest ``sessions``
    sessions, those most sessions have first, at most ``limit`` of them.

    Paths into arrays, and keys a dot path cannot write (empty, or holding a dot),
    are left out: a state filter could not use them.
    """
    rows = cur.execute(
        """
        SELECT t.fullkey, count(*) AS seen
        FROM (SELECT state FROM sessions ORDER BY sid DESC LIMIT ?) s, json_tree(s.state) t
        WHERE t.fullkey <> '$' AND NOT contains(t.fullkey, '[')
        GROUP BY t.fullkey ORDER BY seen DESC, t.fullkey LIMIT ?
        """,
        [sessions, limit],
    ).fetchall()
    paths = [(-seen, path) for fullkey, seen in rows if (path := _dot_path(str(fullkey)))]
    return [path for _, path in sorted(paths)]


#: One key of a JSON path as DuckDB writes it: ``.name`` or ``."quoted \" name"``.
_KEY = re.compile(r'\.(?:"((?:[^"\\]|\\.)*)"|([^."\[]+))')


def _dot_path(fullkey: str) -> str | None:
    """``$."window".open`` as ``window.open``; None if a key cannot be written so."""
    keys, position = [], 1
    while position < len(fullkey):
        match = _KEY.match(fullkey, position)
        if match is None:
            return None
        quoted, bare = match.groups()
        key = bare if bare is not None else re.sub(r"\\(.)", r"\1", quoted)
        if not key or "." in key:
            return None
        keys.append(key)
        position = match.end()
    return ".".join(keys) if keys else None
