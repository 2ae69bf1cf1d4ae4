"""The whole suite's duration, run by run: is the suite getting slower?

Per finished run of a window, oldest first: the run's own duration (pytest's, wall
time) and the sum of its tests' durations (final attempts, subtests aside: with
``-n 4`` about four times the wall time), with its branch, so that a chart can draw a
line per branch. Partial runs (``-k``, ``-m``, ``--lf``, named files) are in the list,
marked: they ran only part of the suite, so charts leave them out.
"""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries.window import Window

__all__ = ["SuiteRun", "suite_trend"]


class SuiteRun(msgspec.Struct):
    run: str
    branch: str
    commit: str
    started_at: str
    #: Only part of the suite ran: not comparable with the other runs.
    partial: bool
    #: The run's duration (seconds, as pytest measured it).
    duration: float | None
    #: The sum of its tests' durations (seconds), and how many tests ran.
    test_time: float
    tests: int


_SQL = """
SELECT s.id::VARCHAR, u.branch, u."commit", u.started_at, u.partial, u.duration,
       coalesce(t.total, 0), coalesce(t.tests, 0)
FROM runs u JOIN sessions s USING (sid)
LEFT JOIN (
    SELECT r.sid, sum(r.duration) AS total, count(*) AS tests FROM results r
    WHERE {results} AND r.final AND r.subtest IS NULL GROUP BY r.sid
) t USING (sid)
WHERE {runs} AND u.finished_at IS NOT NULL
ORDER BY u.received_at, u.sid
"""


def suite_trend(cur: duckdb.DuckDBPyConnection, window: Window) -> list[SuiteRun]:
    """Each finished run of the window, oldest first."""
    if window.empty:
        return []
    in_results, params = window.named("r")
    in_runs, _ = window.named("u")
    sql = _SQL.replace("{results}", in_results).replace("{runs}", in_runs)
    return [
        SuiteRun(
            run=row[0],
            branch=row[1],
            commit=row[2],
            started_at=iso(row[3]) or "",
            partial=row[4],
            duration=row[5],
            test_time=float(row[6]),
            tests=row[7],
        )
        for row in cur.execute(sql, params).fetchall()
    ]
