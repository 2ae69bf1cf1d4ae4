"""The one writer: every write to DuckDB goes through this thread.

Requests (a list of wire records each) wait in a bounded queue. The thread takes what
has queued up, applies it in one transaction (group commit: one ``fsync`` for many
requests), and only then resolves each request's future, so an answer of 2xx means
"committed". If the group fails, each request is retried alone, so one bad request
cannot fail its neighbours.

Exactly once: records carry ``(session, seq)``; the writer keeps, per session, the set
of sequence numbers it has applied (`SeqSet`), rebuilt from the stored rows when a
session is first touched after a restart. A retried batch finds its numbers there.

Soft fields (last seen, tests in progress, updated at) change with every batch; they
are persisted at most every ``soft_flush_interval`` seconds instead of with each
commit, which would cost an UPDATE per batch. A server crash loses at most that much
of them; records themselves are never soft.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from datacat_client import wire
from datacat_server.errors import StoreError, UnknownSessionError, WriterBusyError
from datacat_server.store.database import Database
from datacat_server.store.merge import deep_merge
from datacat_server.store.seqset import SeqSet
from datacat_server.store.tables import ColumnBuffer, insert_sql

__all__ = ["WriteResult", "Writer"]

log = logging.getLogger("datacat.writer")

_HUNG = "application_appears_hung"
_RECOVERED = "application_recovered"
_json = msgspec.json.Encoder()
_json_decode = msgspec.json.decode


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What one request changed: records newly stored, and records already there."""

    accepted: int
    duplicates: int


@dataclasses.dataclass(slots=True)
class _Request:
    records: Sequence[wire.Record]
    #: False for the seed's one-record endpoints: no sequence numbers, no deduplication.
    dedupe: bool
    future: concurrent.futures.Future[WriteResult]


@dataclasses.dataclass(slots=True)
class _Session:
    """What the writer must know about a session to apply records to it."""

    sid: int
    id: str
    product: str
    state: dict[str, Any]
    ended_at: int | None
    hung: bool
    hung_seq: int
    heartbeat_interval: float | None
    last_seen: int
    updated_at: int
    in_progress: dict[str, dict[str, Any]]
    worker_seq: dict[str, int]
    seqs: SeqSet
    has_run: bool

    def copy(self) -> _Session:
        return dataclasses.replace(
            self,
            seqs=self.seqs.copy(),
            in_progress=dict(self.in_progress),
            worker_seq=dict(self.worker_seq),
        )


@dataclasses.dataclass
class _Group:
    """Everything one transaction will write, staged before any SQL runs."""

    # Sessions are named by their canonical id (the cache key) throughout.
    sessions: dict[str, _Session] = dataclasses.field(default_factory=dict)
    new_sessions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    state_dirty: set[str] = dataclasses.field(default_factory=set)
    hard_dirty: set[str] = dataclasses.field(default_factory=set)
    soft_dirty: set[str] = dataclasses.field(default_factory=set)
    buffers: dict[str, ColumnBuffer] = dataclasses.field(default_factory=dict)
    run_finishes: list[tuple[int, wire.RunFinish]] = dataclasses.field(default_factory=list)
    new_tests: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def buffer(self, table: str) -> ColumnBuffer:
        buf = self.buffers.get(table)
        if buf is None:
            buf = self.buffers[table] = ColumnBuffer(table)
        return buf


def _us(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000)


def _now_us() -> int:
    return time.time_ns() // 1000


def canonical_session_id(value: str) -> str:
    """The lower-case, dashed form of a session UUID."""
    return str(uuid.UUID(value))


class Writer:
    """Owns all writes. `submit` from any thread; `start` and `stop` from the owner."""

    def __init__(
        self,
        db: Database,
        *,
        soft_flush_interval: float = 0.5,
        max_pending: int = 512,
        max_group_records: int = 50_000,
        session_cache_size: int = 10_000,
        test_cache_size: int = 1_000_000,
    ) -> None:
        self._db = db
        self._cur = db.new_cursor()
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_pending)
        self._soft_flush_interval = soft_flush_interval
        self._max_group_records = max_group_records
        self._sessions: collections.OrderedDict[str, _Session] = collections.OrderedDict()
        self._session_cache_size = session_cache_size
        self._soft_dirty: set[str] = set()
        self._last_soft_flush = time.monotonic()
        self._test_ids: dict[tuple[str, str], int] = {}
        self._test_cache_size = test_cache_size
        self._next_sid = self._scalar("SELECT coalesce(max(sid), 0) + 1 FROM sessions")
        self._next_test_id = self._scalar("SELECT coalesce(max(test_id), 0) + 1 FROM tests")
        self._thread = threading.Thread(target=self._run, name="datacat-writer", daemon=True)
        self._stopped = False

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
        self, records: Sequence[wire.Record], *, dedupe: bool = True
    ) -> concurrent.futures.Future[WriteResult]:
        """Queue records for the next transaction. The future resolves after commit."""
        future: concurrent.futures.Future[WriteResult] = concurrent.futures.Future()
        if self._stopped:
            future.set_exception(StoreError("the server is shutting down"))
            return future
        try:
            self._queue.put_nowait(_Request(records, dedupe, future))
        except queue.Full:
            future.set_exception(WriterBusyError("too many writes are waiting; retry shortly"))
        return future

    @property
    def pending(self) -> int:
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
            group = [first]
            count = len(first.records)
            stop = False
            while count < self._max_group_records:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                count += len(nxt.records)
            self._process(group)
            if stop:
                break
        self._flush_soft_guarded()

    def _flush_soft_guarded(self) -> None:
        try:
            self._flush_soft()
        except Exception:
            log.exception("could not persist session liveness fields")

    def _process(self, requests: list[_Request]) -> None:
        valid = []
        for request in requests:
            try:
                self._check_sessions_known(request)
            except Exception as exc:
                request.future.set_exception(exc)
            else:
                valid.append(request)
        if not valid:
            return
        try:
            results = self._apply(valid)
        except Exception as exc:
            if len(valid) > 1:
                for request in valid:
                    self._process([request])
                return
            log.exception("write failed")
            error = exc if isinstance(exc, StoreError) else StoreError(f"write failed: {exc}")
            valid[0].future.set_exception(error)
            return
        for request, result in zip(valid, results, strict=True):
            request.future.set_result(result)

    # -- applying records -----------------------------------------------------------

    def _check_sessions_known(self, request: _Request) -> None:
        started = {
            canonical_session_id(r.session_id)
            for r in request.records
            if isinstance(r, wire.SessionStart)
        }
        unknown = set()
        for sid_text in {canonical_session_id(r.session_id) for r in request.records}:
            if sid_text in started:
                continue
            if self._session(sid_text) is None:
                unknown.add(sid_text)
        if unknown:
            raise UnknownSessionError(unknown)

    def _apply(self, requests: list[_Request]) -> list[WriteResult]:
        group = _Group()
        now = _now_us()
        results = [self._stage_request(group, request, now) for request in requests]
        self._assign_test_ids(group, now)
        soft_due = time.monotonic() - self._last_soft_flush >= self._soft_flush_interval
        cur = self._cur
        cur.execute("BEGIN TRANSACTION")
        try:
            self._write_group(group, soft_due)
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        # Committed: the staged copies become the truth.
        for key, entry in group.sessions.items():
            self._remember(key, entry)
        self._test_ids.update(group.new_tests)
        if len(self._test_ids) > self._test_cache_size:
            self._test_ids.clear()
        self._next_sid += len(group.new_sessions)
        self._next_test_id += len(group.new_tests)
        if soft_due:
            self._soft_dirty.clear()
            self._last_soft_flush = time.monotonic()
        else:
            self._soft_dirty |= group.soft_dirty - group.hard_dirty - group.new_sessions.keys()
        return results

    def _staged(self, group: _Group, key: str) -> _Session:
        entry = group.sessions.get(key)
        if entry is None:
            cached = self._session(key)
            if cached is None:  # checked in _check_sessions_known
                raise UnknownSessionError([key])
            entry = group.sessions[key] = cached.copy()
        return entry

    def _stage_request(self, group: _Group, request: _Request, now: int) -> WriteResult:
        accepted = duplicates = 0
        for record in request.records:
            key = canonical_session_id(record.session_id)
            if isinstance(record, wire.SessionStart):
                if key in group.sessions or self._session(key) is not None:
                    duplicates += 1
                else:
                    self._stage_new_session(group, key, record, request.dedupe, now)
                    accepted += 1
                continue
            entry = self._staged(group, key)
            if request.dedupe and not entry.seqs.add(record.seq):
                duplicates += 1
                continue
            seq = record.seq if request.dedupe else None
            if self._stage_record(group, entry, record, seq, now):
                accepted += 1
            else:
                duplicates += 1
            entry.last_seen = entry.updated_at = now
            group.soft_dirty.add(key)
        return WriteResult(accepted, duplicates)

    def _stage_new_session(
        self, group: _Group, key: str, record: wire.SessionStart, dedupe: bool, now: int
    ) -> None:
        sid = self._next_sid + len(group.new_sessions)
        created = _us(record.timestamp) or now
        seqs = SeqSet([record.seq] if dedupe else [])
        entry = _Session(
            sid=sid,
            id=key,
            product=record.product,
            state={},
            ended_at=None,
            hung=False,
            hung_seq=-1,
            heartbeat_interval=record.heartbeat_interval or None,
            last_seen=now,
            updated_at=now,
            in_progress={},
            worker_seq={},
            seqs=seqs,
            has_run=False,
        )
        group.sessions[key] = entry
        group.new_sessions[key] = {
            "name": record.name,
            "version": record.version,
            "labels": list(record.labels.items()),
            "created_at": created,
        }
        if record.state:
            entry.state = deep_merge({}, record.state)
            group.buffer("state_updates").append(
                sid=sid,
                seq=record.seq if dedupe else None,
                ts=created,
                patch=_json.encode(record.state).decode(),
            )

    def _stage_record(
        self, group: _Group, entry: _Session, record: wire.Record, seq: int | None, now: int
    ) -> bool:
        """Stage one record of an existing session; False if it changes nothing."""
        stage = _STAGERS.get(type(record))
        if stage is None:  # pragma: no cover - every wire kind has a stager
            raise StoreError(f"unknown record kind {type(record).__name__}")
        return stage(self, group, entry, record, seq, _us(record.timestamp) or now)

    def _stage_metric(
        self, group: _Group, entry: _Session, record: wire.Metric, seq: int | None, ts: int
    ) -> bool:
        group.buffer("metric_log").append(
            sid=entry.sid, seq=seq, ts=ts, name=record.name, value=record.value, tags=record.tags
        )
        return True

    def _stage_state(
        self, group: _Group, entry: _Session, record: wire.StateUpdate, seq: int | None, ts: int
    ) -> bool:
        entry.state = deep_merge(entry.state, record.state)
        group.buffer("state_updates").append(
            sid=entry.sid, seq=seq, ts=ts, patch=_json.encode(record.state).decode()
        )
        group.state_dirty.add(entry.id)
        group.hard_dirty.add(entry.id)
        return True

    def _stage_heartbeat(
        self, group: _Group, entry: _Session, record: wire.Heartbeat, seq: int | None, ts: int
    ) -> bool:
        if record.interval is not None:
            entry.heartbeat_interval = record.interval or None
        return True

    def _stage_test_start(
        self, group: _Group, entry: _Session, record: wire.TestStart, seq: int | None, ts: int
    ) -> bool:
        order = seq if seq is not None else -1
        if order >= entry.worker_seq.get(record.worker, -1):
            entry.worker_seq[record.worker] = order
            entry.in_progress[record.worker] = {"nodeid": record.nodeid, "since": record.timestamp}
        return True

    def _stage_end(
        self, group: _Group, entry: _Session, record: wire.SessionEnd, seq: int | None, ts: int
    ) -> bool:
        if entry.ended_at is not None:
            return False
        entry.ended_at = ts
        entry.in_progress.clear()
        group.hard_dirty.add(entry.id)
        return True

    def _stage_run_finish(
        self, group: _Group, entry: _Session, record: wire.RunFinish, seq: int | None, ts: int
    ) -> bool:
        group.run_finishes.append((entry.sid, record))
        return True

    def _stage_event(
        self, group: _Group, entry: _Session, record: wire.Event, seq: int | None, ts: int
    ) -> bool:
        group.buffer("event_log").append(
            sid=entry.sid, seq=seq, ts=ts, name=record.name, data=_json.encode(record.data).decode()
        )
        if record.name in (_HUNG, _RECOVERED):
            # Sequence order decides, so a retried old batch cannot undo a newer state.
            order = seq if seq is not None else entry.hung_seq + 1
            if order > entry.hung_seq:
                entry.hung = record.name == _HUNG
                entry.hung_seq = order
                group.hard_dirty.add(entry.id)
        return True

    def _stage_run_start(
        self, group: _Group, entry: _Session, record: wire.RunStart, seq: int | None, ts: int
    ) -> bool:
        if entry.has_run:
            return False
        entry.has_run = True
        group.buffer("runs").append(
            sid=entry.sid,
            project=record.project,
            branch=record.branch,
            commit=record.commit,
            dirty=record.dirty,
            ci_provider=record.ci_provider,
            ci_url=record.ci_url,
            python_version=record.python_version,
            python_implementation=record.python_implementation,
            platform=record.platform,
            hostname=record.hostname,
            pytest_version=record.pytest_version,
            plugins=record.plugins,
            args=record.args,
            workers=record.workers,
            started_at=ts,
        )
        return True

    def _stage_result(
        self, group: _Group, entry: _Session, r: wire.TestResult, seq: int | None, ts: int
    ) -> bool:
        # test_id is filled in by _assign_test_ids once the whole group is staged, so
        # that unknown tests are looked up in one query, not one per result.
        group.buffer("results").rows.append(
            (
                entry.sid,
                seq,
                (entry.product, r.nodeid, r),
                r.subtest,
                r.outcome,
                r.phase,
                _us(r.started_at),
                _us(r.stopped_at),
                r.setup_duration + r.call_duration + r.teardown_duration,
                r.setup_duration,
                r.call_duration,
                r.teardown_duration,
                r.worker,
                r.attempt,
                r.final,
                r.cpu_time,
                r.rss_delta,
            )
        )
        if (
            r.reason is not None
            or r.exc_type is not None
            or r.exc_message is not None
            or r.traceback is not None
            or r.stdout is not None
            or r.stderr is not None
            or r.log is not None
        ):
            group.buffer("result_details").rows.append(
                (
                    entry.sid,
                    seq,
                    r.reason,
                    r.exc_type,
                    r.exc_message,
                    r.traceback,
                    r.stdout,
                    r.stderr,
                    r.log,
                )
            )
        if r.subtest is None:
            running = entry.in_progress.get(r.worker)
            if running is not None and running["nodeid"] == r.nodeid:
                del entry.in_progress[r.worker]
            order = seq if seq is not None else -1
            entry.worker_seq[r.worker] = max(entry.worker_seq.get(r.worker, -1), order)
        return True

    def _assign_test_ids(self, group: _Group, now: int) -> None:
        results = group.buffers.get("results")
        if results is None:
            return
        rows = results.rows
        missing: dict[tuple[str, str], wire.TestResult] = {}
        for row in rows:
            project, nodeid, record = row[2]
            key = (project, nodeid)
            if key not in self._test_ids and key not in missing:
                missing[key] = record
        if missing:
            found = self._lookup_tests(list(missing))
            self._test_ids.update(found)
            tests = group.buffer("tests")
            for key, record in missing.items():
                if key in found:
                    continue
                test_id = self._next_test_id + len(group.new_tests)
                group.new_tests[key] = test_id
                tests.append(
                    test_id=test_id,
                    project=key[0],
                    nodeid=key[1],
                    file=record.file or None,
                    line=record.line,
                    cls=record.cls or None,
                    func=record.func or None,
                    param_id=record.param_id or None,
                    markers=record.markers,
                    first_seen=now,
                )
        ids = self._test_ids
        new = group.new_tests
        for i, row in enumerate(rows):
            key = row[2][:2]
            known = ids.get(key)
            rows[i] = (row[0], row[1], new[key] if known is None else known, *row[3:])

    def _lookup_tests(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
        wanted = pa.table(
            {
                "project": pa.array([k[0] for k in keys], pa.string()),
                "nodeid": pa.array([k[1] for k in keys], pa.string()),
            }
        )
        cur = self._cur
        cur.register("_wanted_tests", wanted)
        try:
            rows = cur.execute(
                "SELECT t.project, t.nodeid, t.test_id FROM tests t"
                " JOIN _wanted_tests w ON t.project = w.project AND t.nodeid = w.nodeid"
            ).fetchall()
        finally:
            cur.unregister("_wanted_tests")
        return {(p, n): int(i) for p, n, i in rows}

    # -- SQL -------------------------------------------------------------------------

    def _write_group(self, group: _Group, soft_due: bool) -> None:
        cur = self._cur
        if group.new_sessions:
            sessions = ColumnBuffer("sessions")
            for key, row in group.new_sessions.items():
                entry = group.sessions[key]
                sessions.append(
                    sid=entry.sid,
                    id=entry.id,
                    product=entry.product,
                    state=_json.encode(entry.state).decode(),
                    ended_at=entry.ended_at,
                    hung=entry.hung,
                    heartbeat_interval=entry.heartbeat_interval,
                    last_seen=entry.last_seen,
                    updated_at=entry.updated_at,
                    in_progress=_json.encode(entry.in_progress).decode(),
                    **row,
                )
            self._insert(sessions)
        for table in (
            "tests",
            "state_updates",
            "event_log",
            "metric_log",
            "results",
            "result_details",
            "runs",
        ):
            buf = group.buffers.get(table)
            if buf is not None and len(buf):
                self._insert(buf)
        for sid, finish in group.run_finishes:
            cur.execute(
                "UPDATE runs SET finished_at = make_timestamp(?), exit_status = ?, status = ?,"
                " counts = CAST(? AS JSON), duration = ? WHERE sid = ?",
                [
                    _us(finish.timestamp),
                    finish.exit_status,
                    finish.status,
                    _json.encode(finish.counts).decode(),
                    finish.duration,
                    sid,
                ],
            )
        to_update = set(group.hard_dirty)
        if soft_due:
            to_update |= group.soft_dirty | self._soft_dirty
        to_update -= group.new_sessions.keys()
        if to_update:
            entries = [group.sessions.get(key) or self._sessions.get(key) for key in to_update]
            self._update_sessions(
                [e for e in entries if e is not None], state_dirty=group.state_dirty
            )

    def _insert(self, buf: ColumnBuffer) -> None:
        name = f"_new_{buf.table}"
        self._cur.register(name, buf.to_arrow())
        try:
            self._cur.execute(insert_sql(buf.table, name))
        finally:
            self._cur.unregister(name)

    def _update_sessions(self, entries: Iterable[_Session], *, state_dirty: set[str]) -> None:
        entries = list(entries)
        with_state = [e for e in entries if e.id in state_dirty]
        without_state = [e for e in entries if e.id not in state_dirty]
        for batch, set_state in ((with_state, True), (without_state, False)):
            if not batch:
                continue
            table = {
                "sid": pa.array([e.sid for e in batch], pa.int32()),
                "ended_at": pa.array([e.ended_at for e in batch], pa.timestamp("us")),
                "hung": pa.array([e.hung for e in batch], pa.bool_()),
                "heartbeat_interval": pa.array([e.heartbeat_interval for e in batch], pa.float64()),
                "last_seen": pa.array([e.last_seen for e in batch], pa.timestamp("us")),
                "updated_at": pa.array([e.updated_at for e in batch], pa.timestamp("us")),
                "in_progress": pa.array(
                    [_json.encode(e.in_progress).decode() for e in batch], pa.string()
                ),
            }
            state_sql = ""
            if set_state:
                table["state"] = pa.array(
                    [_json.encode(e.state).decode() for e in batch], pa.string()
                )
                state_sql = "state = CAST(u.state AS JSON), "
            self._cur.register("_session_updates", pa.table(table))
            try:
                self._cur.execute(
                    f"UPDATE sessions SET {state_sql}ended_at = u.ended_at, hung = u.hung,"
                    " heartbeat_interval = u.heartbeat_interval, last_seen = u.last_seen,"
                    " updated_at = u.updated_at, in_progress = CAST(u.in_progress AS JSON)"
                    " FROM _session_updates u WHERE sessions.sid = u.sid"
                )
            finally:
                self._cur.unregister("_session_updates")

    def _flush_soft(self) -> None:
        if not self._soft_dirty:
            self._last_soft_flush = time.monotonic()
            return
        entries = [e for key in self._soft_dirty if (e := self._sessions.get(key)) is not None]
        cur = self._cur
        cur.execute("BEGIN TRANSACTION")
        try:
            self._update_sessions(entries, state_dirty=set())
            cur.execute("COMMIT")
        except Exception:
            cur.execute("ROLLBACK")
            raise
        self._soft_dirty.clear()
        self._last_soft_flush = time.monotonic()

    # -- the session cache --------------------------------------------------------------

    def _remember(self, key: str, entry: _Session) -> None:
        self._sessions[key] = entry
        self._sessions.move_to_end(key)
        while len(self._sessions) > self._session_cache_size:
            old_key = next(iter(self._sessions))
            if old_key in self._soft_dirty:
                # Keep entries whose soft fields are not persisted yet.
                self._flush_soft()
            del self._sessions[old_key]

    def _session(self, key: str) -> _Session | None:
        entry = self._sessions.get(key)
        if entry is not None:
            return entry
        entry = self._load_session(key)
        if entry is not None:
            self._remember(key, entry)
        return entry

    def _load_session(self, key: str) -> _Session | None:
        cur = self._cur
        row = cur.execute(
            "SELECT sid, product, state, epoch_us(ended_at), hung, heartbeat_interval,"
            " epoch_us(last_seen), epoch_us(updated_at), in_progress,"
            " EXISTS (SELECT 1 FROM runs r WHERE r.sid = s.sid)"
            " FROM sessions s WHERE id = CAST(? AS UUID)",
            [key],
        ).fetchone()
        if row is None:
            return None
        sid = int(row[0])
        seqs = cur.execute(
            "SELECT seq FROM state_updates WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM event_log WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM metric_log WHERE sid = $1 AND seq IS NOT NULL"
            " UNION ALL SELECT seq FROM results WHERE sid = $1",
            [sid],
        ).fetchall()
        hung_seq = cur.execute(
            "SELECT coalesce(max(seq), -1) FROM event_log WHERE sid = ? AND name IN (?, ?)",
            [sid, _HUNG, _RECOVERED],
        ).fetchone()
        return _Session(
            sid=sid,
            id=key,
            product=row[1],
            state=_json_decode(row[2]) if row[2] else {},
            ended_at=row[3],
            hung=bool(row[4]),
            hung_seq=int(hung_seq[0]) if hung_seq else -1,
            heartbeat_interval=row[5],
            last_seen=int(row[6]),
            updated_at=int(row[7]),
            in_progress=_json_decode(row[8]) if row[8] else {},
            worker_seq={},
            seqs=SeqSet(int(s[0]) for s in seqs),
            has_run=bool(row[9]),
        )

    def _scalar(self, sql: str) -> int:
        row = self._cur.execute(sql).fetchone()
        return int(row[0]) if row else 0


_Stager = Callable[[Writer, _Group, _Session, Any, int | None, int], bool]

#: How each kind of record is staged. Session starts are handled before (they create
#: the session the others need).
_STAGERS: dict[type, _Stager] = {
    wire.TestResult: Writer._stage_result,
    wire.Event: Writer._stage_event,
    wire.Metric: Writer._stage_metric,
    wire.StateUpdate: Writer._stage_state,
    wire.Heartbeat: Writer._stage_heartbeat,
    wire.TestStart: Writer._stage_test_start,
    wire.SessionEnd: Writer._stage_end,
    wire.RunStart: Writer._stage_run_start,
    wire.RunFinish: Writer._stage_run_finish,
}
