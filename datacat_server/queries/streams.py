"""Each test's stream of results, aggregated per test and branch (see
`datacat_server.store.rollups` for what a stream is and which aggregates it has).

Over a window of runs the aggregates come from the window's results. Over a window that
holds every run of a long history (`Window.reads_rollups`) they come from the rollups,
merged with the results stored since the rollups were last folded: the same numbers
(quantiles within 2.5 %), without reading the whole history.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import duckdb

from datacat_server.queries.window import Window
from datacat_server.store.rollups import (
    delta_sids_sql,
    durations_sql,
    finals_sql,
    merge_sql,
    same_commit_delta_sql,
    same_commit_sql,
    stream_sql,
)

__all__ = ["Folded", "buckets_cte", "failing_tests", "folded", "streams_cte"]


def _scope(window: Window, alias: str = "") -> str:
    """The rollup rows of the window's project (and branch)."""
    prefix = f"{alias}." if alias else ""
    where = f"{prefix}test_id IN (SELECT test_id FROM tests WHERE project = $project)"
    if window.branch:
        where += f" AND {prefix}branch = $branch"
    return where


def _params(window: Window, sql: str) -> dict[str, Any]:
    values = {"project": window.project, "branch": window.branch}
    return {k: v for k, v in values.items() if f"${k}" in sql}


@dataclasses.dataclass(frozen=True)
class Folded:
    """How far the rollups reach, as constants for the rollup path's SQL."""

    #: The rollups' watermark, a SQL literal.
    watermark: str
    #: The runs whose results the same-commit delta reads.
    delta_sids: list[int]


@contextlib.contextmanager
def folded(cur: duckdb.DuckDBPyConnection) -> Iterator[Folded]:
    """How far the rollups reach, for the rollup path of `streams_cte` and
    `buckets_cte`; the caller's queries run in the same read transaction, so the
    rollups and the tail they read agree while the folder moves on.

    Constants, not subqueries: with them a lake skips the Parquet files and row groups
    folded already and the runs the delta does not read; a subquery's value is known
    only while the query runs, too late to prune anything, and every result of the
    store is read.
    """
    cur.begin()
    try:
        row = cur.execute(
            "SELECT coalesce(max(folded_until), TIMESTAMP '1970-01-01') FROM rollup_state"
        ).fetchall()
        watermark = f"TIMESTAMP '{row[0][0].isoformat(sep=' ')}'"
        sids = [int(r[0]) for r in cur.execute(delta_sids_sql(watermark)).fetchall()]
        yield Folded(watermark, sorted(sids))
    finally:
        cur.rollback()  # it only read


def failing_tests(cur: duckdb.DuckDBPyConnection, window: Window) -> list[int]:
    """The tests that failed in the window (any attempt; subtests aside)."""
    where, params = window.named("r")
    found = cur.execute(
        f"SELECT DISTINCT test_id FROM results r WHERE {where}"
        " AND r.subtest IS NULL AND r.outcome IN ('failed', 'error')",
        params,
    ).fetchall()
    return [int(row[0]) for row in found]


def streams_cte(
    window: Window,
    *,
    rollups: bool | None = None,
    tests: list[int] | None = None,
    reach: Folded | None = None,
) -> tuple[str, dict[str, Any]]:
    """A ``WITH`` clause ending in a CTE ``streams``: one row per test and branch of the
    window, with every stream aggregate and ``same_commit``; and its parameters.

    ``rollups`` forces a path (tests compare them); by default the whole history reads
    the rollups and a smaller window its results. ``tests``: only these (over a window,
    the rest is not read at all; a flaky list needs only `failing_tests`). The rollup
    path needs ``reach`` from `folded`.
    """
    if rollups if rollups is not None else window.reads_rollups:
        if reach is None:
            raise ValueError("the rollups are read with their reach (streams.folded)")
        watermark = reach.watermark
        sql = f"""
        WITH f AS ({finals_sql(f"r.stored_at > {watermark}")}),
        {stream_sql("f")},
        delta AS ({same_commit_delta_sql(watermark, sids=reach.delta_sids)}),
        merged AS ({merge_sql("test_rollups", "stream", "delta")}),
        streams AS (SELECT * FROM merged WHERE {_scope(window)})
        """
    else:
        where, params = window.named("r")
        if tests is not None:
            # Written in: a short list of integers the store made, which DuckDB turns
            # into a filter on the scan (a join here built a hash table of the window).
            where += f" AND r.test_id IN ({', '.join(str(int(t)) for t in tests) or 'NULL'})"
        sql = f"""
        WITH f AS ({finals_sql(where)}),
        {stream_sql("f")},
        commits AS ({same_commit_sql("f")}),
        streams AS (
            SELECT s.*, coalesce(c.same_commit, 0) AS same_commit
            FROM stream s LEFT JOIN commits c USING (test_id, branch)
        )
        """
        return sql, {**_params(window, sql), **params}
    return sql, _params(window, sql)


def buckets_cte(window: Window, reach: Folded) -> tuple[str, dict[str, Any]]:
    """A ``WITH`` clause ending in a CTE ``buckets``: per test (all the window's
    branches together) and duration bucket, how many results; over the whole history,
    from the rollups and the tail (``reach``: from `folded`)."""
    watermark = reach.watermark
    sql = f"""
    WITH tail AS ({finals_sql(f"r.stored_at > {watermark}")}),
    fresh AS ({durations_sql("tail")}),
    buckets AS (
        SELECT test_id, bucket, sum(n) AS n FROM (
            SELECT test_id, branch, bucket, n FROM duration_buckets
            UNION ALL SELECT test_id, branch, bucket, n FROM fresh
        ) WHERE {_scope(window)}
        GROUP BY test_id, bucket
    )
    """
    return sql, _params(window, sql)
