"""The overview page's data: what ran lately, what runs now, what is wrong."""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries.flaky import FlakyTest, flaky_tests
from datacat_server.queries.runs import RunInfo, list_runs
from datacat_server.queries.sessions import SessionSummary, list_sessions
from datacat_server.queries.slow import SlowTest, slow_tests
from datacat_server.queries.window import Window, recent_runs

__all__ = ["Overview", "PassRatePoint", "overview", "pass_rate"]


class PassRatePoint(msgspec.Struct):
    run: str
    started_at: str
    branch: str
    passed: int
    failed: int
    #: passed / (passed + failed), failed counting errors too; None without such tests.
    rate: float | None


class Overview(msgspec.Struct):
    project: str | None
    recent_runs: list[RunInfo]
    #: Runs still going (their session is running or hung).
    live_runs: list[RunInfo]
    #: Recent sessions that hang or crashed (test runs or any program).
    problems: list[SessionSummary]
    pass_rate: list[PassRatePoint]
    top_flaky: list[FlakyTest]
    top_slow: list[SlowTest]


def pass_rate(cur: duckdb.DuckDBPyConnection, window: Window) -> list[PassRatePoint]:
    """Each finished run's pass rate, oldest first."""
    if window.empty:
        return []
    rows = cur.execute(
        """
        SELECT s.id::VARCHAR, u.started_at, u.branch,
               coalesce(CAST(u.counts->>'passed' AS INTEGER), 0) AS passed,
               coalesce(CAST(u.counts->>'failed' AS INTEGER), 0)
                 + coalesce(CAST(u.counts->>'error' AS INTEGER), 0) AS failed
        FROM runs u JOIN sessions s USING (sid)
        WHERE u.sid IN (SELECT unnest(?::INTEGER[])) AND u.finished_at IS NOT NULL
        ORDER BY u.received_at, u.sid
        """,
        [window.sids],
    ).fetchall()
    return [
        PassRatePoint(
            run=row[0],
            started_at=iso(row[1]) or "",
            branch=row[2],
            passed=row[3],
            failed=row[4],
            rate=row[3] / (row[3] + row[4]) if row[3] + row[4] else None,
        )
        for row in rows
    ]


def overview(cur: duckdb.DuckDBPyConnection, project: str | None, *, runs: int = 100) -> Overview:
    """Everything the overview shows, for one project (None: every project)."""
    window = recent_runs(cur, project, None, runs)
    recent = list_runs(cur, project=project, limit=10)
    live = [run for run in list_runs(cur, project=project, limit=200) if run.outcome is None]
    problems = list_sessions(cur, status="hung", limit=10) + list_sessions(
        cur, status="crashed", limit=10
    )
    problems.sort(key=lambda s: s.updated_at, reverse=True)
    return Overview(
        project=project,
        recent_runs=recent,
        live_runs=[run for run in live if run.status in ("running", "hung")][:10],
        problems=problems[:10],
        pass_rate=pass_rate(cur, window),
        top_flaky=flaky_tests(cur, window, limit=5),
        top_slow=slow_tests(cur, window, limit=5),
    )
