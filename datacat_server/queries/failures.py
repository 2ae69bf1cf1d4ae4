"""Failure clusters: failures grouped by exception type and normalised message.

Messages differ in the details that do not matter for "is this the same failure":
numbers, hex addresses, UUIDs, quoted temporary paths. Folding those (``<n>``,
``<hex>``, ``<uuid>``) groups ``timed out after 3s`` with ``timed out after 30s``.
"""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso
from datacat_server.queries.window import Window

__all__ = ["FailureCluster", "failure_clusters", "normalize_message_sql"]


def normalize_message_sql(column: str) -> str:
    """SQL folding the variable parts of a message in ``column``."""
    uuid = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    folded = f"regexp_replace(coalesce({column}, ''), '{uuid}', '<uuid>', 'g')"
    folded = f"regexp_replace({folded}, '0x[0-9a-fA-F]+', '<hex>', 'g')"
    folded = f"regexp_replace({folded}, '\\d+', '<n>', 'g')"
    return f"left({folded}, 300)"


class FailureCluster(msgspec.Struct):
    exc_type: str
    #: The message with numbers, addresses and ids folded.
    signature: str
    count: int
    #: How many different tests failed this way, and up to ten of them.
    test_count: int
    tests: list[str]
    first_seen: str | None
    last_seen: str | None
    #: One real message of the cluster, and the run it came from.
    example: str
    example_run: str | None


_SQL = """
WITH f AS (
    SELECT r.sid, r.test_id, coalesce(r.stopped_at, r.started_at, r.stored_at) AS happened,
           coalesce(d.exc_type, '(no exception)') AS exc_type,
           coalesce(d.exc_message, '') AS message
    FROM results r JOIN result_details d USING (sid, seq)
    WHERE {window} AND r.outcome IN ('failed', 'error')
      -- a test that failed only through its subtests: they are clustered themselves
      AND NOT (d.exc_type IS NULL AND r.subtest IS NULL AND EXISTS (
          SELECT 1 FROM results s
          WHERE s.sid = r.sid AND s.test_id = r.test_id AND s.subtest IS NOT NULL
            AND s.outcome IN ('failed', 'error')))
),
c AS (
    SELECT exc_type, {signature} AS signature, count(*) AS n,
           count(DISTINCT test_id) AS test_count,
           list(DISTINCT test_id)[1:10] AS test_ids,
           min(happened) AS first_seen, max(happened) AS last_seen,
           arg_max(message, happened) AS example, arg_max(sid, happened) AS example_sid
    FROM f GROUP BY ALL
    ORDER BY n DESC, exc_type, signature
    LIMIT ?
)
SELECT c.exc_type, c.signature, c.n, c.test_count,
       (SELECT list(t.nodeid ORDER BY t.nodeid) FROM tests t
        WHERE t.test_id IN (SELECT unnest(c.test_ids))),
       c.first_seen, c.last_seen, c.example, s.id::VARCHAR
FROM c LEFT JOIN sessions s ON s.sid = c.example_sid
ORDER BY c.n DESC, c.exc_type, c.signature
"""


def failure_clusters(
    cur: duckdb.DuckDBPyConnection, window: Window, *, limit: int = 50
) -> list[FailureCluster]:
    """The biggest groups of alike failures in a window, biggest first."""
    if window.empty:
        return []
    where, params = window.where()
    sql = _SQL.replace("{window}", where).replace("{signature}", normalize_message_sql("message"))
    return [
        FailureCluster(
            exc_type=row[0],
            signature=row[1],
            count=row[2],
            test_count=row[3],
            tests=list(row[4] or []),
            first_seen=iso(row[5]),
            last_seen=iso(row[6]),
            example=row[7],
            example_run=row[8],
        )
        for row in cur.execute(sql, [*params, limit]).fetchall()
    ]
