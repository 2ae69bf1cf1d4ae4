"""The overview page's data: how each branch stands, what runs now, what is wrong."""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries._common import rows as rows_by_name
from datacat_server.queries.flaky import FlakyTest, flaky_tests
from datacat_server.queries.runs import RunInfo, get_runs, list_runs
from datacat_server.queries.sessions import (
    SessionSummary,
    problem_sessions,
    problems_elsewhere,
)
from datacat_server.queries.slow import SlowTest, slow_tests
from datacat_server.queries.window import Window, recent_runs

__all__ = ["BranchHeadline", "Overview", "PassRatePoint", "headline", "overview", "pass_rate"]

#: The outcomes a test ends with, as pytest counts them (a run's test count adds these;
#: ``subtests passed``, ``warnings``, ``deselected`` and the like are not tests).
TEST_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


class PassRatePoint(msgspec.Struct):
    run: str
    started_at: str
    branch: str
    passed: int
    failed: int
    #: passed / (passed + failed), failed counting errors too; None without such tests.
    rate: float | None


class BranchHeadline(msgspec.Struct):
    """How a branch stands: its latest whole run (a partial one if it has no other)."""

    branch: str
    run: str
    #: How pytest ended (``passed``, ``failed``, ...); None while it runs or if it crashed.
    outcome: str | None
    #: The session's status: ``running``, ``ended``, ``hung`` or ``crashed``.
    session_status: str = msgspec.field(name="status")
    partial: bool
    passed: int
    failed: int
    errors: int
    #: Tests that ended, by any outcome (subtests left out).
    tests: int
    #: passed / (passed + failed + errors); None without such tests.
    rate: float | None
    #: Seconds; None until it ends.
    duration: float | None
    started_at: str
    commit: str


class Overview(msgspec.Struct):
    project: str | None
    #: Each branch's latest run, the branch run most recently first.
    headline: list[BranchHeadline]
    recent_runs: list[RunInfo]
    #: Runs still going (their session is running or hung).
    live_runs: list[RunInfo]
    #: Sessions of this project that hang or crashed (its test runs, and programs
    #: that named it as their project), the latest heard of first.
    problems: list[SessionSummary]
    #: How many sessions of other projects hang or crashed.
    problems_elsewhere: int
    #: The same by status (``hung``, ``crashed``; a status with none left out).
    problems_elsewhere_by_status: dict[str, int]
    #: Whole runs only: partial ones (``-k``, ``--lf``, one file) are left out.
    pass_rate: list[PassRatePoint]
    #: Finished partial runs in the window, left out of ``pass_rate``.
    partial_runs: int
    top_flaky: list[FlakyTest]
    top_slow: list[SlowTest]


def _rate(passed: int, failed: int) -> float | None:
    return passed / (passed + failed) if passed + failed else None


_WHOLE_RUNS = """
SELECT s.id::VARCHAR AS run, u.started_at, u.branch,
       coalesce(CAST(u.counts->>'passed' AS INTEGER), 0) AS passed,
       coalesce(CAST(u.counts->>'failed' AS INTEGER), 0)
         + coalesce(CAST(u.counts->>'error' AS INTEGER), 0) AS failed
FROM runs u JOIN sessions s USING (sid)
WHERE u.sid IN (SELECT unnest(?::INTEGER[])) AND u.finished_at IS NOT NULL
  AND NOT u.partial
ORDER BY u.received_at, u.sid
"""


def pass_rate(cur: duckdb.DuckDBPyConnection, window: Window) -> list[PassRatePoint]:
    """Each finished whole run's pass rate, oldest first (partial runs left out: their
    rate says nothing about the suite)."""
    if window.empty:
        return []
    found = rows_by_name(cur.execute(_WHOLE_RUNS, [window.sids]))
    return [
        PassRatePoint(
            run=row["run"],
            started_at=iso(row["started_at"]) or "",
            branch=row["branch"],
            passed=row["passed"],
            failed=row["failed"],
            rate=_rate(row["passed"], row["failed"]),
        )
        for row in found
    ]


def _partial_runs(cur: duckdb.DuckDBPyConnection, window: Window) -> int:
    if window.empty:
        return 0
    rows = cur.execute(
        "SELECT count(*) FROM runs WHERE sid IN (SELECT unnest(?::INTEGER[]))"
        " AND finished_at IS NOT NULL AND partial",
        [window.sids],
    ).fetchall()
    return int(rows[0][0])


def headline(
    cur: duckdb.DuckDBPyConnection, project: str | None, *, branches: int = 6
) -> list[BranchHeadline]:
    """Each branch's latest whole run (by the server's receive time; a partial run only
    where the branch has no whole one), for the ``branches`` branches run most
    recently, most recent first. ``project`` None: every project's runs together."""
    where, params = ("TRUE", []) if project is None else ("u.project = ?", [project])
    rows = cur.execute(
        f"""
        SELECT s.id::VARCHAR FROM (
            SELECT u.sid, u.received_at FROM runs u WHERE {where}
            QUALIFY row_number() OVER (
                PARTITION BY u.branch ORDER BY u.partial, u.received_at DESC, u.sid DESC) = 1
        ) latest JOIN sessions s USING (sid)
        ORDER BY latest.received_at DESC, latest.sid DESC LIMIT ?
        """,
        [*params, branches],
    ).fetchall()
    out = []
    for run in get_runs(cur, [row[0] for row in rows]):
        counts = run.counts
        passed, failed, errors = (counts.get(name, 0) for name in ("passed", "failed", "error"))
        out.append(
            BranchHeadline(
                branch=run.branch,
                run=run.id,
                outcome=run.outcome,
                session_status=run.session_status,
                partial=run.partial,
                passed=passed,
                failed=failed,
                errors=errors,
                tests=sum(counts.get(name, 0) for name in TEST_OUTCOMES),
                rate=_rate(passed, failed + errors),
                duration=run.duration,
                started_at=run.started_at,
                commit=run.commit,
            )
        )
    return out


def overview(cur: duckdb.DuckDBPyConnection, project: str | None, *, runs: int = 100) -> Overview:
    """Everything the overview shows, for one project (None: every project)."""
    window = recent_runs(cur, project, None, runs)
    recent = list_runs(cur, project=project, limit=10)
    live = [run for run in list_runs(cur, project=project, limit=200) if run.outcome is None]
    elsewhere = problems_elsewhere(cur, project)
    return Overview(
        project=project,
        headline=headline(cur, project),
        recent_runs=recent,
        live_runs=[run for run in live if run.session_status in ("running", "hung")][:10],
        problems=problem_sessions(cur, project, limit=10),
        problems_elsewhere=sum(elsewhere.values()),
        problems_elsewhere_by_status=elsewhere,
        pass_rate=pass_rate(cur, window),
        partial_runs=_partial_runs(cur, window),
        top_flaky=flaky_tests(cur, window, limit=5),
        top_slow=slow_tests(cur, window, limit=5),
    )
