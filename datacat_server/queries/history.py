"""One test over time: its outcome and duration in each recent run, and its failures."""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries.window import Window

__all__ = ["HistoryPoint", "TestHistory", "test_history"]


class HistoryPoint(msgspec.Struct):
    run: str
    started_at: str
    branch: str
    commit: str
    outcome: str
    #: Seconds.
    duration: float
    attempts: int
    exc_type: str | None
    message: str | None


class TestHistory(msgspec.Struct):
    __test__ = False

    nodeid: str
    project: str
    file: str | None
    line: int | None
    markers: list[str]
    #: Oldest first (the order a chart draws them in).
    points: list[HistoryPoint]
    runs: int
    failures: int
    #: The latest run in which it failed, and the oldest run of the current streak of
    #: failures (when it is failing now): "since when does it fail".
    last_failure: str | None
    failing_since: str | None
    #: The branch of the latest run: the streak above is counted on it alone.
    branch: str = ""
    #: Commits on which it both passed and failed, newest first: flaky, for certain.
    flaky_commits: list[str] = []
    #: Runs in which it failed, then passed when rerun.
    flaky_in_run: int = 0


_SQL = """
WITH w AS (
    SELECT u.sid, u.started_at, u.branch, u."commit", s.id::VARCHAR AS run
    FROM runs u JOIN sessions s USING (sid) WHERE u.sid IN (SELECT unnest(?::INTEGER[]))
)
SELECT w.run, w.started_at, w.branch, w."commit",
       arg_max(r.outcome::VARCHAR, r.attempt) AS outcome,
       arg_max(r.duration, r.attempt) AS duration, count(*) AS attempts,
       arg_max(d.exc_type, r.attempt) AS exc_type, arg_max(d.exc_message, r.attempt) AS message
FROM results r JOIN w USING (sid) LEFT JOIN result_details d USING (sid, seq)
WHERE {window} AND r.test_id = ? AND r.subtest IS NULL
GROUP BY ALL
ORDER BY w.started_at, w.run
"""


def test_history(
    cur: duckdb.DuckDBPyConnection, project: str, nodeid: str, window: Window
) -> TestHistory | None:
    """``nodeid``'s results over the window's runs, or None if the test is unknown."""
    test = cur.execute(
        "SELECT test_id, file, line, markers FROM tests WHERE project = ? AND nodeid = ?",
        [project, nodeid],
    ).fetchone()
    if test is None:
        return None
    points: list[HistoryPoint] = []
    if not window.empty:
        where, params = window.where()
        rows = cur.execute(
            _SQL.replace("{window}", where), [window.sids, *params, test[0]]
        ).fetchall()
        points = [
            HistoryPoint(
                run=row[0],
                started_at=iso(row[1]) or "",
                branch=row[2],
                commit=row[3],
                outcome=row[4],
                duration=row[5],
                attempts=row[6],
                exc_type=row[7],
                message=row[8],
            )
            for row in rows
        ]
    failed = [p for p in points if p.outcome in ("failed", "error")]
    # "Failing since" on the latest run's branch: a feature branch's failures say
    # nothing about main.
    branch = points[-1].branch if points else ""
    since = None
    for point in reversed(points):
        if point.branch != branch:
            continue
        if point.outcome not in ("failed", "error"):
            break
        since = point.started_at
    outcomes_by_commit: dict[str, set[str]] = {}
    for point in reversed(points):
        if point.commit:
            outcomes_by_commit.setdefault(point.commit, set()).add(point.outcome)
    flaky_commits = [
        commit
        for commit, seen in outcomes_by_commit.items()
        if "passed" in seen and seen & {"failed", "error"}
    ]
    return TestHistory(
        nodeid=nodeid,
        project=project,
        file=test[1],
        line=test[2],
        markers=list(test[3] or []),
        points=points,
        runs=len(points),
        failures=len(failed),
        last_failure=failed[-1].started_at if failed else None,
        failing_since=since,
        branch=branch,
        flaky_commits=flaky_commits,
        flaky_in_run=sum(1 for p in points if p.attempts > 1 and p.outcome == "passed"),
    )


test_history.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite its name
