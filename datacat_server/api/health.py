"""Liveness."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.di import NamedDependency

from datacat_server.store import Store

__all__ = ["health"]


class Health(msgspec.Struct, omit_defaults=True):
    #: ``ok``; ``degraded`` (writes are refused: the disk is full); ``failed`` (the
    #: database cannot be used until it is opened again: 503, restart or wait).
    status: str
    writer_queue: int
    #: Why it is not ``ok``.
    reason: str | None = None


@get(
    "/health",
    summary="Liveness",
    description="200 while the store works (``degraded`` when the disk is full: reads"
    " work, writes are refused); 503 when the database failed and must be opened"
    " again: the server retries that itself, a supervisor may restart it instead.",
    tags=["health"],
    opt={"public": True},
)
async def health(store: NamedDependency[Store]) -> Response[Health]:
    state = store.health
    if state.failed:
        body = Health("failed", store.writer.pending, state.failed)
        return Response(body, status_code=503)
    if state.reason:
        return Response(Health("degraded", store.writer.pending, state.reason))
    return Response(Health("ok", store.writer.pending))
