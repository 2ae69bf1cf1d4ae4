"""Flaky tests: which tests both pass and fail without a reason, and the evidence.

**The flaky rule** (the one definition; the test page and the CI classification use
it too): a test is flaky when it has at least one of

- **same commit**: it passed and failed on the same (non-empty) commit — the code did
  not change, the outcome did;
- **rerun**: a rerun plugin retried it after a failure and it then passed;
- **flips**: it failed, passed, and failed again on one branch (two or more separate
  stretches of failures, in the order results were stored).

A test that fails in every run since some commit is *broken* (failing since then),
not flaky: one stretch of failures is no evidence of flakiness, however long. Runs
without a commit never count as the same commit. Evidence is counted within a branch
(flips between consecutive runs of one branch).
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import iso, rows
from datacat_server.queries.streams import failing_tests, folded, streams_cte
from datacat_server.queries.window import Window

__all__ = ["FLAKY_RULE", "FlakyTest", "evidence_of", "flaky_tests", "run_labels"]

#: The flaky rule over a test's stream aggregates, summed over its branches but for
#: ``most_episodes``: the stretches of failures on the one branch that has most (two
#: branches broken by the same commit are one stretch each, not a flip).
FLAKY_RULE = "(same_commit > 0 OR flaky_in_run > 0 OR most_episodes >= 2)"


def evidence_of(same_commit: int, flaky_in_run: int, most_episodes: int) -> list[str]:
    """The kinds of evidence a test's aggregates hold, strongest first (``most_episodes``:
    stretches of failures on its branch with most of them)."""
    found = []
    if same_commit > 0:
        found.append("same_commit")
    if flaky_in_run > 0:
        found.append("rerun")
    if most_episodes >= 2:
        found.append("flips")
    return found


class FlakyTest(msgspec.Struct):
    nodeid: str
    #: Runs in which the test ran (its final attempt) and passed or failed.
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
    #: The latest run in which it failed (when that run started), and its id.
    last_failure: str | None
    last_failure_run: str | None
    #: Up to five runs in which it failed, newest first.
    failing_runs: list[str]
    #: Separate stretches of failures.
    episodes: int = 0
    #: Which evidence makes it flaky: ``same_commit``, ``rerun``, ``flips``.
    evidence: list[str] = []


_SQL = """
, per_test AS (
    SELECT test_id, sum(runs) AS runs, sum(failures) AS failures, sum(flips) AS flips,
           sum(greatest(runs - 1, 0)) AS possible_flips, sum(episodes) AS episodes,
           max(episodes) AS most_episodes,
           sum(same_commit) AS same_commit, sum(flaky_in_run) AS flaky_in_run,
           arg_max(last_failure_sid, last_failure_at) AS last_failure_sid,
           list_reverse_sort(flatten(list(failing_sids)))[1:5] AS failing_sids
    FROM streams GROUP BY test_id
)
SELECT t.nodeid, p.runs, p.failures, p.failures / p.runs AS fail_rate, p.flips,
       coalesce(p.flips / nullif(p.possible_flips, 0), 0) AS flip_rate,
       p.same_commit, p.flaky_in_run, p.episodes, p.most_episodes, p.last_failure_sid,
       p.failing_sids
FROM per_test p JOIN tests t USING (test_id)
WHERE p.runs > 0 AND {rule}
ORDER BY (p.same_commit + p.flaky_in_run > 0) DESC, flip_rate DESC, fail_rate DESC, t.nodeid
LIMIT $limit
"""


def run_labels(cur: duckdb.DuckDBPyConnection, sids: set[int]) -> dict[int, tuple[str, str]]:
    """Session serials → (run id, when the run started), for the runs named in answers."""
    if not sids:
        return {}
    found = cur.execute(
        "SELECT s.sid, s.id::VARCHAR, u.started_at FROM sessions s JOIN runs u USING (sid)"
        " WHERE s.sid IN (SELECT unnest(?::INTEGER[]))",
        [sorted(sids)],
    ).fetchall()
    return {int(sid): (run_id, iso(started) or "") for sid, run_id, started in found}


def flaky_tests(
    cur: duckdb.DuckDBPyConnection,
    window: Window,
    *,
    limit: int = 50,
    rollups: bool | None = None,
) -> list[FlakyTest]:
    """The flakiest tests of a window of runs, definitive evidence first."""
    if window.empty:
        return []
    whole = rollups if rollups is not None else window.reads_rollups
    tests = None if whole else failing_tests(cur, window)
    if tests == []:
        return []
    with folded(cur) if whole else contextlib.nullcontext(None) as reach:
        cte, params = streams_cte(window, rollups=whole, tests=tests, reach=reach)
        sql = cte + _SQL.replace("{rule}", FLAKY_RULE)
        found = rows(cur.execute(sql, {**params, "limit": limit}))
    sids = {r["last_failure_sid"] for r in found if r["last_failure_sid"] is not None}
    sids |= {sid for r in found for sid in r["failing_sids"]}
    runs = run_labels(cur, sids)

    def run(sid: Any) -> tuple[str, str] | None:
        return runs.get(sid) if sid is not None else None

    return [
        FlakyTest(
            nodeid=r["nodeid"],
            runs=r["runs"],
            failures=r["failures"],
            fail_rate=r["fail_rate"],
            flips=r["flips"],
            flip_rate=r["flip_rate"],
            same_commit=r["same_commit"],
            flaky_in_run=r["flaky_in_run"],
            episodes=r["episodes"],
            evidence=evidence_of(r["same_commit"], r["flaky_in_run"], r["most_episodes"]),
            last_failure=(last := run(r["last_failure_sid"])) and last[1],
            last_failure_run=last and last[0],
            failing_runs=[runs[sid][0] for sid in r["failing_sids"] if sid in runs],
        )
        for r in found
    ]
