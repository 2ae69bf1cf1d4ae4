"""Staged rows → Arrow tables → one insert per table.

The writer hands DuckDB each table as one Arrow table per transaction: measured here
several times faster than row-wise inserts. Columns are built with one comprehension
each (cheaper in CPython than a tuple per row), typed exactly as the table's columns
and in its order: measured here, an INSERT that converts (timestamps from seconds, a
sum of durations) costs ~1.5 ms more per statement than one that copies, which at a
few statements per batch is a third of the writer's time. Text bound for JSON, UUID
and ENUM columns is cast by the INSERT itself, which is cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from datacat_client import wire
from datacat_server.store.nodeids import split_nodeid
from datacat_server.store.staging import Row, SessionEntry

__all__ = [
    "event_table",
    "metric_table",
    "result_tables",
    "run_table",
    "session_table",
    "session_update_sql",
    "session_update_table",
    "state_table",
    "test_table",
]

_encode = msgspec.json.Encoder().encode
_F64 = pa.float64()
_I32 = pa.int32()
_I64 = pa.int64()
_TEXT = pa.string()
_TEXT_LIST = pa.list_(pa.string())
_TS = pa.timestamp("us")


def _timestamps(seconds: Iterable[float | None]) -> Any:
    """Unix seconds as a TIMESTAMP column (UTC, microseconds)."""
    return pa.array([None if s is None else round(s * 1_000_000) for s in seconds], _TS)


def _json_text(value: Any) -> str:
    return _encode(value).decode()


def session_table(entries: Sequence[SessionEntry], starts: Sequence[wire.SessionStart]) -> Any:
    return pa.table(
        {
            "sid": pa.array([e.sid for e in entries], _I32),
            "id": pa.array([e.id for e in entries], _TEXT),
            "name": pa.array([s.name for s in starts], _TEXT),
            "product": pa.array([e.product for e in entries], _TEXT),
            "version": pa.array([s.version for s in starts], _TEXT),
            "labels": pa.array(
                [list(s.labels.items()) for s in starts], pa.map_(pa.string(), pa.string())
            ),
            "created_at": _timestamps(s.timestamp for s in starts),
            "updated_at": _timestamps(e.updated_at for e in entries),
            "ended_at": _timestamps(e.ended_at for e in entries),
            "state": pa.array([_json_text(e.state) for e in entries], _TEXT),
            "hung": pa.array([e.hung for e in entries], pa.bool_()),
            "heartbeat_interval": pa.array([e.heartbeat_interval for e in entries], _F64),
            "last_seen": _timestamps(e.last_seen for e in entries),
            "in_progress": pa.array([_json_text(e.in_progress) for e in entries], _TEXT),
        }
    )


def session_update_table(entries: Sequence[SessionEntry], *, with_state: bool) -> Any:
    columns = {
        "sid": pa.array([e.sid for e in entries], _I32),
        "ended_at": _timestamps(e.ended_at for e in entries),
        "hung": pa.array([e.hung for e in entries], pa.bool_()),
        "heartbeat_interval": pa.array([e.heartbeat_interval for e in entries], _F64),
        "last_seen": _timestamps(e.last_seen for e in entries),
        "updated_at": _timestamps(e.updated_at for e in entries),
        "in_progress": pa.array([_json_text(e.in_progress) for e in entries], _TEXT),
    }
    if with_state:
        columns["state"] = pa.array([_json_text(e.state) for e in entries], _TEXT)
    return pa.table(columns)


def session_update_sql(*, with_state: bool) -> str:
    state = "state = CAST(u.state AS JSON), " if with_state else ""
    return (
        f"UPDATE sessions SET {state}ended_at = u.ended_at, hung = u.hung,"
        " heartbeat_interval = u.heartbeat_interval, last_seen = u.last_seen,"
        " updated_at = u.updated_at, in_progress = CAST(u.in_progress AS JSON)"
        " FROM batch u WHERE sessions.sid = u.sid"
    )


def _base(rows: Sequence[Row]) -> dict[str, Any]:
    return {
        "sid": pa.array([r[0] for r in rows], _I32),
        "seq": pa.array([r[1] for r in rows], _I64),
        "ts": _timestamps(r[2].timestamp for r in rows),
    }


def state_table(rows: Sequence[Row]) -> Any:
    return pa.table(
        {**_base(rows), "patch": pa.array([_json_text(r[2].state) for r in rows], _TEXT)}
    )


def event_table(rows: Sequence[Row]) -> Any:
    return pa.table(
        {
            **_base(rows),
            "name": pa.array([r[2].name for r in rows], _TEXT),
            "data": pa.array([_json_text(r[2].data) for r in rows], _TEXT),
        }
    )


def metric_table(rows: Sequence[Row]) -> Any:
    return pa.table(
        {
            **_base(rows),
            "name": pa.array([r[2].name for r in rows], _TEXT),
            "value": pa.array([r[2].value for r in rows], _F64),
            "tags": pa.array([r[2].tags for r in rows], _TEXT_LIST),
        }
    )


def test_table(new_tests: Mapping[tuple[str, str], tuple[int, wire.TestResult]], now: float) -> Any:
    """New rows of ``tests``. Parts a result leaves out are read off its node id."""
    items = list(new_tests.items())
    records = [record for _, (_, record) in items]
    parts = [split_nodeid(key[1]) for key, _ in items]
    return pa.table(
        {
            "test_id": pa.array([test_id for _, (test_id, _) in items], _I32),
            "project": pa.array([key[0] for key, _ in items], _TEXT),
            "nodeid": pa.array([key[1] for key, _ in items], _TEXT),
            "file": pa.array(
                [r.file or p.file or None for r, p in zip(records, parts, strict=True)], _TEXT
            ),
            "line": pa.array([r.line for r in records], _I32),
            "cls": pa.array(
                [r.cls or p.cls or None for r, p in zip(records, parts, strict=True)], _TEXT
            ),
            "func": pa.array(
                [r.func or p.func or None for r, p in zip(records, parts, strict=True)], _TEXT
            ),
            "param_id": pa.array(
                [r.param_id or p.param_id or None for r, p in zip(records, parts, strict=True)],
                _TEXT,
            ),
            "markers": pa.array([r.markers for r in records], _TEXT_LIST),
            "first_seen": _timestamps([now] * len(records)),
        }
    )


def _has_details(r: wire.TestResult) -> bool:
    return not (
        r.reason is None
        and r.exc_type is None
        and r.exc_message is None
        and r.traceback is None
        and r.stdout is None
        and r.stderr is None
        and r.log is None
    )


def result_tables(
    rows: Sequence[tuple[int, int | None, str, wire.TestResult]],
    test_ids: Mapping[tuple[str, str], int],
) -> tuple[Any, Any | None]:
    """The ``results`` table and, if any result carries text, ``result_details``."""
    recs = [row[3] for row in rows]
    results = pa.table(
        {
            "sid": pa.array([row[0] for row in rows], _I32),
            "seq": pa.array([row[1] for row in rows], _I64),
            "test_id": pa.array([test_ids[row[2], row[3].nodeid] for row in rows], _I32),
            "subtest": pa.array([r.subtest for r in recs], _TEXT),
            "outcome": pa.array([r.outcome for r in recs], _TEXT),
            "phase": pa.array([r.phase for r in recs], _TEXT),
            "started_at": _timestamps(r.started_at for r in recs),
            "stopped_at": _timestamps(r.stopped_at for r in recs),
            "duration": pa.array(
                [r.setup_duration + r.call_duration + r.teardown_duration for r in recs], _F64
            ),
            "setup_duration": pa.array([r.setup_duration for r in recs], _F64),
            "call_duration": pa.array([r.call_duration for r in recs], _F64),
            "teardown_duration": pa.array([r.teardown_duration for r in recs], _F64),
            "worker": pa.array([r.worker for r in recs], _TEXT),
            "attempt": pa.array([r.attempt for r in recs], pa.int16()),
            "final": pa.array([r.final for r in recs], pa.bool_()),
            "cpu_time": pa.array([r.cpu_time for r in recs], _F64),
            "rss_delta": pa.array([r.rss_delta for r in recs], _I64),
        }
    )
    detailed = [row for row in rows if _has_details(row[3])]
    if not detailed:
        return results, None
    d = [row[3] for row in detailed]
    details = pa.table(
        {
            "sid": pa.array([row[0] for row in detailed], _I32),
            "seq": pa.array([row[1] for row in detailed], _I64),
            "reason": pa.array([r.reason for r in d], _TEXT),
            "exc_type": pa.array([r.exc_type for r in d], _TEXT),
            "exc_message": pa.array([r.exc_message for r in d], _TEXT),
            "traceback": pa.array([r.traceback for r in d], _TEXT),
            "stdout": pa.array([r.stdout for r in d], _TEXT),
            "stderr": pa.array([r.stderr for r in d], _TEXT),
            "log": pa.array([r.log for r in d], _TEXT),
        }
    )
    return results, details


def run_table(rows: Sequence[tuple[int, wire.RunStart]]) -> Any:
    runs = [r for _, r in rows]
    return pa.table(
        {
            "sid": pa.array([sid for sid, _ in rows], _I32),
            "project": pa.array([r.project for r in runs], _TEXT),
            "branch": pa.array([r.branch for r in runs], _TEXT),
            "commit": pa.array([r.commit for r in runs], _TEXT),
            "dirty": pa.array([r.dirty for r in runs], pa.bool_()),
            "ci_provider": pa.array([r.ci_provider for r in runs], _TEXT),
            "ci_url": pa.array([r.ci_url for r in runs], _TEXT),
            "python_version": pa.array([r.python_version for r in runs], _TEXT),
            "python_implementation": pa.array([r.python_implementation for r in runs], _TEXT),
            "platform": pa.array([r.platform for r in runs], _TEXT),
            "hostname": pa.array([r.hostname for r in runs], _TEXT),
            "pytest_version": pa.array([r.pytest_version for r in runs], _TEXT),
            "plugins": pa.array([r.plugins for r in runs], _TEXT_LIST),
            "args": pa.array([r.args for r in runs], _TEXT_LIST),
            "workers": pa.array([r.workers for r in runs], _I32),
            "started_at": _timestamps(r.timestamp for r in runs),
            "finished_at": pa.nulls(len(runs), _TS),
            "exit_status": pa.nulls(len(runs), _I32),
            "status": pa.nulls(len(runs), _TEXT),
            "reason": pa.nulls(len(runs), _TEXT),
            "counts": pa.nulls(len(runs), _TEXT),
            "duration": pa.nulls(len(runs), _F64),
        }
    )
