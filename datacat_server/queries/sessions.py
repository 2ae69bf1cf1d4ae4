"""Sessions as the seed service showed them: state, events and metrics in logged order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import duckdb
import msgspec

from datacat_server.queries._common import (
    decode_json,
    iso,
    parse_session_id,
    select_list,
    structs,
)
from datacat_server.queries._common import rows as rows_by_name
from datacat_server.queries.state_filter import state_filter

__all__ = [
    "STATUSES",
    "EventOut",
    "MetricOut",
    "SessionDetail",
    "SessionSummary",
    "SessionView",
    "StatePatch",
    "get_session",
    "list_sessions",
    "problem_sessions",
    "problems_elsewhere",
    "session_json",
    "session_row",
    "session_view",
    "sessions_json",
    "state_history",
]


class EventOut(msgspec.Struct):
    timestamp: str
    name: str
    data: Any


class MetricOut(msgspec.Struct):
    timestamp: str
    name: str
    value: float
    tags: list[str]


class SessionDetail(msgspec.Struct):
    """One session, in the seed's shape plus the fields DataCat added."""

    id: str
    name: str
    #: What the session belongs to (a pytest run's project; the seed's ``product``).
    project: str = msgspec.field(name="product")
    version: str
    labels: dict[str, str]
    created_at: str
    updated_at: str
    ended_at: str | None
    active: bool
    #: ``running``, ``ended``, ``hung`` or ``crashed``.
    status: str
    state: dict[str, Any]
    #: Tests started and not finished, by xdist worker (``""`` without xdist).
    in_progress: dict[str, Any]
    events: list[EventOut]
    metrics: list[MetricOut]


_SESSION_COLUMNS = (
    "sid, id::VARCHAR AS id, name, product, version, labels, created_at, updated_at,"
    " ended_at, status, state, in_progress"
)


def _detail(row: dict[str, Any], events: list[EventOut], metrics: list[MetricOut]) -> SessionDetail:
    """A session from its `_SESSION_COLUMNS`."""
    return SessionDetail(
        id=row["id"],
        name=row["name"],
        project=row["product"],
        version=row["version"],
        labels=dict(row["labels"] or {}),
        created_at=iso(row["created_at"]) or "",
        updated_at=iso(row["updated_at"]) or "",
        ended_at=iso(row["ended_at"]),
        active=row["ended_at"] is None,
        status=row["status"],
        state=decode_json(row["state"]) or {},
        in_progress=decode_json(row["in_progress"]) or {},
        events=events,
        metrics=metrics,
    )


def _event(row: dict[str, Any]) -> EventOut:
    return EventOut(iso(row["timestamp"]) or "", row["name"], decode_json(row["data"]))


def _metric(row: dict[str, Any]) -> MetricOut:
    return MetricOut(iso(row["timestamp"]) or "", row["name"], row["value"], list(row["tags"]))


def _events_of(cur: duckdb.DuckDBPyConnection, sids: list[int]) -> dict[int, list[EventOut]]:
    rows = rows_by_name(
        cur.execute(
            "SELECT sid, timestamp, name, data FROM events WHERE sid IN (SELECT unnest($1))"
            " ORDER BY sid, timestamp, seq NULLS LAST",
            [sids],
        )
    )
    out: dict[int, list[EventOut]] = defaultdict(list)
    for row in rows:
        out[row["sid"]].append(_event(row))
    return out


def _metrics_of(cur: duckdb.DuckDBPyConnection, sids: list[int]) -> dict[int, list[MetricOut]]:
    rows = rows_by_name(
        cur.execute(
            "SELECT sid, timestamp, name, value, tags FROM metrics"
            " WHERE sid IN (SELECT unnest($1)) ORDER BY sid, timestamp, seq NULLS LAST",
            [sids],
        )
    )
    out: dict[int, list[MetricOut]] = defaultdict(list)
    for row in rows:
        out[row["sid"]].append(_metric(row))
    return out


def get_session(cur: duckdb.DuckDBPyConnection, session_id: str) -> SessionDetail | None:
    """One session with its events and metrics, or None if there is no such session."""
    row = session_row(cur, session_id)
    if row is None:
        return None
    sid = row["sid"]
    return _detail(row, _events_of(cur, [sid]).get(sid, []), _metrics_of(cur, [sid]).get(sid, []))


class SessionView(msgspec.Struct):
    """A session for a page: its latest events and metric values, and how many in all.

    A pytest run of 100,000 tests is a session of 100,000 events and 300,000 metric
    values; a page (which refreshes itself while the run goes on) reads the tail.
    """

    session: SessionDetail
    #: Events and metric values in the session, of which ``session`` holds the latest.
    events_total: int
    metric_totals: dict[str, int]


def session_view(
    cur: duckdb.DuckDBPyConnection, session_id: str, *, events: int, values_per_metric: int
) -> SessionView | None:
    """One session with its latest ``events`` events and its latest ``values_per_metric``
    values of each metric (oldest first), or None if there is no such session."""
    row = session_row(cur, session_id)
    if row is None:
        return None
    event_rows = rows_by_name(
        cur.execute(
            "SELECT timestamp, name, data, count(*) OVER () AS total FROM events WHERE sid = ?"
            " ORDER BY timestamp DESC, seq DESC NULLS FIRST LIMIT ?",
            [row["sid"], events],
        )
    )
    metric_rows = rows_by_name(
        cur.execute(
            "SELECT timestamp, name, value, tags, count(*) OVER (PARTITION BY name) AS total"
            " FROM metrics WHERE sid = ? QUALIFY row_number() OVER"
            " (PARTITION BY name ORDER BY timestamp DESC, seq DESC NULLS FIRST) <= ?"
            " ORDER BY timestamp, seq NULLS LAST",
            [row["sid"], values_per_metric],
        )
    )
    return SessionView(
        session=_detail(
            row, [_event(e) for e in reversed(event_rows)], [_metric(m) for m in metric_rows]
        ),
        events_total=event_rows[0]["total"] if event_rows else 0,
        metric_totals={m["name"]: m["total"] for m in metric_rows},
    )


#: Events and metrics are encoded this many at a time, so a session of a million
#: events streams in bounded memory.
STREAM_CHUNK = 5_000


class _RawEvent(msgspec.Struct):
    timestamp: str
    name: str
    data: msgspec.Raw


_encode = msgspec.json.Encoder().encode
_NULL = msgspec.Raw(b"null")


def _json_list(cur: duckdb.DuckDBPyConnection, sql: str, sid: int, make: Any) -> Iterator[bytes]:
    """The rows of ``sql`` (one session's events or metrics, in order) as the items of
    a JSON list, a chunk at a time, comma-separated."""
    cur.execute(sql, [sid])
    names = [d[0] for d in cur.description or ()]
    first = True
    while rows := cur.fetchmany(STREAM_CHUNK):
        body = _encode([make(dict(zip(names, row, strict=True))) for row in rows])[1:-1]
        if body:
            yield body if first else b"," + body
            first = False


_EVENTS_SQL = (
    "SELECT timestamp, name, data FROM events WHERE sid = ? ORDER BY timestamp, seq NULLS LAST"
)
_METRICS_SQL = (
    "SELECT timestamp, name, value, tags FROM metrics WHERE sid = ?"
    " ORDER BY timestamp, seq NULLS LAST"
)


def _raw_event(row: dict[str, Any]) -> _RawEvent:
    # The stored JSON text goes out as it is: no parse and re-encode per event.
    data = msgspec.Raw(row["data"].encode()) if row["data"] is not None else _NULL
    return _RawEvent(iso(row["timestamp"]) or "", row["name"], data)


def session_json(cur: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> Iterator[bytes]:
    """One session as `SessionDetail`'s JSON, in chunks (``cur`` is the generator's
    own: it may be resumed on another thread)."""
    head = _encode(_detail(row, [], []))
    # The head ends with its two empty lists: `events` and `metrics`, in that order.
    tail = b'"events":[],"metrics":[]}'
    assert head.endswith(tail)
    yield head[: -len(tail)] + b'"events":['
    yield from _json_list(cur, _EVENTS_SQL, row["sid"], _raw_event)
    yield b'],"metrics":['
    yield from _json_list(cur, _METRICS_SQL, row["sid"], _metric)
    yield b"]}"


def session_row(cur: duckdb.DuckDBPyConnection, session_id: str) -> dict[str, Any] | None:
    """The stored fields of one session by name (for `session_json`), or None."""
    key = parse_session_id(session_id)
    if key is None:
        return None
    rows = rows_by_name(
        cur.execute(
            f"SELECT {_SESSION_COLUMNS} FROM session_status WHERE id = CAST(? AS UUID)", [key]
        )
    )
    return rows[0] if rows else None


def sessions_json(
    cur: duckdb.DuckDBPyConnection,
    *,
    limit: int | None = None,
    offset: int = 0,
    chunk: int = 200,
) -> Iterator[bytes]:
    """Every session oldest first (a page of them with ``limit``/``offset``), as a JSON
    list of `SessionDetail`, in chunks: sessions a page at a time, each session's events
    and metrics `STREAM_CHUNK` at a time. ``cur`` is the generator's own."""
    remaining = limit
    position = offset
    first = True
    yield b"["
    while remaining is None or remaining > 0:
        size = chunk if remaining is None else min(chunk, remaining)
        rows = rows_by_name(
            cur.execute(
                f"SELECT {_SESSION_COLUMNS} FROM session_status ORDER BY sid LIMIT ? OFFSET ?",
                [size, position],
            )
        )
        for row in rows:
            if not first:
                yield b","
            first = False
            yield from session_json(cur, row)
        position += len(rows)
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < size:
            break
    yield b"]"


class SessionSummary(msgspec.Struct):
    """A session in a list: who, what, and how it is doing."""

    id: str
    name: str
    #: What the session belongs to (a pytest run's project; the seed's ``product``).
    project: str = msgspec.field(name="product")
    version: str
    labels: dict[str, str]
    status: str
    created_at: str
    updated_at: str
    ended_at: str | None


class StatePatch(msgspec.Struct):
    timestamp: str
    patch: dict[str, Any]


STATUSES = ("running", "ended", "hung", "crashed")

#: `SessionSummary`'s fields from ``session_status`` (s).
_SUMMARY_COLUMNS = select_list(SessionSummary, "s", {"id": "s.id::VARCHAR", "project": "s.product"})
_SUMMARY_CONVERT: dict[str, Any] = {
    "labels": lambda v: dict(v or {}),
    "created_at": lambda v: iso(v) or "",
    "updated_at": lambda v: iso(v) or "",
    "ended_at": iso,
}


def list_sessions(
    cur: duckdb.DuckDBPyConnection,
    *,
    status: str | None = None,
    name: str | None = None,
    label: str | None = None,
    path: str | None = None,
    value: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[SessionSummary]:
    """Sessions, newest first.

    ``name`` matches the name or the product (case-insensitive, part of it);
    ``label`` is ``key=value`` (or ``key`` alone: has the label); ``path`` and ``value``
    keep sessions whose current state has ``value`` at the dot ``path``.
    """
    where, params = ["TRUE"], []
    if status:
        where.append("s.status = ?")
        params.append(status)
    if name:
        where.append("(s.name ILIKE ? OR s.product ILIKE ?)")
        params += [f"%{name}%", f"%{name}%"]
    if label:
        key, sep, wanted = label.partition("=")
        if sep:
            where.append("s.labels[?] = ?")
            params += [key, wanted]
        else:
            where.append("map_contains(s.labels, ?)")
            params.append(key)
    if path is not None and value is not None:
        clause, clause_params = state_filter("current", path, value)
        where.append(clause)
        params += clause_params
    found = cur.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM session_status s"
        f" WHERE {' AND '.join(where)} ORDER BY s.sid DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return structs(found, SessionSummary, _SUMMARY_CONVERT)


#: Sessions in trouble, and what a session belongs to: a test run's session to its
#: run's project, any other program's to the project it named (the ``product`` column).
_PROBLEMS = """
    FROM session_status s LEFT JOIN runs u USING (sid)
    WHERE s.ended_at IS NULL AND s.status IN ('hung', 'crashed')
"""
_OWNER = "coalesce(u.project, s.product)"


def problem_sessions(
    cur: duckdb.DuckDBPyConnection, project: str | None, *, limit: int = 10
) -> list[SessionSummary]:
    """Sessions that hang or crashed, the latest heard of first: those of ``project``
    (a test run's session belongs to its run's project, another program's to the one
    it named), or of every project when it is None."""
    where, params = ("TRUE", []) if project is None else (f"{_OWNER} = ?", [project])
    found = cur.execute(
        f"SELECT {_SUMMARY_COLUMNS} {_PROBLEMS} AND {where}"
        " ORDER BY s.updated_at DESC, s.sid DESC LIMIT ?",
        [*params, limit],
    )
    return structs(found, SessionSummary, _SUMMARY_CONVERT)


def problems_elsewhere(cur: duckdb.DuckDBPyConnection, project: str | None) -> dict[str, int]:
    """How many sessions outside ``project`` hang, and how many crashed (none when it
    is None): ``{"hung": n, "crashed": m}``, the statuses with none left out."""
    if project is None:
        return {}
    found = cur.execute(
        f"SELECT s.status::VARCHAR AS status, count(*) AS n {_PROBLEMS}"
        f" AND {_OWNER} IS DISTINCT FROM ? GROUP BY ALL",
        [project],
    ).fetchall()
    counts = dict(found)
    return {status: int(counts[status]) for status in ("hung", "crashed") if status in counts}


def state_history(cur: duckdb.DuckDBPyConnection, session_id: str) -> list[StatePatch]:
    """Every state patch of a session, in the order it was applied."""
    key = parse_session_id(session_id)
    if key is None:
        return []
    rows = cur.execute(
        "SELECT u.ts, u.patch FROM state_updates u JOIN sessions s USING (sid)"
        " WHERE s.id = CAST(? AS UUID) ORDER BY u.seq NULLS LAST, u.ts",
        [key],
    ).fetchall()
    return [
        StatePatch(timestamp=iso(ts) or "", patch=decode_json(patch) or {}) for ts, patch in rows
    ]
