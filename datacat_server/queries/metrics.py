"""The metrics explorer: one metric across sessions, aggregated, filtered by state.

The seed service's visualisation, done for real: a metric (its names come from the
data), an aggregation (every value, or each session's peak, average or minimum), and a
filter on the sessions (none; the current state has a value at a path; the state ever
had it — from the state history, which the seed only pretended to keep; or an array
in the current state contains it).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import duckdb
import msgspec

from datacat_server.errors import InvalidInputError
from datacat_server.queries._common import iso
from datacat_server.queries.state_filter import state_filter

__all__ = [
    "AGGREGATIONS",
    "TEST_METRICS",
    "MetricPoint",
    "MetricSeries",
    "metric_names",
    "metric_series",
    "metric_unit",
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
    for name, (column, _) in _TEST_METRICS.items():
        if cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM results WHERE {column} IS NOT NULL)"
        ).fetchone()[0]:  # type: ignore[index]
            names.add(name)
    return sorted(names)


def _source(name: str) -> tuple[str, list[Any]]:
    """The rows of one metric: (sid, ts, value), from the log or from test results."""
    if name not in _TEST_METRICS:
        return "SELECT sid, ts, value FROM metric_log WHERE name = ?", [name]
    column = _TEST_METRICS[name][0]
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
        unit=metric_unit(cur, name),
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
