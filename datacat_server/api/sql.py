"""Read-only SQL over the store, as JSON, CSV or Parquet (see `datacat_server.queries.sql`)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from datacat_server.queries.sql import QueryResult, run_readonly, to_csv, to_parquet
from datacat_server.settings import Settings
from datacat_server.store import Store

__all__ = ["SqlController", "SqlResult"]


class SqlQuery(msgspec.Struct):
    sql: str
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class SqlResult(msgspec.Struct):
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool
    seconds: float


def _answer(result: QueryResult, fmt: str) -> Response[Any]:
    if fmt == "csv":
        return Response(
            to_csv(result),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="datacat.csv"'},
        )
    if fmt == "parquet":
        return Response(
            to_parquet(result),
            media_type="application/vnd.apache.parquet",
            headers={"Content-Disposition": 'attachment; filename="datacat.parquet"'},
        )
    body = SqlResult(
        columns=result.columns,
        types=result.types,
        rows=[list(row) for row in result.rows],
        truncated=result.truncated,
        seconds=result.seconds,
    )
    return Response(body)


class SqlController(Controller):
    path = "/api/sql"
    tags = ("sql",)
    opt = {"scope": "read"}  # noqa: RUF012 - a read, even when POSTed

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        summary="Run one read-only SQL statement",
        description="One SELECT-like statement (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW,"
        " SUMMARIZE, EXPLAIN), run read-only with a row and a time limit. Anything else"
        " is refused with 400 and runs nothing.",
    )
    def run(
        self,
        *,
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        data: JSONBody[SqlQuery],
        format: Annotated[str, QueryParameter(pattern="^(json|csv|parquet)$")] = "json",
    ) -> Response[Any]:
        limit = min(data.max_rows or settings.sql_max_rows, settings.sql_max_rows)
        result = run_readonly(
            store.db.sandbox(), data.sql, max_rows=limit, timeout=settings.sql_timeout
        )
        return _answer(result, format)

    @get("/", sync_to_thread=True, summary="Run one read-only SQL statement (for links)")
    def run_get(
        self,
        *,
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        q: Annotated[str, QueryParameter(min_length=1, description="The SQL.")],
        format: Annotated[str, QueryParameter(pattern="^(json|csv|parquet)$")] = "json",
    ) -> Response[Any]:
        result = run_readonly(
            store.db.sandbox(), q, max_rows=settings.sql_max_rows, timeout=settings.sql_timeout
        )
        return _answer(result, format)
