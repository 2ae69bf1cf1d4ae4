"""Liveness, and the state of the SQL workers."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency

from datacat_server.store import StoreBase

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


class Health(msgspec.Struct, omit_defaults=True):
    #: ``ok``; ``degraded`` (writes are refused: the disk is full); ``failed`` (the
    #: database cannot be used until it is opened again: 503, restart or wait). A SQL
    #: pool that is down does not change it.
    status: str
    writer_queue: int
    #: Why it is not ``ok``.
    reason: str | None = None
    sql: SqlHealth | None = None


@get(
    "/health",
    summary="Liveness",
    description="200 while the store works (``degraded`` when the disk is full: reads"
    " work, writes are refused); 503 when the database failed and must be opened"
    " again: the server retries that itself, a supervisor may restart it instead. The"
    " SQL pool's state is reported beside it.",
    tags=["health"],
    opt={"public": True},
)
async def health(store: NamedDependency[StoreBase], state: State) -> Response[Health]:
    pool = getattr(state, "sql", None)
    sql = msgspec.convert(pool.describe(), SqlHealth) if pool is not None else None
    failing = store.health
    if failing.failed:
        body = Health("failed", store.writer.pending, failing.failed, sql)
        return Response(body, status_code=503)
    if failing.reason:
        return Response(Health("degraded", store.writer.pending, failing.reason, sql))
    return Response(Health("ok", store.writer.pending, sql=sql))
