"""What a run's failures mean for the person looking at a red CI job.

Each failed or errored test of a run (its final attempt; subtests aside) is one of:

- **known flaky**: flaky by the flaky rule (`queries/flaky.py`) over the base branch's
  recent runs — retry or ignore it;
- **already failing**: it failed in the base run too — not this change's doing; *since*
  names the run (and commit) its failing streak on the base branch started in;
- **new test**: the store had never seen it before this run;
- **new**: it passed in the base run (or the base did not run it) — look here first.

A test that failed in the base run and passes now is **fixed**.

The **base** is the previous run of the same branch, or for a pull or merge request the
target branch's run on the merge base (`queries/base.py`, which run comparison shares).
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import parse_session_id, rows
from datacat_server.queries.base import base_sid
from datacat_server.queries.flaky import evidence_of, run_labels
from datacat_server.queries.streams import streams_cte
from datacat_server.queries.window import recent_runs

__all__ = ["CATEGORIES", "ClassifiedFailure", "RunClassification", "classify_run"]

#: The categories of a failure, most actionable first.
CATEGORIES = ("new", "new_test", "already_failing", "known_flaky")
#: The lists an answer carries are cut here (the counts are not).
LIST_LIMIT = 500
#: How far back the flaky rule looks on the base branch.
FLAKY_WINDOW = 100


class ClassifiedFailure(msgspec.Struct):
    nodeid: str
    #: ``new``, ``new_test``, ``already_failing`` or ``known_flaky``.
    category: str
    outcome: str
    exc_type: str | None
    #: The first line of the message.
    message: str | None
    #: Already failing: when (and in which run, on which commit) its streak began.
    since: str | None = None
    since_run: str | None = None
    since_commit: str | None = None
    #: Known flaky: the evidence (``same_commit``, ``rerun``, ``flips``).
    evidence: list[str] = []


class RunClassification(msgspec.Struct):
    run: str
    #: The run compared with, and how it was chosen; None: there was none.
    base_run: str | None
    base_branch: str
    base_commit: str
    #: How many failures of each category, and how many tests were fixed.
    counts: dict[str, int]
    #: Failures, most actionable first (cut at `LIST_LIMIT`).
    failures: list[ClassifiedFailure]
    #: Tests that failed in the base run and pass now (cut at `LIST_LIMIT`).
    fixed: list[str]


_FINALS = """
SELECT r.test_id, t.nodeid, r.outcome::VARCHAR AS outcome, d.exc_type,
       split_part(coalesce(d.exc_message, ''), chr(10), 1) AS message, t.first_seen
FROM results r JOIN tests t USING (test_id) LEFT JOIN result_details d USING (sid, seq)
WHERE r.sid = ? AND r.final AND r.subtest IS NULL
"""


def classify_run(cur: duckdb.DuckDBPyConnection, run_id: str) -> RunClassification | None:
    """The run's failures classified against its base, or None if there is no such run."""
    key = parse_session_id(run_id)
    if key is None:
        return None
    found = rows(
        cur.execute(
            "SELECT u.sid, u.project, u.branch, u.base_branch, u.base_commit, u.received_at,"
            " s.received_at AS session_received FROM runs u JOIN sessions s USING (sid)"
            " WHERE s.id = CAST(? AS UUID)",
            [key],
        )
    )
    if not found:
        return None
    run = found[0]
    base_serial = base_sid(cur, run["sid"])
    now = {r["test_id"]: r for r in rows(cur.execute(_FINALS, [run["sid"]]))}
    before = (
        {}
        if base_serial is None
        else {r["test_id"]: r for r in rows(cur.execute(_FINALS, [base_serial]))}
    )
    bad = {"failed", "error"}
    failing = {tid: r for tid, r in now.items() if r["outcome"] in bad}
    streams = _base_streams(cur, run, list(failing))
    labels = run_labels(
        cur, {s["streak_sid"] for s in streams.values() if s["streak_sid"] is not None}
    )
    failures = []
    for tid, result in failing.items():
        stream = streams.get(tid)
        evidence = (
            evidence_of(stream["same_commit"], stream["flaky_in_run"], stream["episodes"])
            if stream
            else []
        )
        base = before.get(tid)
        failure = ClassifiedFailure(
            nodeid=result["nodeid"],
            category="new",
            outcome=result["outcome"],
            exc_type=result["exc_type"],
            message=result["message"] or None,
        )
        if evidence:
            failure.category, failure.evidence = "known_flaky", evidence
        elif base is not None and base["outcome"] in bad:
            failure.category = "already_failing"
            label = labels.get(stream["streak_sid"]) if stream and stream["streak"] else None
            if label:
                failure.since_run, failure.since = label
                failure.since_commit = _commit_of(cur, failure.since_run)
        elif base is None and result["first_seen"] >= run["session_received"]:
            failure.category = "new_test"
        failures.append(failure)
    failures.sort(key=lambda f: (CATEGORIES.index(f.category), f.nodeid))
    fixed = sorted(
        r["nodeid"]
        for tid, r in before.items()
        if r["outcome"] in bad and tid in now and now[tid]["outcome"] == "passed"
    )
    counts = dict.fromkeys(CATEGORIES, 0)
    for failure in failures:
        counts[failure.category] += 1
    counts["fixed"] = len(fixed)
    base_id = (
        run_labels(cur, {base_serial}).get(base_serial, (None, ""))[0] if base_serial else None
    )
    return RunClassification(
        run=key,
        base_run=base_id,
        base_branch=run["base_branch"] or run["branch"],
        base_commit=run["base_commit"],
        counts=counts,
        failures=failures[:LIST_LIMIT],
        fixed=fixed[:LIST_LIMIT],
    )


def _base_streams(
    cur: duckdb.DuckDBPyConnection, run: dict[str, Any], test_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """The failing tests' stream aggregates over the base branch's recent runs."""
    if not test_ids:
        return {}
    window = recent_runs(cur, run["project"], run["base_branch"] or run["branch"], FLAKY_WINDOW)
    if window.empty:
        return {}
    cte, params = streams_cte(window, rollups=False, tests=test_ids)
    return {r["test_id"]: r for r in rows(cur.execute(cte + " SELECT * FROM streams", params))}


def _commit_of(cur: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    found = cur.execute(
        'SELECT u."commit" FROM runs u JOIN sessions s USING (sid) WHERE s.id = CAST(? AS UUID)',
        [run_id],
    ).fetchall()
    return (found[0][0] or None) if found else None
