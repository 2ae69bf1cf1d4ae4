"""Liveness, and the state of the SQL workers."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.di import NamedDependency

from datacat_server.store import Store

__all__ = ["Health", "SqlHealth", "health"]


class SqlHealth(msgspec.Struct):
    """The SQL pool: ``idle`` (no query yet, no worker started), ``ok``, ``degraded``
    (fewer workers than configured, being replaced) or ``down`` (none can start)."""

    status: str
    workers: int
    size: int
    busy: int
    queued: int
    restarts: int
    #: Seconds since the data the workers read was copied; None before the first query.
    snapshot_age: float | None = None
    snapshot_seconds: float | None = None
    refresh_interval: float | None = None


class Health(msgspec.Struct):
    #: ``ok`` while the server takes data; a SQL pool that is down does not change it.
    status: str
    writer_queue: int
    sql: SqlHealth | None = None


@get("/health", summary="Liveness", tags=["health"], opt={"public": True})
async def health(store: NamedDependency[Store], state: State) -> Health:
    pool = getattr(state, "sql", None)
    sql = msgspec.convert(pool.describe(), SqlHealth) if pool is not None else None
    return Health(status="ok", writer_queue=store.writer.pending, sql=sql)
