"""One test over time: its outcome and duration in each recent run, and its failures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import iso, select_list, structs
from datacat_server.queries._common import rows as rows_by_name
from datacat_server.queries.flaky import evidence_of, run_labels
from datacat_server.queries.streams import streams_cte
from datacat_server.queries.window import Window
from datacat_server.store.rollups import finals_sql

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
    #: Why it is flaky by the flaky rule (`queries/flaky.py`): ``same_commit``,
    #: ``rerun``, ``flips``; empty when it is not.
    evidence: list[str] = []


#: Each `HistoryPoint` field: a column of ``w`` (the run) or its last attempt's value.
_POINT_COLUMNS = select_list(
    HistoryPoint,
    "w",
    {
        "commit": 'w."commit"',
        **{
            name: f"arg_max({column}, r.attempt)"
            for name, column in (
                ("outcome", "r.outcome::VARCHAR"),
                ("duration", "r.duration"),
                ("exc_type", "d.exc_type"),
                ("message", "d.exc_message"),
            )
        },
        "attempts": "count(*)",
    },
)

_SQL = """
WITH w AS (
    SELECT u.sid, u.started_at, u.branch, u."commit", s.id::VARCHAR AS run
    FROM runs u JOIN sessions s USING (sid) WHERE u.sid IN (SELECT unnest(?::INTEGER[]))
)
SELECT {columns}
FROM results r JOIN w USING (sid) LEFT JOIN result_details d USING (sid, seq)
WHERE {window} AND r.test_id = ? AND r.subtest IS NULL
GROUP BY ALL
ORDER BY w.started_at, w.run
""".replace("{columns}", _POINT_COLUMNS)


_FLAKY_COMMITS = """
WITH f AS ({finals})
SELECT "commit" FROM f WHERE decided AND "commit" <> ''
GROUP BY branch, "commit" HAVING bool_or(bad) AND bool_or(NOT bad)
ORDER BY max(stored_at) DESC
"""


def test_history(
    cur: duckdb.DuckDBPyConnection, project: str, nodeid: str, window: Window
) -> TestHistory | None:
    """``nodeid``'s results over the window's runs, or None if the test is unknown.

    Whether it is flaky, and since when it fails, come from its stream aggregates (the
    flaky list's own, `queries/streams.py`), so the test page and the flaky list agree.
    """
    tests = rows_by_name(
        cur.execute(
            "SELECT test_id, file, line, markers FROM tests WHERE project = ? AND nodeid = ?",
            [project, nodeid],
        )
    )
    if not tests:
        return None
    test = tests[0]
    test_id = test["test_id"]
    points: list[HistoryPoint] = []
    aggregates: list[dict[str, Any]] = []
    flaky_commits: list[str] = []
    if not window.empty:
        where, params = window.where()
        points = structs(
            cur.execute(_SQL.replace("{window}", where), [window.sids, *params, test_id]),
            HistoryPoint,
            {"started_at": lambda v: iso(v) or ""},
        )
        cte, cte_params = streams_cte(window, rollups=False, tests=[test_id])
        aggregates = rows_by_name(cur.execute(cte + " SELECT * FROM streams", cte_params))
        where, window_params = window.named("r")
        finals = finals_sql(f"{where} AND r.test_id = $test_id")
        found = cur.execute(
            _FLAKY_COMMITS.replace("{finals}", finals), {**window_params, "test_id": test_id}
        ).fetchall()
        flaky_commits = [row[0] for row in found]
    # "Failing since" on the branch of its newest result: a feature branch's failures
    # say nothing about main.
    latest = max(aggregates, key=lambda a: a["last_at"] or _EPOCH, default=None)
    labels = run_labels(
        cur,
        {sid for a in aggregates for sid in (a["streak_sid"], a["last_failure_sid"]) if sid},
    )
    newest_failure = max(
        (a for a in aggregates if a["last_failure_at"] is not None),
        key=lambda a: a["last_failure_at"],
        default=None,
    )
    same_commit = sum(a["same_commit"] for a in aggregates)
    flaky_in_run = sum(a["flaky_in_run"] for a in aggregates)
    most_episodes = max((a["episodes"] for a in aggregates), default=0)
    since = labels.get(latest["streak_sid"]) if latest and latest["streak"] else None
    last = labels.get(newest_failure["last_failure_sid"]) if newest_failure else None
    return TestHistory(
        nodeid=nodeid,
        project=project,
        file=test["file"],
        line=test["line"],
        markers=list(test["markers"] or []),
        points=points,
        runs=sum(a["runs"] for a in aggregates),
        failures=sum(a["failures"] for a in aggregates),
        last_failure=last[1] if last else None,
        failing_since=since[1] if since else None,
        branch=latest["branch"] if latest else "",
        flaky_commits=flaky_commits,
        flaky_in_run=flaky_in_run,
        evidence=evidence_of(same_commit, flaky_in_run, most_episodes),
    )


_EPOCH = dt.datetime(1970, 1, 1)

test_history.__test__ = False  # type: ignore[attr-defined]  # not a pytest test, despite its name
