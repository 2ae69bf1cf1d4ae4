"""Staging: turning a group of requests into the rows and session changes to commit.

Nothing here touches the database. The writer looks sessions up, calls `Staging.stage`
for each request, then writes what was staged in one transaction; if that fails,
the staged copies of the sessions are thrown away and the cache is untouched. How each
kind of record is staged lives with the kind (`kinds.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from datacat_client import wire
from datacat_server.errors import StoreError, UnknownSessionError
from datacat_server.store.seqset import SeqSet

__all__ = [
    "HUNG",
    "RECOVERED",
    "RequestRejected",
    "ResultBlock",
    "Row",
    "SessionEntry",
    "Staging",
    "WriteResult",
]

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
    """What one request changed: records newly stored, records already there, and
    records that were ignored with the reason (e.g. a second finish of a run)."""

    accepted: int
    duplicates: int
    notes: tuple[str, ...] = ()


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
    #: Tests started and not finished: node id → worker, start time and the sequence
    #: number of the start (a result with a higher one finishes it, in any arrival order).
    in_progress: dict[str, dict[str, Any]]
    seqs: SeqSet
    has_run: bool
    #: Sequence number of the newest state patch merged; a lower one arriving later
    #: (from a spool, or a retry) means the state must be folded again in order.
    state_seq: int = -1
    #: The run's finish is set once; later ones are ignored.
    run_finished: bool = False

    def copy(self) -> SessionEntry:
        return dataclasses.replace(
            self,
            seqs=self.seqs.copy(),
            in_progress=dict(self.in_progress),
        )


#: A staged row: the session's serial, the record's sequence number (None for the
#: seed endpoints, which have none) and the record.
Row = tuple[int, int | None, Any]


@dataclasses.dataclass(slots=True)
class ResultBlock:
    """Test results of one session, as columns (from a columnar batch, or gathered
    from records): column name → list of values; a column left out holds its default."""

    sid: int
    project: str
    seqs: list[int]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.seqs)


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
    #: Rows of the tables records fill field by field, by table name.
    rows: dict[str, list[Row]] = dataclasses.field(default_factory=dict)
    #: Test results sent as records, by session, to be gathered into blocks.
    result_rows: dict[int, list[tuple[int | None, wire.TestResult]]] = dataclasses.field(
        default_factory=dict
    )
    #: Test results sent as columns.
    result_blocks: list[ResultBlock] = dataclasses.field(default_factory=list)
    #: The project (session product) of each session that has results here.
    projects: dict[int, str] = dataclasses.field(default_factory=dict)
    #: Sessions whose state must be folded again from all their patches, in order.
    refold: set[str] = dataclasses.field(default_factory=set)
    run_finishes: list[tuple[int, wire.RunFinish]] = dataclasses.field(default_factory=list)
    #: Serials given to new sessions before staging (a lake's, from PostgreSQL); a new
    #: session not named here takes the next free one after ``next_sid``.
    sids: dict[str, int] = dataclasses.field(default_factory=dict)

    # -- sessions --------------------------------------------------------------------

    def entry(self, key: str) -> SessionEntry:
        """The staged copy of a known session (raises if there is none)."""
        entry = self.sessions.get(key)
        if entry is None:
            committed = self.lookup(key)
            if committed is None:
                raise UnknownSessionError([key])
            entry = self.sessions[key] = committed.copy()
        return entry

    def new_sid(self, key: str) -> int:
        """The serial of a session starting in this transaction."""
        return self.sids.get(key, self.next_sid + len(self.new_sessions))

    def exists(self, key: str) -> bool:
        return key in self.sessions or self.lookup(key) is not None

    def add_row(self, table: str, row: Row) -> None:
        self.rows.setdefault(table, []).append(row)

    # -- requests --------------------------------------------------------------------

    def stage(
        self,
        records: Sequence[wire.Record],
        *,
        dedupe: bool,
        result_columns: Sequence[Any] = (),
    ) -> WriteResult:
        """Stage one request: its records, then its columnar results (if any).

        Raises before staging anything it cannot take."""
        from datacat_server.store.kinds import KINDS, stage_result_columns, stage_session_start

        self._check_known(records, result_columns, KINDS)
        accepted = duplicates = 0
        notes: list[str] = []
        now = self.now
        for index, record in enumerate(records):
            key = record.session_id
            if type(record) is wire.SessionStart:
                if self.exists(key):
                    duplicates += 1
                else:
                    stage_session_start(self, record, dedupe)
                    accepted += 1
                continue
            entry = self.entry(key)
            if dedupe:
                if not entry.seqs.add(record.seq):
                    duplicates += 1
                    continue
                seq: int | None = record.seq
            else:
                seq = None
            note = KINDS[type(record)].stage(self, entry, record, seq)
            if note is None:
                accepted += 1
            else:
                duplicates += 1
                if note:
                    notes.append(f"records[{index}]: {note}")
            entry.last_seen = entry.updated_at = now
            self.soft_dirty.add(key)
        for block in result_columns:
            new, old = stage_result_columns(self, self.entry(block.session_id), block)
            accepted += new
            duplicates += old
            self.soft_dirty.add(block.session_id)
        return WriteResult(accepted, duplicates, tuple(notes))

    def _check_known(
        self, records: Sequence[wire.Record], blocks: Sequence[Any], kinds: dict[type, Any]
    ) -> None:
        started = {r.session_id for r in records if type(r) is wire.SessionStart}
        named = {r.session_id for r in records} | {b.session_id for b in blocks}
        unknown = {key for key in named if key not in started and not self.exists(key)}
        if unknown:
            raise UnknownSessionRejected(unknown)
        for record in records:
            if type(record) not in kinds and type(record) is not wire.SessionStart:
                raise KindRejected(f"unknown record kind {type(record).__name__}")
