"""Per-test rollups: what insights over the whole history read instead of every result.

An insight looks at each test's **stream**: its final results (a rerun's last attempt;
subtests apart) on one branch, in the order they were stored (`results.stored_at`,
then session and sequence number). Everything the flaky, failing-since and slow
insights need from a stream folds: counts add up; flips, failure episodes and the
failing streak join at the seam between two stretches of a stream (`merge_sql`);
durations go into a histogram (`duration_buckets`); the commits on which a test both
passed and failed are counted once each (`same_commit_delta_sql`).

The rollups hold every result stored up to ``rollup_state.folded_until`` (the
watermark); results stored later (the *tail*) are aggregated when read and merged in,
so an answer is exact at every moment. `fold` moves the watermark: it runs in a
thread of its own, on its own cursor, without holding up the writer (its transaction
only writes the rollup tables; the writer, which only appends results, commits its
transactions with a ``stored_at`` above anything visible to it). Deleting results
(retention) resets the watermark, and the next fold rebuilds from the start.

Measured before choosing this (DuckDB 2.0.1, 10M results): maintaining the rollups by
UPDATE inside each ingest transaction cost about four times the append itself; folding
a tail of ~50,000 results takes tens of milliseconds, off the ingest path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable

import duckdb

from datacat_server.errors import StoreError
from datacat_server.store.transactions import transaction

__all__ = [
    "BUCKET_RATIO",
    "FoldResult",
    "Folder",
    "bucket_value_sql",
    "delta_sids_sql",
    "durations_sql",
    "finals_sql",
    "fold",
    "folding",
    "merge_sql",
    "reset",
    "same_commit_delta_sql",
    "stream_sql",
    "watermark",
]

log = logging.getLogger("datacat.rollups")

#: Durations are counted in buckets of this ratio: quantiles read from them are within
#: half a step (2.5 %) of the exact ones.
BUCKET_RATIO = 1.05
_EPOCH = dt.datetime(1970, 1, 1)


def bucket_sql(column: str) -> str:
    return f"CAST(round(ln(greatest({column}, 1e-6)) / ln({BUCKET_RATIO})) AS SMALLINT)"


def bucket_value_sql(column: str) -> str:
    """A bucket's representative duration, in seconds."""
    return f"pow({BUCKET_RATIO}, {column})"


def finals_sql(where: str) -> str:
    """The rows of every stream: final results that are not subtests (``r``), with the
    branch and commit of their run (``u``), filtered by ``where``."""
    return f"""
    SELECT r.test_id, coalesce(u.branch, '') AS branch, r.sid, r.seq, r.stored_at,
           coalesce(u."commit", '') AS "commit", r.attempt, r.duration,
           r.outcome IN ('failed', 'error') AS bad,
           r.outcome IN ('passed', 'failed', 'error') AS decided
    FROM results r JOIN runs u USING (sid)
    WHERE r.final AND r.subtest IS NULL AND ({where})
    """


def stream_sql(finals: str) -> str:
    """Per test and branch, the stream aggregates over the rows of the CTE ``finals``.

    Order-dependent aggregates (flips, episodes, the streak) need a window over each
    stream; only streams with a failure can have any, so only they are ordered.
    """
    return f"""
    d AS (SELECT * FROM {finals} WHERE decided),
    cheap AS (
        SELECT test_id, branch, count(*) AS runs, count_if(bad) AS failures,
               count_if(NOT bad AND attempt > 0) AS flaky_in_run, max(stored_at) AS last_at
        FROM d GROUP BY test_id, branch
    ),
    ordered AS (
        SELECT d.*, lag(bad) OVER w AS prev, row_number() OVER w AS rn
        FROM d SEMI JOIN (SELECT test_id, branch FROM cheap WHERE failures > 0) c
             USING (test_id, branch)
        WINDOW w AS (PARTITION BY test_id, branch ORDER BY stored_at, sid, seq)
    ),
    costly AS (
        SELECT test_id, branch,
               count_if(bad <> prev) AS flips,
               count_if(bad AND coalesce(NOT prev, true)) AS episodes,
               arg_min(bad, rn) AS first_bad, arg_max(bad, rn) AS last_bad,
               count(*) - coalesce(max(rn) FILTER (WHERE NOT bad), 0) AS streak,
               arg_max(sid, rn) FILTER (WHERE bad AND coalesce(NOT prev, true)) AS episode_sid,
               arg_max(sid, stored_at) FILTER (WHERE bad) AS last_failure_sid,
               max(stored_at) FILTER (WHERE bad) AS last_failure_at,
               list_reverse_sort(list_distinct(list(sid) FILTER (WHERE bad)))[1:5]
                 AS failing_sids
        FROM ordered GROUP BY test_id, branch
    ),
    timing AS (
        SELECT test_id, branch, count(*) AS timed, sum(duration) AS total,
               max(duration) AS longest
        FROM {finals} GROUP BY test_id, branch
    ),
    stream AS (
        SELECT coalesce(c.test_id, t.test_id) AS test_id, coalesce(c.branch, t.branch) AS branch,
               coalesce(c.runs, 0) AS runs, coalesce(c.failures, 0) AS failures,
               coalesce(x.flips, 0) AS flips, coalesce(x.episodes, 0) AS episodes,
               coalesce(x.first_bad, false) AS first_bad, coalesce(x.last_bad, false) AS last_bad,
               coalesce(x.streak, 0) AS streak,
               CASE WHEN x.last_bad THEN x.episode_sid END AS streak_sid,
               coalesce(c.flaky_in_run, 0) AS flaky_in_run,
               x.last_failure_sid, x.last_failure_at, c.last_at,
               coalesce(x.failing_sids, []::INTEGER[]) AS failing_sids,
               coalesce(t.timed, 0) AS timed, coalesce(t.total, 0) AS total,
               coalesce(t.longest, 0) AS longest
        FROM cheap c LEFT JOIN costly x USING (test_id, branch)
             FULL OUTER JOIN timing t USING (test_id, branch)
    )"""


def same_commit_sql(finals: str) -> str:
    """Per test and branch: commits (non-empty) on which it both passed and failed."""
    return f"""
    SELECT test_id, branch, count(*) AS same_commit FROM (
        SELECT test_id, branch, "commit" FROM {finals}
        WHERE decided AND "commit" <> ''
        GROUP BY test_id, branch, "commit" HAVING bool_or(bad) AND bool_or(NOT bad)
    ) GROUP BY test_id, branch"""


def same_commit_delta_sql(
    after: str, until: str | None = None, sids: list[int] | None = None
) -> str:
    """Per test and branch: commits on which it both passed and failed counting the
    results stored up to ``until`` (all, if None), but not counting only those stored
    up to ``after`` (the watermark). The commits looked at are those of the results in
    between; their runs' results are read by session. ``sids``: those runs, known
    beforehand (`delta_sids_sql`), which lets a lake skip every other run's files."""
    upto = "" if until is None else f" AND r.stored_at <= {until}"
    if sids is not None:
        upto += f" AND r.sid IN ({', '.join(str(int(sid)) for sid in sids) or 'NULL'})"
    return f"""
    WITH touched AS (
        SELECT DISTINCT coalesce(u.branch, '') AS branch, u."commit"
        FROM results r JOIN runs u USING (sid)
        WHERE r.stored_at > {after}{upto} AND u."commit" <> ''
    ),
    their_runs AS (
        SELECT u.sid, coalesce(u.branch, '') AS branch, u."commit" FROM runs u
        JOIN touched t ON coalesce(u.branch, '') = t.branch AND u."commit" = t."commit"
    ),
    flags AS (
        SELECT r.test_id, t.branch, t."commit",
               bool_or(r.outcome IN ('failed', 'error')) AS bad_now,
               bool_or(r.outcome = 'passed') AS good_now,
               coalesce(bool_or(r.outcome IN ('failed', 'error'))
                        FILTER (WHERE r.stored_at <= {after}), false) AS bad_then,
               coalesce(bool_or(r.outcome = 'passed')
                        FILTER (WHERE r.stored_at <= {after}), false) AS good_then
        FROM results r JOIN their_runs t USING (sid)
        WHERE r.final AND r.subtest IS NULL AND r.outcome IN ('passed', 'failed', 'error'){upto}
        GROUP BY r.test_id, t.branch, t."commit"
    )
    SELECT test_id, branch, count(*) AS same_commit FROM flags
    WHERE bad_now AND good_now AND NOT (bad_then AND good_then)
    GROUP BY test_id, branch"""


def delta_sids_sql(after: str) -> str:
    """The runs whose results `same_commit_delta_sql` reads: those on the commits of
    the results stored after ``after``."""
    return f"""
    SELECT DISTINCT u.sid FROM runs u JOIN (
        SELECT DISTINCT coalesce(u.branch, '') AS branch, u."commit"
        FROM results r JOIN runs u USING (sid)
        WHERE r.stored_at > {after} AND u."commit" <> ''
    ) t ON coalesce(u.branch, '') = t.branch AND u."commit" = t."commit"
    """


def merge_sql(old: str, new: str, delta: str) -> str:
    """Two stretches of every stream joined: ``old`` (the rollups) then ``new`` (a later
    stretch, as `stream_sql` makes it), and the ``delta`` of same-commit evidence."""
    return f"""
    SELECT coalesce(o.test_id, n.test_id) AS test_id, coalesce(o.branch, n.branch) AS branch,
           coalesce(o.runs, 0) + coalesce(n.runs, 0) AS runs,
           coalesce(o.failures, 0) + coalesce(n.failures, 0) AS failures,
           coalesce(o.flips, 0) + coalesce(n.flips, 0)
             + coalesce((o.runs > 0 AND n.runs > 0 AND o.last_bad <> n.first_bad)::INTEGER, 0)
             AS flips,
           coalesce(o.episodes, 0) + coalesce(n.episodes, 0)
             - coalesce((o.runs > 0 AND n.runs > 0 AND o.last_bad AND n.first_bad)::INTEGER, 0)
             AS episodes,
           CASE WHEN coalesce(o.runs, 0) > 0 THEN o.first_bad
                ELSE coalesce(n.first_bad, false) END AS first_bad,
           CASE WHEN coalesce(n.runs, 0) > 0 THEN n.last_bad
                ELSE coalesce(o.last_bad, false) END AS last_bad,
           CASE WHEN coalesce(n.runs, 0) = 0 THEN coalesce(o.streak, 0)
                WHEN n.failures = n.runs THEN coalesce(o.streak, 0) + n.runs
                ELSE n.streak END AS streak,
           CASE WHEN coalesce(n.runs, 0) = 0 THEN o.streak_sid
                WHEN n.failures = n.runs AND coalesce(o.streak, 0) > 0 THEN o.streak_sid
                ELSE n.streak_sid END AS streak_sid,
           coalesce(o.flaky_in_run, 0) + coalesce(n.flaky_in_run, 0) AS flaky_in_run,
           coalesce(o.same_commit, 0) + coalesce(s.same_commit, 0) AS same_commit,
           CASE WHEN n.last_failure_at IS NOT NULL THEN n.last_failure_sid
                ELSE o.last_failure_sid END AS last_failure_sid,
           coalesce(n.last_failure_at, o.last_failure_at) AS last_failure_at,
           greatest(o.last_at, n.last_at) AS last_at,
           list_reverse_sort(list_distinct(
               list_concat(coalesce(n.failing_sids, []::INTEGER[]),
                           coalesce(o.failing_sids, []::INTEGER[]))))[1:5] AS failing_sids,
           coalesce(o.timed, 0) + coalesce(n.timed, 0) AS timed,
           coalesce(o.total, 0) + coalesce(n.total, 0) AS total,
           greatest(coalesce(o.longest, 0), coalesce(n.longest, 0)) AS longest
    FROM {old} o FULL OUTER JOIN {new} n USING (test_id, branch)
         LEFT JOIN {delta} s ON s.test_id = coalesce(o.test_id, n.test_id)
                            AND s.branch = coalesce(o.branch, n.branch)"""


def durations_sql(finals: str) -> str:
    """Per test, branch and bucket: how many durations fall in it."""
    return f"""
    SELECT test_id, branch, {bucket_sql("duration")} AS bucket, count(*) AS n
    FROM {finals} GROUP BY ALL"""


# -- folding ----------------------------------------------------------------------------


def watermark(cur: duckdb.DuckDBPyConnection) -> dt.datetime:
    """How far the rollups have folded (the epoch before the first fold)."""
    rows = cur.execute("SELECT folded_until FROM rollup_state").fetchall()
    if len(rows) != 1:
        raise StoreError(f"rollup_state holds {len(rows)} rows, not one")
    value: dt.datetime = rows[0][0]
    return value


class FoldResult:
    """What one fold did: results folded in, the new watermark, and whether results
    stored later remain (a fold bounded by ``max_rows``)."""

    __slots__ = ("folded", "more", "until")

    def __init__(self, folded: int, until: dt.datetime, more: bool) -> None:
        self.folded = folded
        self.until = until
        self.more = more


#: Folds of one process take turns (a concurrent fold of the same tail would fail at
#: commit anyway, see `fold_in_transaction`: this saves the work); retention holds it
#: too while it deletes results and resets the rollups.
folding = threading.Lock()


def fold(
    cur: duckdb.DuckDBPyConnection,
    *,
    max_rows: int | None = None,
    before: dt.datetime | None = None,
) -> FoldResult:
    """Fold the results stored after the watermark into the rollups, in one transaction.

    ``max_rows`` bounds one fold (the oldest stored results first), so that a rebuild
    of a big store proceeds in steps that each commit. ``before`` leaves out results
    stored at or after it (a lake: another server may still commit results stamped
    a little earlier than what is visible now).
    """
    with folding, transaction(cur):
        return fold_in_transaction(cur, max_rows=max_rows, before=before)


def fold_in_transaction(
    cur: duckdb.DuckDBPyConnection,
    *,
    max_rows: int | None = None,
    before: dt.datetime | None = None,
) -> FoldResult:
    """`fold`, in the caller's transaction (a migration's)."""
    old = watermark(cur)
    until, folded, more = _fold_until(cur, old, max_rows, before)
    if until is None:
        return FoldResult(0, old, False)
    params = {"old": old, "until": until}
    finals = finals_sql("r.stored_at > $old AND r.stored_at <= $until")
    steps = (
        f"CREATE TEMP TABLE _tail AS WITH f AS ({finals}), {stream_sql('f')} SELECT * FROM stream",
        f"CREATE TEMP TABLE _delta AS {same_commit_delta_sql('$old', '$until')}",
        "CREATE TEMP TABLE _keys AS SELECT test_id, branch FROM _tail"
        " UNION SELECT test_id, branch FROM _delta",
        f"CREATE TEMP TABLE _merged AS SELECT m.* FROM"
        f" ({merge_sql('test_rollups', '_tail', '_delta')}) m"
        " SEMI JOIN _keys USING (test_id, branch)",
        "DELETE FROM test_rollups USING _keys k"
        " WHERE test_rollups.test_id = k.test_id AND test_rollups.branch = k.branch",
        "INSERT INTO test_rollups BY NAME SELECT * FROM _merged",
        f"CREATE TEMP TABLE _buckets AS WITH f AS ({finals}), fresh AS ({durations_sql('f')})"
        " SELECT test_id, branch, bucket, sum(n) AS n FROM ("
        "   SELECT b.* FROM duration_buckets b SEMI JOIN fresh USING (test_id, branch)"
        "   UNION ALL SELECT * FROM fresh)"
        " GROUP BY ALL",
        "DELETE FROM duration_buckets USING (SELECT DISTINCT test_id, branch FROM _buckets) k"
        " WHERE duration_buckets.test_id = k.test_id AND duration_buckets.branch = k.branch",
        "INSERT INTO duration_buckets BY NAME SELECT * FROM _buckets",
        "DELETE FROM rollup_state",
        "INSERT INTO rollup_state VALUES ($until)",
    )
    try:
        for sql in steps:
            cur.execute(sql, {k: v for k, v in params.items() if f"${k}" in sql}).fetchall()
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction drops them itself
            for name in ("_tail", "_delta", "_keys", "_merged", "_buckets"):
                cur.execute(f"DROP TABLE IF EXISTS {name}")
    return FoldResult(folded, until, more)


def _fold_until(
    cur: duckdb.DuckDBPyConnection,
    old: dt.datetime,
    max_rows: int | None,
    before: dt.datetime | None = None,
) -> tuple[dt.datetime | None, int, bool]:
    """The newest stored_at to fold up to (None: nothing new), how many results that
    takes in, and whether newer ones remain. Whole transactions only: all the rows of
    one share their stored_at."""
    rows = cur.execute(
        """
        WITH g AS (SELECT stored_at, count(*) AS n FROM results
                   WHERE stored_at > $old AND stored_at < $before GROUP BY stored_at),
             c AS (SELECT stored_at, sum(n) OVER (ORDER BY stored_at) AS cum FROM g)
        SELECT (SELECT min(stored_at) FROM c WHERE cum >= $most),
               (SELECT min(cum) FROM c WHERE cum >= $most),
               (SELECT max(stored_at) FROM g), (SELECT sum(n) FROM g)
        """,
        {
            "old": old,
            "most": max_rows if max_rows is not None else 2**62,
            "before": before or dt.datetime(9999, 1, 1),
        },
    ).fetchall()
    cut, taken, newest, total = rows[0]
    if newest is None:
        return None, 0, False
    if cut is None:
        return newest, int(total), False
    return cut, int(taken), bool(cut < newest)


def reset(cur: duckdb.DuckDBPyConnection) -> None:
    """Forget the rollups (after results were deleted): the next folds rebuild them.
    Runs in the caller's transaction."""
    for table in ("test_rollups", "duration_buckets"):
        cur.execute(f"DELETE FROM {table}").fetchall()
    cur.execute("UPDATE rollup_state SET folded_until = ?", [_EPOCH]).fetchall()


class Folder:
    """Folds the tail into the rollups in a background thread, on its own cursor.

    It folds when the tail holds ``rows`` results or is ``seconds`` old; ``wake`` asks
    for a fold at once (tests, and after a reset). ``enabled`` says whether this
    process folds now (on a lake, the server leading its background work), and
    ``lag`` keeps the results stored within the last so many seconds in the tail (a
    lake's servers stamp ``stored_at`` before their commit, so one may still commit
    rows stamped earlier than the newest visible ones).
    """

    def __init__(
        self,
        new_cursor: object,
        *,
        rows: int = 50_000,
        seconds: float = 10.0,
        step_rows: int = 1_000_000,
        enabled: Callable[[], bool] | None = None,
        lag: float = 0.0,
    ) -> None:
        self._new_cursor = new_cursor
        self._enabled = enabled
        self._lag = lag
        self._rows = rows
        self._seconds = seconds
        self._step_rows = step_rows
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="datacat-rollups", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._seconds)
            woken = self._wake.is_set()
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._enabled is not None and not self._enabled():
                continue
            try:
                # A cursor per round: the database may have been opened again since.
                cur: duckdb.DuckDBPyConnection = self._new_cursor()  # type: ignore[operator]
            except Exception as exc:
                log.info("rollups not folded this time: %s", exc)
                continue
            try:
                if woken or self._tail_due(cur):
                    while (
                        fold(cur, max_rows=self._step_rows, before=self._before()).more
                        and not self._stop.is_set()
                    ):
                        pass
            except duckdb.Error as exc:
                # A conflict with the writer's retention, or a failed store: next time.
                log.info("rollups not folded this time: %s", exc)
            except Exception:
                log.exception("folding rollups failed")
            finally:
                with contextlib.suppress(duckdb.Error):
                    cur.close()

    def _before(self) -> dt.datetime | None:
        if not self._lag:
            return None
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return now - dt.timedelta(seconds=self._lag)

    def _tail_due(self, cur: duckdb.DuckDBPyConnection) -> bool:
        rows = cur.execute(
            "SELECT count(*), min(stored_at) FROM results WHERE stored_at > ?",
            [watermark(cur)],
        ).fetchall()
        count, oldest = rows[0]
        if not count:
            return False
        age = (dt.datetime.now(dt.UTC).replace(tzinfo=None) - oldest).total_seconds()
        return bool(count >= self._rows or age >= self._seconds)
