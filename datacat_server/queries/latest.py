"""Per project, what its recent branches look like now: the latest finished run of each,
and how many tests are flaky. The Prometheus gauges show these (`telemetry.py`).

Every answer is bounded by its arguments, never by the data: the projects asked for,
with at most ``branches`` branches each (those run most recently). The latest runs
are read from the ``runs`` table alone (one row per run); the flaky counts read each
project's window of recent runs (see `queries/window.py`), all in one query.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec

from datacat_server.queries._common import select_list, structs
from datacat_server.queries.flaky import FLAKY_RULE
from datacat_server.store.rollups import finals_sql, same_commit_sql, stream_sql

__all__ = ["BranchRun", "flaky_counts", "latest_runs"]


class BranchRun(msgspec.Struct, frozen=True):
    """The latest finished run of a project's branch."""

    project: str
    branch: str
    #: pytest's counts: passed, and failed counting errors too (as the overview's pass rate).
    passed: int
    failed: int
    #: Seconds the run took, if it said.
    duration: float | None
    #: When the server received the run's start (Unix seconds).
    received_at: float

    @property
    def pass_rate(self) -> float | None:
        """passed / (passed + failed); None when neither happened (all skipped)."""
        total = self.passed + self.failed
        return self.passed / total if total else None


#: Each `BranchRun` field: the ``runs`` column of its name unless named here.
_LATEST_COLUMNS = select_list(
    BranchRun,
    "u",
    {
        "passed": "coalesce(CAST(u.counts->>'passed' AS INTEGER), 0)",
        "failed": "coalesce(CAST(u.counts->>'failed' AS INTEGER), 0)"
        " + coalesce(CAST(u.counts->>'error' AS INTEGER), 0)",
        "received_at": "epoch_us(u.received_at) / 1e6",
    },
)

_LATEST = """
WITH recent_branches AS (
    SELECT project, branch FROM runs WHERE project IN (SELECT unnest($projects::VARCHAR[]))
    GROUP BY project, branch
    QUALIFY row_number() OVER (
        PARTITION BY project ORDER BY max(received_at) DESC, max(sid) DESC
    ) <= $branches
)
SELECT {columns}
FROM runs u SEMI JOIN recent_branches USING (project, branch)
WHERE u.finished_at IS NOT NULL
QUALIFY row_number() OVER (
    PARTITION BY u.project, u.branch ORDER BY u.received_at DESC, u.sid DESC
) = 1
ORDER BY u.project, u.branch
""".replace("{columns}", _LATEST_COLUMNS)


def latest_runs(
    cur: duckdb.DuckDBPyConnection, projects: Sequence[str], *, branches: int
) -> list[BranchRun]:
    """The latest finished run of each of the ``branches`` most recently run branches of
    each project (a branch whose runs have not finished yet has none)."""
    if not projects:
        return []
    return structs(
        cur.execute(_LATEST, {"projects": list(projects), "branches": branches}), BranchRun
    )


_FLAKY_COUNTS = """
WITH f AS ({finals}),
{streams},
commits AS ({commits}),
streams AS (
    SELECT s.*, coalesce(c.same_commit, 0) AS same_commit
    FROM stream s LEFT JOIN commits c USING (test_id, branch)
),
per_test AS (
    SELECT test_id, sum(runs) AS runs, max(episodes) AS most_episodes,
           sum(same_commit) AS same_commit, sum(flaky_in_run) AS flaky_in_run
    FROM streams GROUP BY test_id
)
SELECT t.project, count(*) FROM per_test p JOIN tests t USING (test_id)
WHERE p.runs > 0 AND {rule}
GROUP BY t.project
"""

#: Only a test that failed, or passed on a rerun, can meet the flaky rule.
_SUSPECTS = """r.test_id IN (
    SELECT test_id FROM results s WHERE {window} AND s.final AND s.subtest IS NULL
    AND (s.outcome IN ('failed', 'error') OR s.attempt > 0))"""


#: The runs of each project's window: its last ``runs`` runs, as `recent_runs` orders them.
_WINDOWS = """
SELECT sid FROM runs WHERE project IN (SELECT unnest($projects::VARCHAR[]))
QUALIFY row_number() OVER (PARTITION BY project ORDER BY received_at DESC, sid DESC) <= $runs
ORDER BY sid
"""


def flaky_counts(
    cur: duckdb.DuckDBPyConnection, projects: Sequence[str], *, runs: int
) -> dict[str, int]:
    """How many tests are flaky in each project's last ``runs`` runs (on every branch:
    the window `recent_runs(cur, project, None, runs)` of the flaky page): the rule of
    `queries/flaky.py`, over the aggregates `flaky_tests` lists them from (from the
    window's results, as for any window of up to 200 runs).

    Two queries for all the projects, not two per project: a test and a run belong to
    one project, so each test's streams hold its own project's window only, and the
    results in the windows' range are read once (projects that run at the same time
    interleave their runs: each window's range holds the others'). Streams are built
    only for tests that failed or were rerun in the window: the others cannot be flaky,
    and they are most of the rows.
    """
    counts = dict.fromkeys(projects, 0)
    if not projects:
        return counts
    found = cur.execute(_WINDOWS, {"projects": list(projects), "runs": runs}).fetchall()
    sids = [int(row[0]) for row in found]
    if not sids:
        return counts
    params: dict[str, object] = {"lo": sids[0], "hi": sids[-1]}
    if len(sids) < sids[-1] - sids[0] + 1:
        # A list parameter, not the serials written in: measured here, over a range of
        # 10M results, 5x faster than a literal IN list.
        params["sids"] = sids

    def where(alias: str) -> str:
        sql = f"{alias}.sid BETWEEN $lo AND $hi"
        if "sids" in params:
            sql += f" AND {alias}.sid IN (SELECT unnest($sids::INTEGER[]))"
        return sql

    suspects = _SUSPECTS.replace("{window}", where("s"))
    sql = (
        _FLAKY_COUNTS.replace("{finals}", finals_sql(f"{where('r')} AND {suspects}"))
        .replace("{streams}", stream_sql("f"))
        .replace("{commits}", same_commit_sql("f"))
        .replace("{rule}", FLAKY_RULE)
    )
    found = cur.execute(sql, params).fetchall()
    counts.update((str(project), int(count)) for project, count in found)
    return counts
