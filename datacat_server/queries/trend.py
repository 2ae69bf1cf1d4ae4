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

from datacat_server.queries._common import iso, select_list, structs
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


#: Each `SuiteRun` field: the ``runs`` column of its name unless named here.
_COLUMNS = select_list(
    SuiteRun,
    "u",
    {
        "run": "s.id::VARCHAR",
        "commit": 'u."commit"',
        "test_time": "coalesce(t.total, 0)",
        "tests": "coalesce(t.tests, 0)",
    },
)

_SQL = """
SELECT {columns}
FROM runs u JOIN sessions s USING (sid)
LEFT JOIN (
    SELECT r.sid, sum(r.duration) AS total, count(*) AS tests FROM results r
    WHERE {results} AND r.final AND r.subtest IS NULL GROUP BY r.sid
) t USING (sid)
WHERE {runs} AND u.finished_at IS NOT NULL
ORDER BY u.received_at, u.sid
""".replace("{columns}", _COLUMNS)


def suite_trend(cur: duckdb.DuckDBPyConnection, window: Window) -> list[SuiteRun]:
    """Each finished run of the window, oldest first."""
    if window.empty:
        return []
    in_results, params = window.named("r")
    in_runs, _ = window.named("u")
    sql = _SQL.replace("{results}", in_results).replace("{runs}", in_runs)
    return structs(
        cur.execute(sql, params),
        SuiteRun,
        {"started_at": lambda v: iso(v) or "", "test_time": float},
    )
