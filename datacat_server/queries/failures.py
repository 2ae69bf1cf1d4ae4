"""Failure clusters: failures grouped by exception type and normalised message.

Messages differ in details that do not matter for "is this the same failure": numbers,
addresses, ids, and above all paths: a test's ``tmp_path`` holds its name and pytest's
run number (``/tmp/pytest-of-ci/pytest-12/test_upload0/data.json``), a
``tempfile.mkdtemp()`` directory is random (``/tmp/tmpab12_cd3``), a checkout lives
somewhere else on every machine. `normalize_message_sql` folds them, in this order:

1. UUIDs → ``<uuid>``;
2. object reprs lose their address (``<Foo object at 0x7f…>`` → ``<Foo object>``);
3. hex numbers (``0x…``) and runs of 32 or more hex digits (digests) → ``<hex>``;
4. temporary directories, with everything before them (``/tmp/``, ``C:\\…\\Temp\\``):
   pytest's base temp and the test's directory in it (``…/pytest-of-USER/pytest-N/NAME``)
   and ``tempfile`` names (``tmp`` and 8 characters) → ``<tmp>``, and what follows them
   down to the file name (``<tmp>/data.json``);
5. other paths, absolute (``/a/b``, ``~/a``, ``C:\\a``, ``\\\\server\\share``, with
   single or escaped backslashes) or relative (``./a``, ``../a``, ``a/b/c``, ``a/b.ext``),
   quoted or not → ``<path>/`` and their last part, which names the file: a missing
   ``data.json`` and a missing ``config.yaml`` stay apart. URLs keep their path;
6. numbers → ``<n>`` (line numbers, ports, counts, the digits of ``test_x0``).

So six tests failing on the same missing file in their own ``tmp_path`` are one
cluster, on every machine and in every run. Messages are normalised when read (each
distinct message once); the signature is cut at 300 characters.
"""

from __future__ import annotations

import duckdb
import msgspec

from datacat_server.queries._common import iso, rows
from datacat_server.queries.window import Window

__all__ = ["TREND_POINTS", "FailureCluster", "failure_clusters", "normalize_message_sql"]

#: A cluster's trend has a point per run of the window, or per group of runs when the
#: window has more runs than this.
TREND_POINTS = 100

_PART = r"[\w.@+~-]"  # the characters of a path's part
_SEP = r"(?:/|\\{1,2})"  # a slash, a backslash or an escaped backslash (a repr's)
_BEFORE = r"(^|[^\w.~\\/<>-])"  # what may come before a path (kept: RE2 has no lookbehind)
_DRIVE = r"(?:\b[A-Za-z]:)?"
_TEMP_PREFIX = _DRIVE + r"[\w.~\\/-]*?[\\/]"

#: (pattern, replacement) in the order they apply; RE2 syntax (DuckDB's regexes).
RULES: tuple[tuple[str, str], ...] = (
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<uuid>"),
    (r" at 0x[0-9a-fA-F]+>", ">"),
    (r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{32,}\b", "<hex>"),
    (
        _TEMP_PREFIX + r"pytest-of-[\w.-]+[\\/]+pytest-(?:\d+|current)(?:[\\/]+[\w.-]+)?",
        "<tmp>",
    ),
    (_TEMP_PREFIX + r"tmp[a-z0-9_]{8}\b", "<tmp>"),
    (rf"<tmp>(?:{_SEP}{_PART}+)*{_SEP}({_PART}+)", r"<tmp>/\1"),
    (rf"{_BEFORE}(?:\b[A-Za-z]:|~)?(?:{_SEP}{_PART}+)*{_SEP}({_PART}+)", r"\1<path>/\2"),
    (rf"{_BEFORE}\.{{1,2}}(?:{_SEP}{_PART}+)*{_SEP}({_PART}+)", r"\1<path>/\2"),
    (rf"{_BEFORE}(?:{_PART}+{_SEP}){{2,}}({_PART}+)", r"\1<path>/\2"),
    (rf"{_BEFORE}{_PART}+{_SEP}({_PART}*\.[A-Za-z]\w*)\b", r"\1<path>/\2"),
    (r"\d+", "<n>"),
)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def normalize_message_sql(column: str) -> str:
    """SQL folding the variable parts of a message in ``column`` (`RULES`)."""
    folded = f"coalesce({column}, '')"
    for pattern, replacement in RULES:
        folded = f"regexp_replace({folded}, {_literal(pattern)}, {_literal(replacement)}, 'g')"
    return f"left({folded}, 300)"


class FailureCluster(msgspec.Struct):
    exc_type: str
    #: The message with numbers, addresses, ids and paths folded.
    signature: str
    count: int
    #: How many different tests failed this way, and up to ten of them.
    test_count: int
    tests: list[str]
    #: The first and the last time it happened in the window, and their runs.
    first_seen: str | None
    last_seen: str | None
    first_run: str | None
    #: One real message of the cluster (the latest), and the run it came from.
    example: str
    example_run: str | None
    #: How many times it happened in each run of the window, oldest first; when the
    #: window has more than `TREND_POINTS` runs, in each group of ``trend_runs`` runs.
    trend: list[int]
    trend_runs: int


_SQL = """
WITH f AS MATERIALIZED (
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
-- each distinct message is normalised once
m AS (SELECT message, {signature} AS signature FROM (SELECT DISTINCT message FROM f)),
g AS MATERIALIZED (SELECT f.*, m.signature FROM f JOIN m USING (message)),
c AS (
    SELECT exc_type, signature, count(*) AS n,
           count(DISTINCT test_id) AS test_count,
           list(DISTINCT test_id)[1:10] AS test_ids,
           min(happened) AS first_seen, max(happened) AS last_seen,
           arg_min(sid, happened) AS first_sid,
           arg_max(message, happened) AS example, arg_max(sid, happened) AS example_sid
    FROM g GROUP BY ALL
    ORDER BY n DESC, exc_type, signature
    LIMIT ?
),
per_run AS (
    SELECT exc_type, signature, list(sid ORDER BY sid) AS sids, list(n ORDER BY sid) AS ns
    FROM (
        SELECT exc_type, signature, sid, count(*) AS n
        FROM g SEMI JOIN c USING (exc_type, signature) GROUP BY ALL
    ) GROUP BY ALL
)
SELECT c.exc_type, c.signature, c.n AS count, c.test_count,
       (SELECT list(t.nodeid ORDER BY t.nodeid) FROM tests t
        WHERE t.test_id IN (SELECT unnest(c.test_ids))) AS tests,
       c.first_seen, c.last_seen, s1.id::VARCHAR AS first_run, c.example,
       s.id::VARCHAR AS example_run, p.sids, p.ns
FROM c JOIN per_run p USING (exc_type, signature)
LEFT JOIN sessions s ON s.sid = c.example_sid
LEFT JOIN sessions s1 ON s1.sid = c.first_sid
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
    oldest_first = window.sids[::-1]
    per_point = -(-len(oldest_first) // TREND_POINTS)  # ceiling
    position = {sid: i // per_point for i, sid in enumerate(oldest_first)}
    points = -(-len(oldest_first) // per_point)
    clusters = []
    for row in rows(cur.execute(sql, [*params, limit])):
        trend = [0] * points
        for sid, n in zip(row["sids"], row["ns"], strict=True):
            trend[position[sid]] += n
        clusters.append(
            FailureCluster(
                exc_type=row["exc_type"],
                signature=row["signature"],
                count=row["count"],
                test_count=row["test_count"],
                tests=list(row["tests"] or []),
                first_seen=iso(row["first_seen"]),
                last_seen=iso(row["last_seen"]),
                first_run=row["first_run"],
                example=row["example"],
                example_run=row["example_run"],
                trend=trend,
                trend_runs=per_point,
            )
        )
    return clusters
