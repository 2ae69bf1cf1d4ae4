"""The one writer: every write to DuckDB goes through this thread.

Requests (a list of wire records each) wait in a bounded queue. The thread takes what
has queued up, stages it (`staging.py`), and writes it in one transaction (group commit:
one ``fsync`` for many requests); only then does it resolve each request's future, so
an answer of 2xx means "committed". If the group fails, each request is retried alone,
so one bad request cannot fail its neighbours.

Exactly once: records carry ``(session, seq)``; the writer keeps, per session, the set
of sequence numbers it has applied (`SeqSet`), rebuilt from the stored rows when a
session is first touched after a restart. A retried batch finds its numbers there.

Soft fields (last seen, tests in progress, updated at) change with every batch; they
are persisted at most every ``soft_flush_interval`` seconds instead of with every
commit, which would cost an UPDATE per batch. A server crash loses at most that much
of them; records themselves are never soft.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import duckdb
import msgspec
import pyarrow as pa

from datacat_client import wire
from datacat_server.errors import DiskFullError, StoreError, StoreFailedError, WriterBusyError
from datacat_server.store import build, tables
from datacat_server.store.database import Database
from datacat_server.store.health import StoreHealth, classify
from datacat_server.store.merge import deep_merge
from datacat_server.store.seqset import SeqSet
from datacat_server.store.staging import (
    HUNG,
    RECOVERED,
    RequestRejected,
    ResultBlock,
    SessionEntry,
    Staging,
    WriteResult,
)
from datacat_server.store.transactions import transaction

__all__ = ["WriteResult", "Writer"]

log = logging.getLogger("datacat.writer")

#: Seconds between attempts to open an invalidated database again.
REOPEN_INTERVAL = 2.0

_decode = msgspec.json.decode


@dataclasses.dataclass(slots=True)
class _Task:
    """Maintenance (retention) run by the writer thread, in a transaction of its own."""

    fn: Callable[[duckdb.DuckDBPyConnection], Any]
    future: concurrent.futures.Future[Any]
    transaction: bool = True


@dataclasses.dataclass(slots=True)
class _Request:
    records: Sequence[wire.Record]
    #: False for the seed's one-record endpoints: no sequence numbers, no deduplication.
    dedupe: bool
    future: concurrent.futures.Future[WriteResult]
    #: Test results sent as columns (`wire.ResultColumns`), applied after ``records``.
    result_columns: Sequence[Any] = ()

    @property
    def size(self) -> int:
        return len(self.records) + sum(len(block.seq) for block in self.result_columns)


class Writer:
    """Owns all writes. `submit` from any thread; `start` and `stop` from the owner.

    Session ids in submitted records must be canonical (lower-case, dashed UUIDs): the
    API normalises them before submitting.
    """

    #: Where a batch's new sessions, new tests and runs' starts go (the lake store
    #: appends them to tables of its own).
    SESSIONS: ClassVar[tables.Table] = tables.SESSIONS
    TESTS: ClassVar[tables.Table] = tables.TESTS
    RUN_STARTS: ClassVar[tables.Table] = tables.RUNS

    def __init__(
        self,
        db: Database,
        *,
        soft_flush_interval: float = 0.5,
        max_pending: int = 512,
        max_group_records: int = 50_000,
        session_cache_size: int = 10_000,
        test_cache_size: int = 1_000_000,
        clock: Callable[[], float] = time.time,
        health: StoreHealth | None = None,
    ) -> None:
        self._db = db
        #: Whether the store works; the API reads it (`/health`, error answers).
        self.health = health or StoreHealth()
        self._last_reopen = -math.inf
        #: The server's clock (Unix seconds): when records are received and stored.
        self._clock = clock
        self._cur = db.new_cursor()
        self._queue: queue.Queue[_Request | _Task | None] = queue.Queue(maxsize=max_pending)
        self._soft_flush_interval = soft_flush_interval
        self._max_group_records = max_group_records
        self._sessions: collections.OrderedDict[str, SessionEntry] = collections.OrderedDict()
        self._session_cache_size = session_cache_size
        self._soft_dirty: set[str] = set()
        self._last_soft_flush = time.monotonic()
        self._test_ids: dict[tuple[str, str], int] = {}
        self._test_cache_size = test_cache_size
        self._next_sid = self._scalar("SELECT coalesce(max(sid), 0) + 1 FROM sessions")
        self._next_test_id = self._scalar("SELECT coalesce(max(test_id), 0) + 1 FROM tests")
        #: The last transaction's `results.stored_at`, in microseconds: each one later.
        self._stored_at = self._scalar("SELECT coalesce(max(epoch_us(stored_at)), 0) FROM results")
        self._thread = threading.Thread(target=self._run, name="datacat-writer", daemon=True)
        self._stopped = False
        #: Called after each commit of records with (test results stored, seconds the
        #: transaction took), in the writer's thread; must be quick (`telemetry.py`).
        self.observer: Callable[[int, float], None] | None = None

    # -- owner API ---------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, persist soft fields, and end the thread."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def submit(
        self,
        records: Sequence[wire.Record],
        *,
        dedupe: bool = True,
        result_columns: Sequence[Any] = (),
    ) -> concurrent.futures.Future[WriteResult]:
        """Queue records (and results as `wire.ResultColumns`) for the next transaction.
        The future resolves after commit."""
        future: concurrent.futures.Future[WriteResult] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(StoreError("the server is shutting down"))
            return future
        try:
            self._queue.put_nowait(_Request(records, dedupe, future, result_columns))
        except queue.Full:
            future.set_exception(WriterBusyError("too many writes are waiting; retry shortly"))
        return future

    def maintain(
        self, fn: Callable[[duckdb.DuckDBPyConnection], Any], *, transaction: bool = True
    ) -> concurrent.futures.Future[Any]:
        """Run ``fn(cursor)`` in the writer thread, between batches (in one transaction,
        unless ``transaction`` is False: a checkpoint cannot run in one).

        Meant for changes that are not records (deleting old data): afterwards the
        writer forgets what it knew of sessions, and reads it again from the store.
        """
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(StoreError("the server is shutting down"))
        else:
            self._queue.put(_Task(fn, future, transaction))
        return future

    @property
    def pending(self) -> int:
        """Requests waiting for the writer."""
        return self._queue.qsize()

    # -- the thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._soft_flush_interval)
            except queue.Empty:
                self._flush_soft_guarded()
                continue
            if first is None:
                break
            if isinstance(first, _Task):
                self._run_task(first)
                continue
            group, stop, task = self._drain(first)
            self._process(group)
            if task is not None:
                self._run_task(task)
            if stop:
                break
        self._flush_soft_guarded()

    def _drain(self, first: _Request) -> tuple[list[_Request], bool, _Task | None]:
        """``first`` and whatever else is queued, up to the group size (stopping at a
        maintenance task, which runs after the group)."""
        group = [first]
        count = first.size
        while count < self._max_group_records:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return group, True, None
            if isinstance(nxt, _Task):
                return group, False, nxt
            group.append(nxt)
            count += nxt.size
        return group, False, None

    def _run_task(self, task: _Task) -> None:
        if not self._usable():
            task.future.set_exception(StoreFailedError(self.health.failed or "failed"))
            return
        self._flush_soft_guarded()
        cur = self._cur
        try:
            if not task.transaction:
                result = task.fn(cur)
            else:
                with transaction(cur):
                    result = task.fn(cur)
        except Exception as exc:
            self.health.note(classify(exc))
            log.exception("maintenance failed")
            task.future.set_exception(exc)
            return
        finally:
            self._sessions.clear()
            self._soft_dirty.clear()
        task.future.set_result(result)

    def _flush_soft_guarded(self) -> None:
        if self.health.failed:
            return
        try:
            self._flush_soft()
        except Exception as exc:
            self.health.note(classify(exc))
            log.exception("could not persist session liveness fields")

    # -- failing and recovering --------------------------------------------------------

    def _usable(self) -> bool:
        """Whether the database can be written; after DuckDB invalidated it, try to open
        it again (at most every `REOPEN_INTERVAL` seconds)."""
        if not self.health.failed:
            return True
        now = time.monotonic()
        if now - self._last_reopen < REOPEN_INTERVAL:
            return False
        self._last_reopen = now
        try:
            self._db.reopen()
            self._cur = self._db.new_cursor()
            # Nothing uncommitted was kept: read what the store holds again.
            self._sessions.clear()
            self._soft_dirty.clear()
            self._next_sid = self._scalar("SELECT coalesce(max(sid), 0) + 1 FROM sessions")
            self._next_test_id = self._scalar("SELECT coalesce(max(test_id), 0) + 1 FROM tests")
        except Exception as exc:
            log.warning("the database cannot be opened again yet: %s", exc)
            return False
        log.warning("the database was opened again after: %s", self.health.failed)
        self.health.recovered()
        return True

    def _process(self, requests: list[_Request]) -> None:
        if not self._usable():
            refusal = StoreFailedError(self.health.failed or "the database failed")
            for request in requests:
                request.future.set_exception(refusal)
            return
        try:
            staging, results, failed = self._stage(requests)
            if results:
                self._commit(staging)
        except Exception as exc:
            known = classify(exc)
            self.health.note(known)
            if len(requests) > 1 and not isinstance(known, StoreFailedError | DiskFullError):
                for request in requests:
                    self._process([request])
                return
            if isinstance(known, DiskFullError | StoreFailedError):
                log.error("write refused: %s", exc)
            else:
                log.exception("write failed")
            for request in requests:
                request.future.set_exception(known)
            return
        if self.health.disk_full_since:
            self.health.recovered()
        for request, rejected in failed:
            request.future.set_exception(rejected)
        for request, result in results:
            request.future.set_result(result)

    def _stage(
        self, requests: list[_Request]
    ) -> tuple[Staging, list[tuple[_Request, WriteResult]], list[tuple[_Request, Exception]]]:
        staging = self._new_staging()
        results = []
        failed: list[tuple[_Request, Exception]] = []
        for request in requests:
            try:
                result = staging.stage(
                    request.records,
                    dedupe=request.dedupe,
                    result_columns=request.result_columns,
                )
            except RequestRejected as exc:
                # Raised before anything of the request was staged: only it fails.
                failed.append((request, exc))
            else:
                results.append((request, result))
        return staging, results, failed

    def _new_staging(self) -> Staging:
        return Staging(lookup=self._session, next_sid=self._next_sid, now=self._clock())

    # -- the transaction ---------------------------------------------------------------

    def _commit(self, staging: Staging) -> None:
        for key in staging.refold:
            self._refold_state(staging, key)
        blocks = build.gather_results(staging)
        new_tests = self._assign_test_ids(blocks)
        soft_due = time.monotonic() - self._last_soft_flush >= self._soft_flush_interval
        stored_at = max(self._stored_at + 1, round(staging.now * 1_000_000))
        started = time.perf_counter()
        with transaction(self._cur):
            self._write(staging, blocks, new_tests, soft_due, stored_at)
        seconds = time.perf_counter() - started
        # Committed: the staged copies become the truth.
        self._stored_at = stored_at
        for key, entry in staging.sessions.items():
            self._remember(key, entry)
        self._test_ids.update((key, test_id) for key, (test_id, _, _) in new_tests.items())
        if len(self._test_ids) > self._test_cache_size:
            self._test_ids.clear()
        self._next_sid += len(staging.new_sessions)
        self._next_test_id += len(new_tests)
        if soft_due:
            self._soft_dirty.clear()
            self._last_soft_flush = time.monotonic()
        else:
            self._soft_dirty |= (
                staging.soft_dirty - staging.hard_dirty - staging.new_sessions.keys()
            )
        if self.observer is not None:
            try:
                self.observer(sum(len(block) for block in blocks), seconds)
            except Exception:  # committed all the same: never retry it as failed
                log.exception("commit observer failed")

    def _write(
        self,
        staging: Staging,
        blocks: list[ResultBlock],
        new_tests: dict[tuple[str, str], tuple[int, ResultBlock, int]],
        soft_due: bool,
        stored_at: int,
    ) -> None:
        cur = self._cur
        self._append_new(staging, blocks, new_tests, stored_at)
        for sid, finish in staging.run_finishes:
            cur.execute(
                "UPDATE runs SET finished_at = make_timestamp(CAST(round(? * 1e6) AS BIGINT)),"
                " exit_status = ?, status = ?, reason = ?, counts = CAST(? AS JSON),"
                " duration = ? WHERE sid = ? AND finished_at IS NULL",
                [
                    finish.timestamp,
                    finish.exit_status,
                    finish.status,
                    finish.reason,
                    msgspec.json.encode(finish.counts).decode(),
                    finish.duration,
                    sid,
                ],
            ).fetchall()
        keys = set(staging.hard_dirty)
        if soft_due:
            keys |= staging.soft_dirty | self._soft_dirty
        keys -= staging.new_sessions.keys()
        entries = [e for key in keys if (e := staging.sessions.get(key) or self._sessions.get(key))]
        self._update_sessions(entries, state_dirty=staging.state_dirty)

    def _append_new(
        self,
        staging: Staging,
        blocks: list[ResultBlock],
        new_tests: dict[tuple[str, str], tuple[int, ResultBlock, int]],
        stored_at: int,
    ) -> None:
        """Insert what the batch adds (new sessions and tests, state patches, events,
        metric values, results, runs' starts) into this store's tables for them."""
        cur = self._cur
        received_at = round(staging.now * 1_000_000)
        if staging.new_sessions:
            entries = [staging.sessions[key] for key in staging.new_sessions]
            starts = list(staging.new_sessions.values())
            batch = build.session_table(entries, starts, received_at)
            tables.insert(cur, self.SESSIONS, batch)
        if new_tests:
            tables.insert(cur, self.TESTS, build.test_table(new_tests, stored_at))
        for table in (tables.STATE_UPDATES, tables.EVENT_LOG, tables.METRIC_LOG):
            if rows := staging.rows.get(table.name):
                tables.insert(cur, table, build.record_table(table, rows))
        if blocks:
            test_ids = {**self._test_ids, **{k: v[0] for k, v in new_tests.items()}}
            results, details = build.result_tables(blocks, test_ids, stored_at)
            tables.insert(cur, tables.RESULTS, results)
            if details is not None:
                tables.insert(cur, tables.RESULT_DETAILS, details)
        if runs := staging.rows.get(tables.RUNS.name):
            batch = build.record_table(tables.RUNS, runs, {"received_at": received_at})
            tables.insert(cur, self.RUN_STARTS, batch.select(self.RUN_STARTS.names))

    def _update_sessions(self, entries: list[SessionEntry], *, state_dirty: set[str]) -> None:
        for with_state in (True, False):
            group = [e for e in entries if (e.id in state_dirty) == with_state]
            if group:
                batch = build.session_update_table(group, with_state=with_state)
                tables.run_over(self._cur, batch, build.session_update_sql(with_state=with_state))

    def _flush_soft(self) -> None:
        entries = [e for key in self._soft_dirty if (e := self._sessions.get(key)) is not None]
        if entries:
            with transaction(self._cur):
                self._update_sessions(entries, state_dirty=set())
        self._soft_dirty.clear()
        self._last_soft_flush = time.monotonic()

    def _refold_state(self, staging: Staging, key: str) -> None:
        """Fold a session's state again from all its patches, in sequence order."""
        entry = staging.sessions[key]
        stored = self._cur.execute(
            "SELECT seq, epoch_us(ts), patch FROM state_updates WHERE sid = ?", [entry.sid]
        ).fetchall()
        patches = [(seq, ts / 1e6, _decode(patch)) for seq, ts, patch in stored]
        patches += [
            (seq, record.timestamp, record.state)
            for sid, seq, record in staging.rows.get(tables.STATE_UPDATES.name, [])
            if sid == entry.sid
        ]
        # Numbered patches in their order; the seed API's unnumbered ones by time, after.
        patches.sort(key=lambda p: (p[0] is None, p[0] if p[0] is not None else 0, p[1]))
        state: dict[str, Any] = {}
        for _, _, patch in patches:
            state = deep_merge(state, patch)
        entry.state = state
        entry.state_seq = max((p[0] for p in patches if p[0] is not None), default=-1)
        staging.state_dirty.add(key)
        staging.hard_dirty.add(key)

    # -- test ids ------------------------------------------------------------------------

    def _assign_test_ids(
        self, blocks: list[ResultBlock]
    ) -> dict[tuple[str, str], tuple[int, ResultBlock, int]]:
        """Ids for tests never seen before (with the result that first names each);
        known ones are looked up in one query."""
        missing: dict[tuple[str, str], tuple[ResultBlock, int]] = {}
        known = self._test_ids
        for block in blocks:
            project = block.project
            for index, nodeid in enumerate(block.columns["nodeid"]):
                key = (project, nodeid)
                if key not in known and key not in missing:
                    missing[key] = (block, index)
        if not missing:
            return {}
        known.update(self._lookup_tests(list(missing)))
        new: dict[tuple[str, str], tuple[int, ResultBlock, int]] = {}
        for key, (block, index) in missing.items():
            if key not in known:
                new[key] = (self._next_test_id + len(new), block, index)
        return new

    def _lookup_tests(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        wanted = pa.table(
            {
                "project": pa.array([k[0] for k in keys], pa.string()),
                "nodeid": pa.array([k[1] for k in keys], pa.string()),
            }
        )
        found = self._cur.from_arrow(wanted).query(
            "wanted",
            "SELECT t.project, t.nodeid, t.test_id FROM tests t"
            " JOIN wanted w ON t.project = w.project AND t.nodeid = w.nodeid",
        )
        rows = found.fetchall() if found is not None else []
        return {(p, n): int(i) for p, n, i in rows}

    # -- the session cache ---------------------------------------------------------------

    def _remember(self, key: str, entry: SessionEntry) -> None:
        self._sessions[key] = entry
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._session_cache_size:
            oldest = next(iter(self._sessions))
            if oldest in self._soft_dirty:
                self._flush_soft()  # persist before forgetting
            del self._sessions[oldest]

    def _session(self, key: str) -> SessionEntry | None:
        entry = self._sessions.get(key)
        if entry is not None:
            return entry
        entry = self._load_session(key)
        if entry is not None:
            self._remember(key, entry)
        return entry

    def _load_session(self, key: str) -> SessionEntry | None:
        cur = self._cur
        row = self._one(
            "SELECT sid, product, state, epoch_us(ended_at), hung, heartbeat_interval,"
            " epoch_us(last_seen), epoch_us(updated_at), in_progress,"
            " EXISTS (SELECT 1 FROM runs r WHERE r.sid = s.sid),"
            " EXISTS (SELECT 1 FROM runs r WHERE r.sid = s.sid AND r.finished_at IS NOT NULL)"
            " FROM sessions s WHERE id = CAST(? AS UUID)",
            [key],
        )
        if row is None:
            return None
        sid = int(row[0])
        seqs = cur.execute(
            "SELECT seq FROM state_updates WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM event_log WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM metric_log WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM results WHERE sid = $1 AND seq IS NOT NULL",
            [sid],
        ).fetchall()
        hung_seq = self._one(
            "SELECT coalesce(max(seq), -1) FROM event_log WHERE sid = ? AND name IN (?, ?)",
            [sid, HUNG, RECOVERED],
        )
        state_seq = self._one(
            "SELECT coalesce(max(seq), -1) FROM state_updates WHERE sid = ?", [sid]
        )
        return SessionEntry(
            sid=sid,
            id=key,
            product=row[1],
            state=_decode(row[2]) if row[2] else {},
            ended_at=None if row[3] is None else row[3] / 1e6,
            hung=bool(row[4]),
            hung_seq=int(hung_seq[0]) if hung_seq else -1,
            heartbeat_interval=row[5],
            last_seen=row[6] / 1e6,
            updated_at=row[7] / 1e6,
            in_progress=_decode(row[8]) if row[8] else {},
            seqs=SeqSet(int(s[0]) for s in seqs),
            has_run=bool(row[9]),
            run_finished=bool(row[10]),
            state_seq=int(state_seq[0]) if state_seq else -1,
        )

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        # fetchall, not fetchone: since DuckDB 2.0 a result not fetched to its end
        # makes the cursor's next relation call (from_arrow) fail with "unfinished
        # result from execute()".
        rows = self._cur.execute(sql, params).fetchall()
        return rows[0] if rows else None

    def _scalar(self, sql: str) -> int:
        row = self._one(sql)
        return int(row[0]) if row else 0
