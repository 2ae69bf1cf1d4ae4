"""The base of a run: what its failures are classified against and what it is compared
with by default.

The base is the latest earlier run (by when the server received it) of the same project
and branch. For a pull or merge request (the run names a ``base_branch``) it is a run of
the target branch instead: the latest on the merge base (``base_commit``) when there is
one, else the latest before this run (the store knows commits, not their order, so "on
the merge base or older" can only be told apart when the merge base itself ran).
Partial runs (``-k``, ``--lf``) are bases only when there is no full one: a comparison
with them would call most tests new.
"""

from __future__ import annotations

import duckdb

from datacat_server.queries._common import parse_session_id

__all__ = ["base_run", "base_sid"]

_BASE = """
SELECT u.sid FROM runs u, runs me
WHERE me.sid = $sid AND u.project = me.project
  AND u.branch = coalesce(nullif(me.base_branch, ''), me.branch)
  AND (u.received_at < me.received_at OR (u.received_at = me.received_at AND u.sid < me.sid))
ORDER BY (coalesce(me.base_branch, '') <> '' AND coalesce(me.base_commit, '') <> ''
          AND u."commit" = me.base_commit) DESC,
         u.partial, u.received_at DESC, u.sid DESC
LIMIT 1
"""


def base_sid(cur: duckdb.DuckDBPyConnection, sid: int) -> int | None:
    """The serial of the base of the run with serial ``sid``, or None: it has none."""
    found = cur.execute(_BASE, {"sid": sid}).fetchall()
    return int(found[0][0]) if found else None


def base_run(cur: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The id of the base of run ``run_id``, or None: it has none, or is no run."""
    key = parse_session_id(run_id)
    if key is None:
        return None
    found = cur.execute(
        "SELECT u.sid FROM runs u JOIN sessions s USING (sid) WHERE s.id = CAST(? AS UUID)",
        [key],
    ).fetchall()
    base = base_sid(cur, int(found[0][0])) if found else None
    if base is None:
        return None
    return str(
        cur.execute("SELECT id::VARCHAR FROM sessions WHERE sid = ?", [base]).fetchall()[0][0]
    )
