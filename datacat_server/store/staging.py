"""Staging: turning a group of requests into the rows and session changes to commit.

Nothing here touches the database. The writer looks sessions up, calls `Staging.stage`
for each request, then writes what was staged in one transaction; if that fails,
the staged copies of the sessions are thrown away and the cache is untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from datacat_client import wire
from datacat_server.errors import StoreError, UnknownSessionError
from datacat_server.store.merge import deep_merge
from datacat_server.store.seqset import SeqSet

__all__ = ["RequestRejected", "SessionEntry", "Staging", "WriteResult"]

HUNG = "application_appears_hung"
RECOVERED = "application_recovered"


class RequestRejected(Exception):
    """Raised by `Staging.stage` before it staged anything of the request."""


class UnknownSessionRejected(UnknownSessionError, RequestRejected):
    pass


class KindRejected(StoreError, RequestRejected):
    pass


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What one request changed: records newly stored, and records already there."""

    accepted: int
    duplicates: int


@dataclasses.dataclass(slots=True)
class SessionEntry:
    """What the writer must know about a session to apply records to it."""

    sid: int
    id: str
    product: str
    state: dict[str, Any]
    ended_at: float | None
    hung: bool
    #: Sequence number of the newest hang/recovery event applied.
    hung_seq: int
    heartbeat_interval: float | None
    last_seen: float
    updated_at: float
    #: Tests started and not finished: node id → worker and start time.
    in_progress: dict[str, dict[str, Any]]
    seqs: SeqSet
    has_run: bool
    #: Sequence number of the newest state patch merged; a lower one arriving later
    #: (from a spool, or a retry) means the state must be folded again in order.
    state_seq: int = -1

    def copy(self) -> SessionEntry:
        return dataclasses.replace(
            self,
            seqs=self.seqs.copy(),
            in_progress=dict(self.in_progress),
        )


#: A staged row: the session's serial, the record's sequence number (None for the
#: seed endpoints, which have none) and the record.
Row = tuple[int, int | None, Any]


@dataclasses.dataclass
class Staging:
    """Everything one transaction will write.

    ``lookup`` finds a committed session by id (None if there is none); ``next_sid`` is
    the first free session serial. Sessions are named by canonical id throughout.
    """

    lookup: Callable[[str], SessionEntry | None]
    next_sid: int
    now: float
    sessions: dict[str, SessionEntry] = dataclasses.field(default_factory=dict)
    new_sessions: dict[str, wire.SessionStart] = dataclasses.field(default_factory=dict)
    state_dirty: set[str] = dataclasses.field(default_factory=set)
    hard_dirty: set[str] = dataclasses.field(default_factory=set)
    soft_dirty: set[str] = dataclasses.field(default_factory=set)
    events: list[Row] = dataclasses.field(default_factory=list)
    metrics: list[Row] = dataclasses.field(default_factory=list)
    state_updates: list[Row] = dataclasses.field(default_factory=list)
    #: Test results, with the project their test belongs to (the session's product).
    results: list[tuple[int, int | None, str, wire.TestResult]] = dataclasses.field(
        default_factory=list
    )
    run_starts: list[tuple[int, wire.RunStart]] = dataclasses.field(default_factory=list)
    #: Sessions whose state must be folded again from all their patches, in order.
    refold: set[str] = dataclasses.field(default_factory=set)
    run_finishes: list[tuple[int, wire.RunFinish]] = dataclasses.field(default_factory=list)

    # -- sessions --------------------------------------------------------------------

    def _entry(self, key: str) -> SessionEntry:
        entry = self.sessions.get(key)
        if entry is None:
            committed = self.lookup(key)
            if committed is None:
                raise UnknownSessionError([key])
            entry = self.sessions[key] = committed.copy()
        return entry

    def _exists(self, key: str) -> bool:
        return key in self.sessions or self.lookup(key) is not None

    def _start(self, record: wire.SessionStart, dedupe: bool) -> None:
        key = record.session_id
        entry = SessionEntry(
            sid=self.next_sid + len(self.new_sessions),
            id=key,
            product=record.product,
            state={},
            ended_at=None,
            hung=False,
            hung_seq=-1,
            heartbeat_interval=record.heartbeat_interval or None,
            last_seen=self.now,
            updated_at=self.now,
            in_progress={},
            seqs=SeqSet([record.seq] if dedupe else []),
            has_run=False,
        )
        self.sessions[key] = entry
        self.new_sessions[key] = record
        if record.state:
            entry.state = deep_merge({}, record.state)
            seq = record.seq if dedupe else None
            entry.state_seq = -1 if seq is None else seq
            self.state_updates.append((entry.sid, seq, record))

    # -- requests --------------------------------------------------------------------

    def stage(self, records: Sequence[wire.Record], *, dedupe: bool) -> WriteResult:
        """Stage one request's records; raises before staging anything it cannot take."""
        self._check_known(records)
        accepted = duplicates = 0
        now = self.now
        for record in records:
            key = record.session_id
            if type(record) is wire.SessionStart:
                if self._exists(key):
                    duplicates += 1
                else:
                    self._start(record, dedupe)
                    accepted += 1
                continue
            entry = self._entry(key)
            if dedupe:
                if not entry.seqs.add(record.seq):
                    duplicates += 1
                    continue
                seq: int | None = record.seq
            else:
                seq = None
            if _STAGERS[type(record)](self, entry, record, seq):
                accepted += 1
            else:
                duplicates += 1
            entry.last_seen = entry.updated_at = now
            self.soft_dirty.add(key)
        return WriteResult(accepted, duplicates)

    def _check_known(self, records: Sequence[wire.Record]) -> None:
        started = {r.session_id for r in records if type(r) is wire.SessionStart}
        unknown = {
            key
            for key in {r.session_id for r in records}
            if key not in started and not self._exists(key)
        }
        if unknown:
            raise UnknownSessionRejected(unknown)
        for record in records:
            if type(record) not in _STAGERS and type(record) is not wire.SessionStart:
                raise KindRejected(f"unknown record kind {type(record).__name__}")

    # -- one stager per kind of record: each returns False if it changed nothing --------

    def _result(self, entry: SessionEntry, record: wire.TestResult, seq: int | None) -> bool:
        self.results.append((entry.sid, seq, entry.product, record))
        if record.subtest is None:
            entry.in_progress.pop(record.nodeid, None)
        return True

    def _event(self, entry: SessionEntry, record: wire.Event, seq: int | None) -> bool:
        self.events.append((entry.sid, seq, record))
        if record.name in (HUNG, RECOVERED):
            # Sequence order decides, so a retried old batch cannot undo a newer state.
            order = entry.hung_seq + 1 if seq is None else seq
            if order > entry.hung_seq:
                entry.hung = record.name == HUNG
                entry.hung_seq = order
                self.hard_dirty.add(entry.id)
        return True

    def _metric(self, entry: SessionEntry, record: wire.Metric, seq: int | None) -> bool:
        self.metrics.append((entry.sid, seq, record))
        return True

    def _state(self, entry: SessionEntry, record: wire.StateUpdate, seq: int | None) -> bool:
        if seq is not None and seq < entry.state_seq:
            self.refold.add(entry.id)  # arrived after a newer patch: order decides
        else:
            entry.state = deep_merge(entry.state, record.state)
            entry.state_seq = entry.state_seq if seq is None else seq
        self.state_updates.append((entry.sid, seq, record))
        self.state_dirty.add(entry.id)
        self.hard_dirty.add(entry.id)
        return True

    def _heartbeat(self, entry: SessionEntry, record: wire.Heartbeat, seq: int | None) -> bool:
        if record.interval is not None:
            entry.heartbeat_interval = record.interval or None
        return True

    def _test_start(self, entry: SessionEntry, record: wire.TestStart, seq: int | None) -> bool:
        entry.in_progress[record.nodeid] = {"worker": record.worker, "since": record.timestamp}
        return True

    def _end(self, entry: SessionEntry, record: wire.SessionEnd, seq: int | None) -> bool:
        if entry.ended_at is not None:
            return False
        entry.ended_at = record.timestamp
        entry.in_progress.clear()
        self.hard_dirty.add(entry.id)
        return True

    def _run_start(self, entry: SessionEntry, record: wire.RunStart, seq: int | None) -> bool:
        if entry.has_run:
            return False
        entry.has_run = True
        self.run_starts.append((entry.sid, record))
        return True

    def _run_finish(self, entry: SessionEntry, record: wire.RunFinish, seq: int | None) -> bool:
        self.run_finishes.append((entry.sid, record))
        return True


_Stager = Callable[[Staging, SessionEntry, Any, "int | None"], bool]

#: How each kind of record is staged; session starts are handled first, in `stage`.
_STAGERS: dict[type, _Stager] = {
    wire.TestResult: Staging._result,
    wire.Event: Staging._event,
    wire.Metric: Staging._metric,
    wire.StateUpdate: Staging._state,
    wire.Heartbeat: Staging._heartbeat,
    wire.TestStart: Staging._test_start,
    wire.SessionEnd: Staging._end,
    wire.RunStart: Staging._run_start,
    wire.RunFinish: Staging._run_finish,
}
