"""Read-only SQL over the store, as JSON, CSV or Parquet.

The statement runs in a SQL worker process over a snapshot of the data
(`datacat_server.sqlpool`); the handlers only await the worker, so no thread is held
while a query runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import JSONBody, QueryParameter

from datacat_server.sqlpool.pool import SqlAnswer, SqlBusyError, SqlPool, SqlUnavailableError

__all__ = ["SqlController", "SqlResult", "sql_pool"]

_FORMAT = QueryParameter(pattern="^(json|csv|parquet)$", description="json, csv or parquet")


class SqlQuery(msgspec.Struct):
    sql: str
    #: At most the server's row limit.
    max_rows: Annotated[int, msgspec.Meta(ge=1)] | None = None


class SqlResult(msgspec.Struct):
    """A JSON answer (CSV and Parquet answers are files)."""

    columns: list[str]
    types: list[str]
    rows: msgspec.Raw
    #: Whether a limit cut the answer, and which: ``"rows"`` or ``"bytes"``.
    truncated: bool
    truncated_by: str | None
    seconds: float
    #: The data is a snapshot: as it was at this moment.
    as_of: dt.datetime


def sql_pool(state: State) -> SqlPool:
    """The app's SQL pool (`datacat_server.app` opens it with the store)."""
    pool: SqlPool = state.sql
    return pool


def answer(found: SqlAnswer, fmt: str) -> Response[bytes]:
    """The HTTP answer for a query's result in ``fmt``."""
    result = found.result
    headers = {"X-Datacat-As-Of": found.as_of.isoformat()}
    if result.truncated_by:
        headers["X-Datacat-Truncated"] = result.truncated_by
    if fmt == "csv":
        headers["Content-Disposition"] = 'attachment; filename="datacat.csv"'
        return Response(result.body, media_type="text/csv; charset=utf-8", headers=headers)
    if fmt == "parquet":
        headers["Content-Disposition"] = 'attachment; filename="datacat.parquet"'
        return Response(result.body, media_type="application/vnd.apache.parquet", headers=headers)
    body = SqlResult(
        columns=result.columns,
        types=result.types,
        rows=msgspec.Raw(result.body),
        truncated=result.truncated,
        truncated_by=result.truncated_by,
        seconds=result.seconds,
        as_of=found.as_of,
    )
    return Response(msgspec.json.encode(body), media_type="application/json", headers=headers)


def _busy(_: Request[Any, Any, Any], exc: SqlBusyError) -> Response[dict[str, object]]:
    return Response(
        {"status_code": 503, "detail": str(exc)}, status_code=503, headers={"Retry-After": "1"}
    )


def _unavailable(
    _: Request[Any, Any, Any], exc: SqlUnavailableError
) -> Response[dict[str, object]]:
    return Response(
        {"status_code": 503, "detail": str(exc)}, status_code=503, headers={"Retry-After": "5"}
    )


#: How the pool's 503s are answered (the API's and the console's).
SQL_EXCEPTION_HANDLERS = {SqlBusyError: _busy, SqlUnavailableError: _unavailable}

_DESCRIPTION = (
    "One SELECT-like statement (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE,"
    " EXPLAIN), run read-only in a worker process over a snapshot of the data (`as_of`"
    " says when it was taken), with limits on time, CPU, memory, rows and bytes."
    " Anything else is refused with 400 and runs nothing; 503 with Retry-After when"
    " every worker is busy."
)


class SqlController(Controller):
    path = "/api/sql"
    tags = ("sql",)
    opt = {"scope": "read"}  # noqa: RUF012 - a read, even when POSTed
    exception_handlers = SQL_EXCEPTION_HANDLERS  # type: ignore[assignment]

    @post(
        "/",
        status_code=200,
        summary="Run one read-only SQL statement",
        description=_DESCRIPTION,
        response_description="A JSON `SqlResult`, or a CSV or Parquet file",
    )
    async def run(
        self,
        *,
        state: State,
        data: JSONBody[SqlQuery],
        format: Annotated[str, _FORMAT] = "json",
    ) -> Response[bytes]:
        found = await sql_pool(state).run(data.sql, fmt=format, max_rows=data.max_rows)
        return answer(found, format)

    @get("/", summary="Run one read-only SQL statement (for links)", description=_DESCRIPTION)
    async def run_get(
        self,
        *,
        state: State,
        q: Annotated[str, QueryParameter(min_length=1, description="The SQL.")],
        format: Annotated[str, _FORMAT] = "json",
    ) -> Response[bytes]:
        found = await sql_pool(state).run(q, fmt=format)
        return answer(found, format)
