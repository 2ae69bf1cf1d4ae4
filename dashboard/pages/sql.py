"""``/sql``: the SQL console. One read-only statement, run in the store's sandbox."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from litestar.response import Template

from dashboard._params import QueryReader
from dashboard._render import render
from datacat_server.queries.schema_info import EXAMPLE_QUERIES, Relation, describe_store
from datacat_server.queries.sql import QueryResult, SqlRefused, run_readonly
from datacat_server.settings import Settings
from datacat_server.store import Store

__all__ = ["SqlForm", "SqlPage", "SqlPages"]

#: Rows a page shows at most; the downloads carry up to the server's SQL row limit.
PAGE_ROWS = 1000


class SqlForm(msgspec.Struct):
    """The console's form."""

    sql: str = ""


@dataclasses.dataclass(frozen=True)
class SqlPage:
    """Context of ``sql.html`` and ``_sql_result.html``."""

    sql: str
    result: QueryResult | None
    #: Why the statement was refused or failed (shown instead of a result).
    error: str | None
    relations: list[Relation]
    examples: list[tuple[str, str]]


def _run(request: Request[Any, Any, Any], store: Store, settings: Settings, sql: str) -> Template:
    result, error = None, None
    if sql.strip():
        try:
            result = run_readonly(
                store.db.sandbox(),
                sql,
                max_rows=min(PAGE_ROWS, settings.sql_max_rows),
                timeout=settings.sql_timeout,
            )
        except SqlRefused as exc:
            error = str(exc)
    page = SqlPage(sql, result, error, describe_store(store.reader()), EXAMPLE_QUERIES)
    status = 400 if error else 200
    return render(request, "sql.html", page, {"sql-result": "_sql_result.html"}, status_code=status)


class SqlPages(Controller):
    path = "/sql"
    include_in_schema = False

    @get("/", sync_to_thread=True, name="dashboard:sql")
    def console(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
    ) -> Template:
        """The console; ``?q=`` runs a query (a bookmarkable result)."""
        sql = QueryReader(request.query_params).text("q") or ""
        return _run(request, store, settings, sql)

    # A read, though posted: the auth guard must not ask for the ingest scope.
    @post(
        "/", sync_to_thread=True, status_code=200, name="dashboard:sql-run", opt={"scope": "read"}
    )
    def run(
        self,
        request: Request[Any, Any, Any],
        store: NamedDependency[Store],
        settings: NamedDependency[Settings],
        data: URLEncodedBody[SqlForm],
    ) -> Template:
        """The console's Run button (htmx swaps the result in; a plain post gets the page)."""
        return _run(request, store, settings, data.sql)
