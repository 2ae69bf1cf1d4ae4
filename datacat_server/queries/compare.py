"""Two runs side by side: what broke, what was fixed, what is new, what got slower.

A test is its node id and subtest (a subtest is compared with the same subtest), and
its result in a run is its final attempt (a rerun's last). Each test present in either
run falls in at most one category, in this order: new (only in this run), removed
(only in the base), still failing, newly failing, fixed (failing: failed or error),
slower, faster. Slower and faster compare call durations (setup left out, as
regressions do: start-up charged to the first test's setup is not a slowdown) of tests
that passed in both runs, by ``factor`` or more, when the longer of the two is at least
``min_seconds``.

The default base of a run is the one its failures are classified against
(`queries/base.py`): the run before it on its branch, or for a pull request the target
branch's run on the merge base.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_client.wire import OUTCOMES
from datacat_server.queries._common import iso, parse_session_id, rows, select_list, structs

__all__ = ["RunComparison", "RunSide", "TestChange", "compare_runs"]


class RunSide(msgspec.Struct):
    """One of the two runs."""

    id: str
    project: str
    branch: str
    commit: str
    started_at: str
    partial: bool
    #: The run's own duration (seconds, as pytest measured it); None while it runs.
    duration: float | None
    #: The sum of its tests' durations (final attempts, subtests aside).
    test_time: float
    #: pytest's own counts once the run finished, as the run list and the run page show
    #: them; before, its final results by outcome (subtests as ``subtests <outcome>``).
    counts: dict[str, int]


class TestChange(msgspec.Struct):
    """A test in one category: its result in the base run and in this one."""

    __test__ = False

    nodeid: str
    subtest: str | None
    #: None where the test did not run.
    base_outcome: str | None
    outcome: str | None
    #: Call durations, seconds.
    base_duration: float | None
    duration: float | None
    #: duration / base_duration, when both ran.
    factor: float | None
    #: The exception message: this run's, or the base's for a fixed or removed test.
    message: str | None


class RunComparison(msgspec.Struct):
    run: RunSide
    base: RunSide
    newly_failing: list[TestChange]
    fixed: list[TestChange]
    still_failing: list[TestChange]
    new_tests: list[TestChange]
    removed_tests: list[TestChange]
    slower: list[TestChange]
    faster: list[TestChange]
    #: How many tests each category has (its list holds at most ``limit``).
    sizes: dict[str, int]
    #: This run's minus the base's: duration, test time, and counts by outcome.
    duration_change: float | None
    test_time_change: float
    count_changes: dict[str, int]
    #: What slower and faster meant.
    factor: float
    min_seconds: float


CATEGORIES = (
    "new_tests",
    "removed_tests",
    "still_failing",
    "newly_failing",
    "fixed",
    "slower",
    "faster",
)

# The session serial is a parameter of each part (not a correlated subquery): DuckDB
# then skips every row group of results but the run's.
_SIDE_COLUMNS = select_list(
    RunSide,
    "u",
    {
        "id": "s.id::VARCHAR",
        "commit": 'u."commit"',
        "test_time": """(SELECT coalesce(sum(r.duration), 0) FROM results r
            WHERE r.sid = $sid AND r.final AND r.subtest IS NULL)""",
        "counts": """CASE WHEN cardinality(coalesce(
                json_transform(u.counts, '"MAP(VARCHAR, BIGINT)"'), MAP {})) > 0
            THEN json_transform(u.counts, '"MAP(VARCHAR, BIGINT)"')
            ELSE (SELECT coalesce(map(list(k), list(n)), MAP {}) FROM (
                SELECT CASE WHEN r.subtest IS NULL THEN '' ELSE 'subtests ' END
                         || r.outcome::VARCHAR AS k, count(*) AS n
                FROM results r WHERE r.sid = $sid AND r.final GROUP BY ALL)) END""",
    },
)
_SIDE = f"SELECT {_SIDE_COLUMNS} FROM runs u JOIN sessions s USING (sid) WHERE u.sid = $sid"
_SIDE_CONVERT: dict[str, Any] = {
    "started_at": lambda v: iso(v) or "",
    "test_time": float,
    "counts": lambda v: dict(sorted(v.items())),
}

# One row per test (and subtest) in a category; the last final result of each in each
# run. Failing means failed or error.
_CHANGES = """
WITH f AS (
    SELECT r.sid, r.test_id, r.subtest, arg_max(r.outcome::VARCHAR, r.seq) AS outcome,
           arg_max(r.call_duration, r.seq) AS call, max(r.seq) AS seq
    FROM results r WHERE r.sid IN ($run, $base) AND r.final
    GROUP BY r.sid, r.test_id, r.subtest
),
h AS (SELECT * FROM f WHERE sid = $run),
b AS (SELECT * FROM f WHERE sid = $base),
j AS (
    SELECT coalesce(h.test_id, b.test_id) AS test_id, coalesce(h.subtest, b.subtest) AS subtest,
           t.nodeid,
           b.outcome AS base_outcome, h.outcome, b.call AS base_call, h.call,
           h.sid AS h_sid, h.seq AS h_seq, b.sid AS b_sid, b.seq AS b_seq,
           h.outcome IN ('failed', 'error') AS h_bad, b.outcome IN ('failed', 'error') AS b_bad
    FROM h FULL OUTER JOIN b ON h.test_id = b.test_id AND h.subtest IS NOT DISTINCT FROM b.subtest
    JOIN tests t ON t.test_id = coalesce(h.test_id, b.test_id)
),
c AS (
    SELECT *, CASE
        WHEN b_sid IS NULL THEN 'new_tests'
        WHEN h_sid IS NULL THEN 'removed_tests'
        WHEN h_bad AND b_bad THEN 'still_failing'
        WHEN h_bad THEN 'newly_failing'
        WHEN b_bad THEN 'fixed'
        WHEN outcome <> 'passed' OR base_outcome <> 'passed'
             OR greatest(call, base_call) < $min_seconds THEN NULL
        WHEN call >= $factor * base_call THEN 'slower'
        WHEN base_call >= $factor * call THEN 'faster'
    END AS category
    FROM j
),
ranked AS (
    SELECT *, row_number() OVER (
                  PARTITION BY category
                  ORDER BY CASE WHEN category = 'slower' THEN base_call / greatest(call, 1e-9)
                                WHEN category = 'faster' THEN call / greatest(base_call, 1e-9)
                           END NULLS LAST, nodeid, subtest NULLS FIRST) AS rank,
              count(*) OVER (PARTITION BY category) AS size
    FROM c WHERE category IS NOT NULL
)
SELECT x.category, x.size, x.nodeid, x.subtest, x.base_outcome, x.outcome, x.base_call, x.call,
       coalesce(dh.exc_message, db.exc_message) AS message
FROM ranked x
LEFT JOIN result_details dh ON dh.sid = x.h_sid AND dh.seq = x.h_seq
LEFT JOIN result_details db ON db.sid = x.b_sid AND db.seq = x.b_seq
  AND x.category IN ('fixed', 'removed_tests')
WHERE x.rank <= $limit
ORDER BY x.category, x.rank
"""


def _sid(cur: duckdb.DuckDBPyConnection, run_id: str) -> int | None:
    key = parse_session_id(run_id)
    if key is None:
        return None
    row = cur.execute(
        "SELECT u.sid FROM runs u JOIN sessions s USING (sid) WHERE s.id = CAST(? AS UUID)", [key]
    ).fetchone()
    return None if row is None else int(row[0])


def _side(cur: duckdb.DuckDBPyConnection, sid: int) -> RunSide:
    return structs(cur.execute(_SIDE, {"sid": sid}), RunSide, _SIDE_CONVERT)[0]


def _count_order(name: str) -> tuple[bool, int, str]:
    """Counts in pytest's order of outcomes, the tests' before their subtests', then any
    other (``warnings``, ``deselected``) by name."""
    outcome = name.removeprefix("subtests ")
    rank = OUTCOMES.index(outcome) if outcome in OUTCOMES else len(OUTCOMES)
    return (name != outcome, rank, name)


def compare_runs(
    cur: duckdb.DuckDBPyConnection,
    run_id: str,
    base_id: str,
    *,
    factor: float = 2.0,
    min_seconds: float = 0.01,
    limit: int = 1000,
) -> RunComparison | None:
    """Run ``run_id`` against ``base_id``; None if either is no run."""
    run, base = _sid(cur, run_id), _sid(cur, base_id)
    if run is None or base is None:
        return None
    params: dict[str, Any] = {
        "run": run,
        "base": base,
        "factor": factor,
        "min_seconds": min_seconds,
        "limit": limit,
    }
    lists: dict[str, list[TestChange]] = {name: [] for name in CATEGORIES}
    sizes = dict.fromkeys(CATEGORIES, 0)
    for row in rows(cur.execute(_CHANGES, params)):
        sizes[row["category"]] = row["size"]
        call, base_call = row["call"], row["base_call"]
        both = call is not None and base_call is not None
        lists[row["category"]].append(
            TestChange(
                nodeid=row["nodeid"],
                subtest=row["subtest"],
                base_outcome=row["base_outcome"],
                outcome=row["outcome"],
                base_duration=base_call,
                duration=call,
                factor=call / base_call if both and base_call > 0 else None,
                message=row["message"],
            )
        )
    this, other = _side(cur, run), _side(cur, base)
    outcomes = sorted(this.counts.keys() | other.counts.keys(), key=_count_order)
    return RunComparison(
        run=this,
        base=other,
        **lists,
        sizes=sizes,
        duration_change=None
        if this.duration is None or other.duration is None
        else this.duration - other.duration,
        test_time_change=this.test_time - other.test_time,
        count_changes={k: this.counts.get(k, 0) - other.counts.get(k, 0) for k in outcomes},
        factor=factor,
        min_seconds=min_seconds,
    )
