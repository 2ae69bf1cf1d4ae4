"""Column layouts of the base tables the writer appends to, as Arrow types.

The writer collects rows column by column and hands each table to DuckDB as one Arrow
table per transaction: several times faster than row-wise inserts (see FACTS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

__all__ = ["COLUMNS", "ColumnBuffer", "insert_sql"]

_TS = pa.timestamp("us")
_TEXT = pa.string()
_TEXT_LIST = pa.list_(pa.string())

#: Per table: column name → Arrow type. JSON and UUID columns travel as text and
#: are cast by the INSERT (see `insert_sql`).
COLUMNS: Mapping[str, Mapping[str, Any]] = {
    "sessions": {
        "sid": pa.int32(),
        "id": _TEXT,
        "name": _TEXT,
        "product": _TEXT,
        "version": _TEXT,
        "labels": pa.map_(pa.string(), pa.string()),
        "created_at": _TS,
        "updated_at": _TS,
        "ended_at": _TS,
        "state": _TEXT,
        "hung": pa.bool_(),
        "heartbeat_interval": pa.float64(),
        "last_seen": _TS,
        "in_progress": _TEXT,
    },
    "state_updates": {"sid": pa.int32(), "seq": pa.int64(), "ts": _TS, "patch": _TEXT},
    "event_log": {
        "sid": pa.int32(),
        "seq": pa.int64(),
        "ts": _TS,
        "name": _TEXT,
        "data": _TEXT,
    },
    "metric_log": {
        "sid": pa.int32(),
        "seq": pa.int64(),
        "ts": _TS,
        "name": _TEXT,
        "value": pa.float64(),
        "tags": _TEXT_LIST,
    },
    "tests": {
        "test_id": pa.int32(),
        "project": _TEXT,
        "nodeid": _TEXT,
        "file": _TEXT,
        "line": pa.int32(),
        "cls": _TEXT,
        "func": _TEXT,
        "param_id": _TEXT,
        "markers": _TEXT_LIST,
        "first_seen": _TS,
    },
    "results": {
        "sid": pa.int32(),
        "seq": pa.int64(),
        "test_id": pa.int32(),
        "subtest": _TEXT,
        "outcome": _TEXT,
        "phase": _TEXT,
        "started_at": _TS,
        "stopped_at": _TS,
        "duration": pa.float64(),
        "setup_duration": pa.float64(),
        "call_duration": pa.float64(),
        "teardown_duration": pa.float64(),
        "worker": _TEXT,
        "attempt": pa.int16(),
        "final": pa.bool_(),
        "cpu_time": pa.float64(),
        "rss_delta": pa.int64(),
    },
    "result_details": {
        "sid": pa.int32(),
        "seq": pa.int64(),
        "reason": _TEXT,
        "exc_type": _TEXT,
        "exc_message": _TEXT,
        "traceback": _TEXT,
        "stdout": _TEXT,
        "stderr": _TEXT,
        "log": _TEXT,
    },
    "runs": {
        "sid": pa.int32(),
        "project": _TEXT,
        "branch": _TEXT,
        "commit": _TEXT,
        "dirty": pa.bool_(),
        "ci_provider": _TEXT,
        "ci_url": _TEXT,
        "python_version": _TEXT,
        "python_implementation": _TEXT,
        "platform": _TEXT,
        "hostname": _TEXT,
        "pytest_version": _TEXT,
        "plugins": _TEXT_LIST,
        "args": _TEXT_LIST,
        "workers": pa.int32(),
        "started_at": _TS,
    },
}

_CASTS = {
    ("sessions", "id"): "UUID",
    ("sessions", "state"): "JSON",
    ("sessions", "in_progress"): "JSON",
    ("state_updates", "patch"): "JSON",
    ("event_log", "data"): "JSON",
    ("results", "outcome"): "outcome",
}


def insert_sql(table: str, source: str) -> str:
    """``INSERT INTO table (...) SELECT ... FROM source`` with the needed casts."""
    names = list(COLUMNS[table])
    exprs = []
    for name in names:
        cast = _CASTS.get((table, name))
        exprs.append(f'CAST("{name}" AS {cast})' if cast else f'"{name}"')
    cols = ", ".join(f'"{n}"' for n in names)
    return f"INSERT INTO {table} ({cols}) SELECT {', '.join(exprs)} FROM {source}"


class ColumnBuffer:
    """Rows for one table, gathered as tuples in `COLUMNS` order, turned into Arrow once."""

    __slots__ = ("_names", "rows", "table")

    def __init__(self, table: str) -> None:
        self.table = table
        self._names = tuple(COLUMNS[table])
        self.rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, **row: Any) -> None:
        """Add one row by column name; columns not given are NULL."""
        self.rows.append(tuple(row.get(name) for name in self._names))

    def to_arrow(self) -> Any:
        spec = COLUMNS[self.table]
        columns = zip(*self.rows, strict=True) if self.rows else ([] for _ in self._names)
        return pa.table(
            {
                name: pa.array(list(values), spec[name])
                for name, values in zip(self._names, columns, strict=True)
            }
        )
