"""Liveness."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.di import NamedDependency

from datacat_server.store import Store

__all__ = ["health"]


class Health(msgspec.Struct):
    status: str
    writer_queue: int


@get("/health", summary="Liveness", tags=["health"], opt={"public": True})
async def health(store: NamedDependency[Store]) -> Health:
    return Health(status="ok", writer_queue=store.writer.pending)
