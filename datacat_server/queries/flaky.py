"""Flaky tests: which tests both pass and fail, how often they flip, and the proof.

Three kinds of evidence, strongest first:

- **same commit**: the test passed and failed on the same commit (the code did not
  change, the outcome did);
- **flaky in run**: a rerun plugin retried it after a failure and it then passed;
- **flips**: over the window's runs in time order, how often its outcome changed.

A test that failed in every run of the window is broken, not flaky, and is left out.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries.window import Window

__all__ = ["FlakyTest", "flaky_tests"]


class FlakyTest(msgspec.Struct):
    nodeid: str
    #: Runs of the window in which the test ran (its final attempt).
    runs: int
    failures: int
    fail_rate: float
    #: Outcome changes between consecutive runs, and their share of the possible ones.
    flips: int
    flip_rate: float
    #: Commits on which it both passed and failed.
    same_commit: int
    #: Runs in which it failed, was rerun, and passed.
    flaky_in_run: int
    #: The latest run in which it failed.
    last_failure: str | None
    last_failure_run: str | None
    #: Up to five runs in which it failed, newest first.
    failing_runs: list[str]


_SQL = """
WITH w AS (
    SELECT u.sid, u."commit", u.started_at, s.id::VARCHAR AS run_id
    FROM runs u JOIN sessions s USING (sid)
    WHERE u.sid IN (SELECT unnest(?::INTEGER[]))
),
candidates AS (
    SELECT DISTINCT r.test_id FROM results r
    WHERE {window} AND r.subtest IS NULL AND r.outcome IN ('failed', 'error')
),
attempts AS MATERIALIZED (
    SELECT r.test_id, r.sid, r.final, r.outcome IN ('failed', 'error') AS bad,
           r.outcome IN ('passed', 'failed', 'error') AS decided, w."commit", w.started_at,
           w.run_id
    FROM results r JOIN w USING (sid)
    WHERE {window} AND r.subtest IS NULL AND r.test_id IN (SELECT test_id FROM candidates)
),
finals AS MATERIALIZED (SELECT * FROM attempts WHERE final AND decided),
flips AS (
    SELECT test_id, count(*) FILTER (WHERE bad != previous) AS flips
    FROM (SELECT test_id, bad,
                 lag(bad) OVER (PARTITION BY test_id ORDER BY started_at, sid) AS previous
          FROM finals)
    GROUP BY test_id
),
commits AS (
    SELECT test_id, count(*) AS same_commit
    FROM (SELECT test_id FROM finals GROUP BY test_id, "commit"
          HAVING bool_or(bad) AND bool_or(NOT bad))
    GROUP BY test_id
),
reruns AS (
    SELECT a.test_id, count(DISTINCT a.sid) AS flaky_in_run
    FROM attempts a JOIN finals f ON a.test_id = f.test_id AND a.sid = f.sid
    WHERE NOT a.final AND a.bad AND NOT f.bad
    GROUP BY a.test_id
),
stats AS (
    SELECT test_id, count(*) AS runs, count(*) FILTER (WHERE bad) AS failures,
           max(started_at) FILTER (WHERE bad) AS last_failure,
           arg_max(run_id, started_at) FILTER (WHERE bad) AS last_failure_run,
           (list(run_id ORDER BY started_at DESC) FILTER (WHERE bad))[1:5] AS failing_runs
    FROM finals GROUP BY test_id
)
SELECT t.nodeid, s.runs, s.failures, s.failures / s.runs AS fail_rate,
       coalesce(f.flips, 0) AS flips,
       CASE WHEN s.runs > 1 THEN coalesce(f.flips, 0) / (s.runs - 1) ELSE 0 END AS flip_rate,
       coalesce(c.same_commit, 0) AS same_commit, coalesce(x.flaky_in_run, 0) AS flaky_in_run,
       s.last_failure, s.last_failure_run, s.failing_runs
FROM stats s JOIN tests t USING (test_id)
LEFT JOIN flips f USING (test_id)
LEFT JOIN commits c USING (test_id)
LEFT JOIN reruns x USING (test_id)
WHERE (s.failures > 0 AND s.failures < s.runs) OR coalesce(x.flaky_in_run, 0) > 0
ORDER BY (coalesce(c.same_commit, 0) + coalesce(x.flaky_in_run, 0) > 0) DESC,
         flip_rate DESC, fail_rate DESC, t.nodeid
LIMIT ?
"""


def flaky_tests(
    cur: duckdb.DuckDBPyConnection, window: Window, *, limit: int = 50
) -> list[FlakyTest]:
    """The flakiest tests of a window of runs, definitive evidence first."""
    if window.empty:
        return []
    where, where_params = window.where()
    params: list[Any] = [window.sids, *where_params, *where_params, limit]
    return [
        FlakyTest(
            nodeid=row[0],
            runs=row[1],
            failures=row[2],
            fail_rate=row[3],
            flips=row[4],
            flip_rate=row[5],
            same_commit=row[6],
            flaky_in_run=row[7],
            last_failure=iso(row[8]),
            last_failure_run=row[9],
            failing_runs=list(row[10] or []),
        )
        for row in cur.execute(_SQL.replace("{window}", where), params).fetchall()
    ]
