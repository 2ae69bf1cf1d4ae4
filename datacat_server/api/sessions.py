"""The seed service's session endpoints, with its paths and JSON shapes, plus heartbeats.

A client written for the original Go service works unchanged against these. They write
one record per request, synchronously; the batched ``POST /api/ingest`` is what the
DataCat client uses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import duckdb
import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Stream

from datacat_client import wire
from datacat_server.api.explore import SessionQueries
from datacat_server.api.paging import Offset
from datacat_server.errors import InvalidInputError
from datacat_server.limits import check_records
from datacat_server.queries._common import parse_session_id
from datacat_server.queries.sessions import (
    SessionDetail,
    session_json,
    session_row,
    sessions_json,
)
from datacat_server.settings import Settings
from datacat_server.store import StoreBase

__all__ = ["DataController", "SessionController"]


def _closing(cur: duckdb.DuckDBPyConnection, chunks: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from chunks
    finally:
        cur.close()


class SessionCreate(msgspec.Struct, kw_only=True):
    """Optional body of ``POST /api/sessions``."""

    name: str = ""
    product: str = ""
    version: str = ""
    labels: dict[str, str] = {}
    state: dict[str, Any] = {}
    #: Choose the session's UUID (otherwise the server picks one).
    id: wire.SessionId | None = None
    heartbeat_interval: wire.NonNegativeFloat | None = None


class SessionCreated(msgspec.Struct):
    session_id: str


class Ok(msgspec.Struct):
    status: str = "ok"


class EventIn(msgspec.Struct):
    name: wire.Name
    data: Any = None


class MetricIn(msgspec.Struct):
    name: wire.Name
    value: wire.FiniteFloat
    #: A list of strings, as the seed sent them; a mapping is stored as ``key=value``.
    tags: list[str] | dict[str, str] = []
    #: What the value counts (``ms``, ``bytes``); ``gauge`` (a level) or ``counter``
    #: (a running total, charted as a rate).
    unit: str = ""
    kind: wire.MetricKind = "gauge"


class HeartbeatIn(msgspec.Struct):
    #: Seconds until the next heartbeat at the latest; silence for longer than this
    #: times the server's grace factor marks the session ``crashed``.
    interval: wire.NonNegativeFloat | None = None


def _known_id(session_id: str) -> str:
    key = parse_session_id(session_id)
    if key is None:
        raise NotFoundException(f"unknown session: {session_id}")
    return key


_OK = Ok()


async def _write(store: StoreBase, settings: Settings, record: wire.Record) -> None:
    """Check one record against the limits, then store it (the seed's endpoints have no
    sequence numbers: no deduplication)."""
    check_records([record], settings.limits)
    await store.write([record], dedupe=False)


class SessionController(SessionQueries):
    path = "/api/sessions"
    tags = ("sessions (seed API)",)

    @post("/", status_code=200, summary="Start a session")
    async def create(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        data: JSONBody[SessionCreate | None] = None,
    ) -> SessionCreated:
        body = data or SessionCreate()
        if body.id:
            chosen = parse_session_id(body.id)
            if chosen is None:
                raise InvalidInputError(f"id is not a UUID: {body.id[:40]!r}")
            key = chosen
        else:
            key = str(uuid.uuid4())
        record = wire.SessionStart(
            session_id=key,
            seq=0,
            timestamp=time.time(),
            name=body.name,
            product=body.product,
            version=body.version,
            labels=body.labels,
            state=body.state,
            heartbeat_interval=body.heartbeat_interval,
        )
        await _write(store, settings, record)
        return SessionCreated(session_id=key)

    @get(
        "/{session_id:str}",
        sync_to_thread=True,
        summary="A session with its events and metrics",
        description="Streamed: a session of a million events costs the server a chunk of"
        " them at a time, not the whole answer in memory.",
        responses={200: ResponseSpec(SessionDetail, description="The session")},
    )
    def detail(self, store: NamedDependency[StoreBase], session_id: FromPath[str]) -> Stream:
        cur = store.new_cursor()
        row = session_row(cur, session_id)
        if row is None:
            cur.close()
            raise NotFoundException(f"unknown session: {session_id}")
        return Stream(_closing(cur, session_json(cur, row)), media_type="application/json")

    @post("/{session_id:str}/state", status_code=200, summary="Deep-merge into the state")
    async def update_state(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        session_id: FromPath[str],
        data: JSONBody[dict[str, Any]],
    ) -> Ok:
        key = _known_id(session_id)
        await _write(
            store,
            settings,
            wire.StateUpdate(session_id=key, seq=0, timestamp=time.time(), state=data),
        )
        return _OK

    @post("/{session_id:str}/events", status_code=200, summary="Log an event")
    async def log_event(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        session_id: FromPath[str],
        data: JSONBody[EventIn],
    ) -> Ok:
        key = _known_id(session_id)
        record = wire.Event(
            session_id=key, seq=0, timestamp=time.time(), name=data.name, data=data.data
        )
        await _write(store, settings, record)
        return _OK

    @post("/{session_id:str}/metrics", status_code=200, summary="Log a metric")
    async def log_metric(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        session_id: FromPath[str],
        data: JSONBody[MetricIn],
    ) -> Ok:
        key = _known_id(session_id)
        tags = (
            [f"{k}={v}" for k, v in data.tags.items()] if isinstance(data.tags, dict) else data.tags
        )
        record = wire.Metric(
            session_id=key,
            seq=0,
            timestamp=time.time(),
            name=data.name,
            value=data.value,
            tags=tags,
            unit=data.unit,
            kind=data.kind,
        )
        await _write(store, settings, record)
        return _OK

    @post("/{session_id:str}/heartbeat", status_code=200, summary="Say the client is alive")
    async def heartbeat(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        session_id: FromPath[str],
        data: JSONBody[HeartbeatIn | None] = None,
    ) -> Ok:
        key = _known_id(session_id)
        interval = data.interval if data else None
        record = wire.Heartbeat(session_id=key, seq=0, timestamp=time.time(), interval=interval)
        await _write(store, settings, record)
        return _OK

    @post("/{session_id:str}/end", status_code=200, summary="End a session")
    async def end(
        self,
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        session_id: FromPath[str],
    ) -> Ok:
        key = _known_id(session_id)
        await _write(store, settings, wire.SessionEnd(session_id=key, seq=0, timestamp=time.time()))
        return _OK


class DataController(Controller):
    path = "/api"
    tags = ("sessions (seed API)",)

    # The original service's clients (Python and Go) read the Grafana path; both answer.
    @get(
        ["/data/sessions", "/grafana/sessions"],
        summary="Every session with its state, events and metrics",
        description="Oldest first, streamed. `limit`/`offset` page through them."
        " `/api/grafana/sessions` is the same, for the original service's clients.",
    )
    async def all_sessions(
        self,
        store: NamedDependency[StoreBase],
        limit: Annotated[int | None, QueryParameter(ge=0, le=1_000_000)] = None,
        offset: Offset = 0,
    ) -> Stream:
        # A sync iterator: Litestar advances it on worker threads, off the loop; it has
        # a cursor of its own, which it closes when done (or when the client leaves).
        cur = store.new_cursor()
        chunks = sessions_json(cur, limit=limit, offset=offset)
        return Stream(_closing(cur, chunks), media_type="application/json")
