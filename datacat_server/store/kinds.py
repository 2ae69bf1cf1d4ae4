"""Record kinds: for each kind of wire record, the tables it feeds, its checks beyond
what those tables' descriptions imply, and how it is staged.

A stager applies one record to its session's staged entry and returns None when the
record changed something, ``""`` when it changed nothing (a repeat), or a sentence
saying why it was ignored (the client is told). Adding a kind: its wire struct in
`datacat_client.wire` (and in the `Record` union), a `RecordKind` here, and a table in
`tables.py` with its migration if it stores rows of its own (ARCHITECTURE.md, "Add a
record kind").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from datacat_client import wire
from datacat_server.store import tables
from datacat_server.store.merge import deep_merge
from datacat_server.store.seqset import SeqSet
from datacat_server.store.staging import (
    HUNG,
    RECOVERED,
    ResultBlock,
    SessionEntry,
    Staging,
)

__all__ = ["KINDS", "RecordKind", "stage_result_columns", "stage_session_start"]

Stager = Callable[[Staging, SessionEntry, Any, "int | None"], "str | None"]


@dataclasses.dataclass(frozen=True)
class RecordKind:
    """How the server takes one kind of record."""

    record: type[Any]
    stage: Stager
    #: Tables whose columns this kind's fields fill (the limits on its fields come from
    #: the descriptions of those columns, matched by field name).
    tables: tuple[tables.Table, ...] = ()


# -- sessions ----------------------------------------------------------------------------


def stage_session_start(staging: Staging, record: wire.SessionStart, dedupe: bool) -> None:
    """A new session (the caller made sure it does not exist yet)."""
    key = record.session_id
    entry = SessionEntry(
        sid=staging.new_sid(key),
        id=key,
        product=record.product,
        state={},
        ended_at=None,
        hung=False,
        hung_seq=-1,
        heartbeat_interval=record.heartbeat_interval or None,
        last_seen=staging.now,
        updated_at=staging.now,
        in_progress={},
        seqs=SeqSet([record.seq] if dedupe else []),
        has_run=False,
    )
    staging.sessions[key] = entry
    staging.new_sessions[key] = record
    if record.state:
        entry.state = deep_merge({}, record.state)
        seq = record.seq if dedupe else None
        entry.state_seq = -1 if seq is None else seq
        staging.add_row(tables.STATE_UPDATES.name, (entry.sid, seq, record))


def _end(
    staging: Staging, entry: SessionEntry, record: wire.SessionEnd, seq: int | None
) -> str | None:
    if entry.ended_at is not None:
        return ""
    entry.ended_at = record.timestamp
    entry.in_progress.clear()
    staging.hard_dirty.add(entry.id)
    return None


def _heartbeat(
    staging: Staging, entry: SessionEntry, record: wire.Heartbeat, seq: int | None
) -> str | None:
    if record.interval is not None:
        entry.heartbeat_interval = record.interval or None
    return None


# -- state, events, metrics -------------------------------------------------------------


def _state(
    staging: Staging, entry: SessionEntry, record: wire.StateUpdate, seq: int | None
) -> str | None:
    if seq is not None and seq < entry.state_seq:
        staging.refold.add(entry.id)  # arrived after a newer patch: order decides
    else:
        entry.state = deep_merge(entry.state, record.state)
        entry.state_seq = entry.state_seq if seq is None else seq
    staging.add_row(tables.STATE_UPDATES.name, (entry.sid, seq, record))
    staging.state_dirty.add(entry.id)
    staging.hard_dirty.add(entry.id)
    return None


def _event(
    staging: Staging, entry: SessionEntry, record: wire.Event, seq: int | None
) -> str | None:
    staging.add_row(tables.EVENT_LOG.name, (entry.sid, seq, record))
    if record.name in (HUNG, RECOVERED):
        # Sequence order decides, so a retried old batch cannot undo a newer state.
        order = entry.hung_seq + 1 if seq is None else seq
        if order > entry.hung_seq:
            entry.hung = record.name == HUNG
            entry.hung_seq = order
            staging.hard_dirty.add(entry.id)
    return None


def _metric(
    staging: Staging, entry: SessionEntry, record: wire.Metric, seq: int | None
) -> str | None:
    staging.add_row(tables.METRIC_LOG.name, (entry.sid, seq, record))
    return None


# -- tests and runs ---------------------------------------------------------------------


def _test_start(
    staging: Staging, entry: SessionEntry, record: wire.TestStart, seq: int | None
) -> str | None:
    current = entry.in_progress.get(record.nodeid)
    if current is None or current.get("seq", -1) <= (seq if seq is not None else 2**63):
        entry.in_progress[record.nodeid] = {
            "worker": record.worker,
            "since": record.timestamp,
            "seq": -1 if seq is None else seq,
        }
    return None


def _finish_tests(
    entry: SessionEntry, nodeids: list[str], seqs: list[int], subtests: list[Any] | None
) -> None:
    """Tests whose result arrived are no longer in progress (if started before it)."""
    in_progress = entry.in_progress
    if not in_progress:
        return
    for index, nodeid in enumerate(nodeids):
        started = in_progress.get(nodeid)
        if (
            started is not None
            and started.get("seq", -1) < seqs[index]
            and (subtests is None or subtests[index] is None)
        ):
            del in_progress[nodeid]


def _result(
    staging: Staging, entry: SessionEntry, record: wire.TestResult, seq: int | None
) -> str | None:
    staging.result_rows.setdefault(entry.sid, []).append((seq, record))
    staging.projects[entry.sid] = entry.product
    if record.subtest is None and record.nodeid in entry.in_progress:
        _finish_tests(entry, [record.nodeid], [2**63 if seq is None else seq], None)
    return None


def stage_result_columns(staging: Staging, entry: SessionEntry, block: Any) -> tuple[int, int]:
    """Stage a columnar block of one session's results; returns (stored, repeated)."""
    seqs: list[int] = block.seq
    fresh = entry.seqs.add_all(seqs)
    columns = {
        name: value
        for name in wire.ResultColumns.__struct_fields__
        if name not in ("session_id", "seq") and (value := getattr(block, name)) is not None
    }
    if fresh is not None:  # some were stored before: keep the others
        columns = {name: [values[i] for i in fresh] for name, values in columns.items()}
        seqs = [seqs[i] for i in fresh]
    if seqs:
        staging.result_blocks.append(ResultBlock(entry.sid, entry.product, seqs, columns))
        staging.projects[entry.sid] = entry.product
        _finish_tests(entry, columns["nodeid"], seqs, columns.get("subtest"))
        entry.last_seen = entry.updated_at = staging.now
    return len(seqs), len(block.seq) - len(seqs)


def _run_start(
    staging: Staging, entry: SessionEntry, record: wire.RunStart, seq: int | None
) -> str | None:
    if entry.has_run:
        return ""
    entry.has_run = True
    staging.add_row(tables.RUNS.name, (entry.sid, seq, record))
    return None


def _run_finish(
    staging: Staging, entry: SessionEntry, record: wire.RunFinish, seq: int | None
) -> str | None:
    if entry.run_finished:
        return "run_finish ignored: this run has finished already (a run finishes once)"
    entry.run_finished = True
    staging.run_finishes.append((entry.sid, record))
    return None


KINDS: dict[type, RecordKind] = {
    kind.record: kind
    for kind in (
        RecordKind(wire.SessionStart, lambda *_: None, (tables.SESSIONS, tables.STATE_UPDATES)),
        RecordKind(wire.StateUpdate, _state, (tables.STATE_UPDATES,)),
        RecordKind(wire.Event, _event, (tables.EVENT_LOG,)),
        RecordKind(wire.Metric, _metric, (tables.METRIC_LOG,)),
        RecordKind(wire.Heartbeat, _heartbeat),
        RecordKind(wire.TestStart, _test_start, (tables.TESTS, tables.RESULTS)),
        RecordKind(wire.TestResult, _result, (tables.TESTS, tables.RESULTS, tables.RESULT_DETAILS)),
        RecordKind(wire.RunStart, _run_start, (tables.RUNS,)),
        RecordKind(wire.RunFinish, _run_finish, (tables.RUNS,)),
        RecordKind(wire.SessionEnd, _end),
    )
}
