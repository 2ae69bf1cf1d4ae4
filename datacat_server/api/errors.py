"""How the server's own exceptions become HTTP answers: JSON bodies that say what is wrong."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
from litestar import Request, Response

from datacat_server.errors import (
    DiskFullError,
    InvalidInputError,
    StoreError,
    UnknownSessionError,
    WriterBusyError,
)
from datacat_server.store.health import classify

__all__ = ["EXCEPTION_HANDLERS"]

log = logging.getLogger("datacat.api")


def _answer(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> Response[dict[str, object]]:
    return Response({"status_code": status, "detail": detail}, status_code=status, headers=headers)


def _unknown_session(
    _: Request[Any, Any, Any], exc: UnknownSessionError
) -> Response[dict[str, object]]:
    return _answer(404, str(exc))


def _invalid(_: Request[Any, Any, Any], exc: InvalidInputError) -> Response[dict[str, object]]:
    return _answer(400, str(exc))


def _busy(_: Request[Any, Any, Any], exc: WriterBusyError) -> Response[dict[str, object]]:
    return _answer(503, str(exc), {"Retry-After": "1"})


def _store(_: Request[Any, Any, Any], exc: StoreError) -> Response[dict[str, object]]:
    log.error("storage error: %s", exc)
    wait = "30" if isinstance(exc, DiskFullError) else "5"
    return _answer(503, f"storage unavailable: {exc}", {"Retry-After": wait})


def _fatal(
    request: Request[Any, Any, Any], exc: duckdb.FatalException
) -> Response[dict[str, object]]:
    """A read found the database invalidated: say so, and let the writer reopen it."""
    error = classify(exc)
    request.app.state.store.health.note(error)
    return _store(request, error)


EXCEPTION_HANDLERS = {
    UnknownSessionError: _unknown_session,
    InvalidInputError: _invalid,
    WriterBusyError: _busy,
    StoreError: _store,
    duckdb.FatalException: _fatal,
}
