"""Quarantine: tests whose failures do not fail a build while they are being fixed.

A test enters quarantine by hand (``datacat quarantine add``, the API), or, for a
project that turned it on, automatically when the flaky rule flags it; an automatic
quarantine ends after ``release_after`` passes in a row (30 by default, as Codecov's).
Every change is logged with who made it, why and when (``quarantine_log``). The
pytest plugin (``--datacat-quarantine``) asks for the list at the start of a run.

Changes go through the writer (`Writer.maintain`), like every other write.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import msgspec

from datacat_server.queries._common import iso, rows

__all__ = [
    "DEFAULT_RELEASE_AFTER",
    "Change",
    "Policy",
    "QuarantineEntry",
    "add",
    "entries",
    "history",
    "keep_up",
    "policy",
    "remove",
    "set_policy",
]

log = logging.getLogger("datacat.quarantine")

#: Passes in a row that end an automatic quarantine.
DEFAULT_RELEASE_AFTER = 30
#: The automatic quarantine's "who".
AUTOMATIC = "datacat (flaky rule)"


class QuarantineEntry(msgspec.Struct):
    nodeid: str
    #: ``manual`` or ``auto``.
    mode: str
    reason: str
    since: str
    #: The name of the token that put it there (or the automatic quarantine).
    who: str


class Change(msgspec.Struct):
    nodeid: str
    #: ``add`` or ``remove``.
    action: str
    mode: str
    reason: str
    who: str
    when: str


class Policy(msgspec.Struct):
    project: str
    #: Quarantine tests the flaky rule flags, by itself.
    auto: bool = False
    release_after: int = DEFAULT_RELEASE_AFTER


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def entries(cur: duckdb.DuckDBPyConnection, project: str) -> list[QuarantineEntry]:
    """The project's tests in quarantine, by node id."""
    found = rows(
        cur.execute(
            "SELECT nodeid, mode, reason, since, who FROM quarantine WHERE project = ?"
            " ORDER BY nodeid",
            [project],
        )
    )
    return [
        QuarantineEntry(r["nodeid"], r["mode"], r["reason"], iso(r["since"]) or "", r["who"])
        for r in found
    ]


def history(
    cur: duckdb.DuckDBPyConnection, project: str, nodeid: str | None = None, limit: int = 100
) -> list[Change]:
    """The project's (or one test's) quarantine changes, newest first."""
    where, params = "project = ?", [project]
    if nodeid is not None:
        where += " AND nodeid = ?"
        params.append(nodeid)
    found = rows(
        cur.execute(
            f"SELECT * FROM quarantine_log WHERE {where} ORDER BY changed_at DESC LIMIT ?",
            [*params, limit],
        )
    )
    return [
        Change(
            r["nodeid"], r["action"], r["mode"], r["reason"], r["who"], iso(r["changed_at"]) or ""
        )
        for r in found
    ]


def _log(
    cur: duckdb.DuckDBPyConnection,
    project: str,
    nodeid: str,
    action: str,
    *,
    mode: str,
    reason: str,
    who: str,
) -> None:
    cur.execute(
        "INSERT INTO quarantine_log VALUES (?, ?, ?, ?, ?, ?, ?)",
        [project, nodeid, action, mode, reason, who, _now()],
    ).fetchall()


def add(
    cur: duckdb.DuckDBPyConnection,
    project: str,
    nodeid: str,
    reason: str,
    who: str,
    *,
    mode: str = "manual",
) -> bool:
    """Put a test in quarantine (in the caller's transaction); False if it was already."""
    there = cur.execute(
        "SELECT mode FROM quarantine WHERE project = ? AND nodeid = ?", [project, nodeid]
    ).fetchall()
    if there and not (there[0][0] == "auto" and mode == "manual"):
        return False
    if there:  # a person takes over an automatic quarantine: it no longer ends by itself
        cur.execute(
            "DELETE FROM quarantine WHERE project = ? AND nodeid = ?", [project, nodeid]
        ).fetchall()
    cur.execute(
        "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?)",
        [project, nodeid, mode, reason, _now(), who],
    ).fetchall()
    _log(cur, project, nodeid, "add", mode=mode, reason=reason, who=who)
    return True


def remove(
    cur: duckdb.DuckDBPyConnection, project: str, nodeid: str, reason: str, who: str
) -> bool:
    """Take a test out of quarantine (in the caller's transaction); False if it was not in."""
    there = cur.execute(
        "SELECT mode FROM quarantine WHERE project = ? AND nodeid = ?", [project, nodeid]
    ).fetchall()
    if not there:
        return False
    cur.execute(
        "DELETE FROM quarantine WHERE project = ? AND nodeid = ?", [project, nodeid]
    ).fetchall()
    _log(cur, project, nodeid, "remove", mode=there[0][0], reason=reason, who=who)
    return True


def policy(cur: duckdb.DuckDBPyConnection, project: str) -> Policy:
    found = cur.execute(
        "SELECT auto, release_after FROM quarantine_policy WHERE project = ?", [project]
    ).fetchall()
    if not found:
        return Policy(project)
    return Policy(project, bool(found[0][0]), int(found[0][1]))


def set_policy(cur: duckdb.DuckDBPyConnection, new: Policy) -> None:
    """Set a project's policy (in the caller's transaction)."""
    cur.execute("DELETE FROM quarantine_policy WHERE project = ?", [new.project]).fetchall()
    cur.execute(
        "INSERT INTO quarantine_policy VALUES (?, ?, ?)",
        [new.project, new.auto, new.release_after],
    ).fetchall()


_PASSES_SINCE = """
WITH f AS (
    SELECT r.test_id, r.stored_at, r.outcome IN ('failed', 'error') AS bad
    FROM results r
    WHERE r.test_id IN (SELECT unnest(?::INTEGER[])) AND r.final AND r.subtest IS NULL
      AND r.outcome IN ('passed', 'failed', 'error')
),
last_bad AS (SELECT test_id, max(stored_at) FILTER (WHERE bad) AS at FROM f GROUP BY test_id)
SELECT f.test_id,
       count(*) FILTER (WHERE NOT f.bad AND f.stored_at > coalesce(l.at, TIMESTAMP '1970-01-01'))
FROM f JOIN last_bad l USING (test_id) GROUP BY f.test_id
"""


def keep_up(cur: duckdb.DuckDBPyConnection, *, flaky: dict[str, list[str]]) -> list[str]:
    """Apply the automatic quarantine of every project that turned it on (in the caller's
    transaction): ``flaky`` maps each such project to its flaky tests' node ids, with
    their evidence already judged by the flaky rule. Returns what changed, as sentences."""
    done: list[str] = []
    for project, nodeids in flaky.items():
        rules = policy(cur, project)
        if not rules.auto:
            continue
        current = {e.nodeid: e for e in entries(cur, project)}
        candidates = [n for n in nodeids if n not in current]
        # A test released from quarantine keeps its old failures in the window for a
        # while: it goes back in only if it failed again since.
        settled = _released_without_failing_since(cur, project, candidates)
        for nodeid in candidates:
            if nodeid not in settled and add(
                cur, project, nodeid, "flaky by the flaky rule", AUTOMATIC, mode="auto"
            ):
                done.append(f"{project}: {nodeid} quarantined (flaky)")
        automatic = [e.nodeid for e in current.values() if e.mode == "auto"]
        if not automatic:
            continue
        ids = dict(
            cur.execute(
                "SELECT nodeid, test_id FROM tests WHERE project = ?"
                " AND nodeid IN (SELECT unnest(?::VARCHAR[]))",
                [project, automatic],
            ).fetchall()
        )
        passes = dict(cur.execute(_PASSES_SINCE, [list(ids.values())]).fetchall())
        for nodeid, test_id in ids.items():
            streak = int(passes.get(test_id, 0))
            if streak >= rules.release_after:
                reason = f"passed {streak} times in a row (releases after {rules.release_after})"
                if remove(cur, project, nodeid, reason, AUTOMATIC):
                    done.append(f"{project}: {nodeid} released ({reason})")
    return done


def _released_without_failing_since(
    cur: duckdb.DuckDBPyConnection, project: str, nodeids: list[str]
) -> set[str]:
    if not nodeids:
        return set()
    found = cur.execute(
        """
        WITH released AS (
            SELECT nodeid, max(changed_at) AS at FROM quarantine_log
            WHERE project = ? AND action = 'remove' AND nodeid IN (SELECT unnest(?::VARCHAR[]))
            GROUP BY nodeid
        )
        SELECT l.nodeid FROM released l JOIN tests t ON t.project = ? AND t.nodeid = l.nodeid
        WHERE NOT EXISTS (
            SELECT 1 FROM results r
            WHERE r.test_id = t.test_id AND r.stored_at > l.at AND r.final
              AND r.subtest IS NULL AND r.outcome IN ('failed', 'error'))
        """,
        [project, nodeids, project],
    ).fetchall()
    return {row[0] for row in found}


def flaky_of_auto_projects(cur: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """For each project with the automatic quarantine on: its flaky tests now (over the
    flaky list's default window), for `keep_up`."""
    from datacat_server.queries.flaky import flaky_tests
    from datacat_server.queries.window import recent_runs

    projects = [
        row[0] for row in cur.execute("SELECT project FROM quarantine_policy WHERE auto").fetchall()
    ]
    return {
        project: [
            t.nodeid for t in flaky_tests(cur, recent_runs(cur, project, None, 100), limit=10_000)
        ]
        for project in projects
    }
