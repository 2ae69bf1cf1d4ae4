"""Reading the quarantine: who is in it, every change, each project's policy, and which
of a run's tests were in it when the run started.

The reads of `datacat_server.store.quarantine` (which also makes the changes, through
the writer) are re-exported here, so that pages and the API read the quarantine through
the query layer like everything else.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import iso, select_list, structs
from datacat_server.store.quarantine import (
    DEFAULT_RELEASE_AFTER,
    Change,
    Policy,
    QuarantineEntry,
    entries,
    history,
    policy,
)

__all__ = [
    "DEFAULT_RELEASE_AFTER",
    "Change",
    "Policy",
    "QuarantineEntry",
    "RunQuarantine",
    "entries",
    "entry",
    "history",
    "policy",
    "quarantine_projects",
    "run_quarantine",
]


_SINCE: dict[str, Any] = {"since": lambda v: iso(v) or ""}


def entry(cur: duckdb.DuckDBPyConnection, project: str, nodeid: str) -> QuarantineEntry | None:
    """The test's place in quarantine, or None when it is not in quarantine."""
    found = structs(
        cur.execute(
            f"SELECT {select_list(QuarantineEntry, 'q', {})} FROM quarantine q"
            " WHERE q.project = ? AND q.nodeid = ?",
            [project, nodeid],
        ),
        QuarantineEntry,
        _SINCE,
    )
    return found[0] if found else None


def quarantine_projects(cur: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Every project whose quarantine holds tests, was ever changed, or has a policy,
    with how many tests it holds now; those holding most first, then by name."""
    found = cur.execute(
        """
        SELECT project, count(q.nodeid) AS held FROM (
            SELECT project FROM quarantine_log UNION SELECT project FROM quarantine_policy
            UNION SELECT project FROM quarantine
        ) p LEFT JOIN quarantine q USING (project)
        GROUP BY project ORDER BY held DESC, project
        """
    ).fetchall()
    return {str(project): int(held) for project, held in found}


class RunQuarantine(msgspec.Struct):
    """A test of a run in quarantine, then or now."""

    nodeid: str
    #: In quarantine when the run started: its failure did not fail a run made with
    #: ``--datacat-quarantine`` (the plugin asks for the list as the run starts).
    at_start: bool
    #: Still in quarantine now.
    now: bool
    #: The quarantine in force at the start (else the current one): ``manual`` or ``auto``.
    mode: str
    reason: str
    since: str
    who: str


#: The quarantine in force at the start if the test was in it then, else the current one.
_RUN_COLUMNS = select_list(
    RunQuarantine,
    "f",
    {
        "at_start": "s.action = 'add'",
        "now": "q.nodeid IS NOT NULL",
        **{
            name: f"CASE WHEN s.action = 'add' THEN s.{logged} ELSE q.{name} END"
            for name, logged in (
                ("mode", "mode"),
                ("reason", "reason"),
                ("since", "changed_at"),
                ("who", "who"),
            )
        },
    },
)

_RUN_QUARANTINE = """
WITH run AS (
    SELECT u.sid, u.project, u.received_at FROM runs u JOIN sessions s USING (sid)
    WHERE s.id = TRY_CAST($run AS UUID)
),
failed AS (
    SELECT DISTINCT t.nodeid FROM results r JOIN tests t USING (test_id)
    WHERE r.sid = (SELECT sid FROM run) AND r.outcome IN ('failed', 'error')
),
at_start AS (
    SELECT l.nodeid, l.action, l.mode, l.reason, l.who, l.changed_at
    FROM quarantine_log l JOIN run ON l.project = run.project AND l.changed_at <= run.received_at
    WHERE l.nodeid IN (SELECT nodeid FROM failed)
    QUALIFY row_number() OVER (PARTITION BY l.nodeid ORDER BY l.changed_at DESC) = 1
)
SELECT {columns}
FROM failed f
LEFT JOIN at_start s USING (nodeid)
LEFT JOIN quarantine q ON q.project = (SELECT project FROM run) AND q.nodeid = f.nodeid
WHERE s.action = 'add' OR q.nodeid IS NOT NULL
ORDER BY f.nodeid
""".replace("{columns}", _RUN_COLUMNS)


def run_quarantine(cur: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, RunQuarantine]:
    """The tests that failed in run ``run_id`` (an attempt, or a subtest) and were in
    quarantine when the run started (by the server's clock, which the quarantine's log
    keeps) or are in it now, by node id."""
    found = cur.execute(_RUN_QUARANTINE, {"run": run_id})
    convert: dict[str, Any] = {"at_start": bool, "now": bool, **_SINCE}
    return {test.nodeid: test for test in structs(found, RunQuarantine, convert)}
