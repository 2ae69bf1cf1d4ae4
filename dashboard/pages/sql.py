"""``/sql``: the SQL console. One read-only statement, run by a SQL worker process.

``/sql?q=…`` runs the statement, so a result is a link that can be shared and
reloaded; the Run button posts the statement and the answer tells htmx to put that
link in the address bar (``HX-Push-Url``). The handlers await the worker and hold no
thread meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from litestar.response import Template

from dashboard._params import MAX_TEXT, QueryReader, href
from dashboard._render import render
from datacat_server.queries.schema_info import EXAMPLE_QUERIES, Relation, describe_store
from datacat_server.queries.sql import SqlRefused
from datacat_server.sqlpool.pool import SqlBusyError, SqlPool, SqlUnavailableError
from datacat_server.store import StoreBase

__all__ = ["SqlForm", "SqlPage", "SqlPages", "SqlTable"]

#: Rows a page shows at most; the downloads carry up to the server's SQL row limit.
PAGE_ROWS = 1000


class SqlForm(msgspec.Struct):
    """The console's form."""

    sql: str = ""


@dataclasses.dataclass(frozen=True)
class SqlTable:
    """A statement's answer as the console shows it: every cell as text (or None)."""

    columns: list[str]
    types: list[str]
    rows: list[list[str | None]]
    #: ``"rows"`` or ``"bytes"`` when that limit cut the answer.
    truncated_by: str | None
    seconds: float
    #: The data the statement read is a snapshot taken at this moment (UTC).
    as_of: dt.datetime

    @property
    def truncated(self) -> bool:
        return self.truncated_by is not None

    @property
    def age(self) -> float:
        """Seconds between the snapshot and now."""
        return max(0.0, (dt.datetime.now(dt.UTC) - self.as_of).total_seconds())


@dataclasses.dataclass(frozen=True)
class SqlPage:
    """Context of ``sql.html`` and ``_sql_result.html``."""

    sql: str
    result: SqlTable | None
    #: Why the statement was refused or failed (shown instead of a result).
    error: str | None
    relations: list[Relation]
    examples: list[tuple[str, str]]


def _relations(state: State, store: StoreBase) -> list[Relation]:
    # Tables and views change only when the server starts (migrations): read them once.
    relations: list[Relation] | None = getattr(state, "sql_relations", None)
    if relations is None:
        relations = describe_store(store.reader())
        state.sql_relations = relations
    return relations


async def _run(
    request: Request[Any, Any, Any], state: State, store: StoreBase, sql: str
) -> Template:
    result, error, status = None, None, 200
    headers: dict[str, str] = {}
    if sql.strip():
        pool: SqlPool = state.sql
        try:
            found = await pool.run(sql, fmt="text", max_rows=PAGE_ROWS)
        except SqlRefused as exc:
            error, status = str(exc), 400
        except (SqlBusyError, SqlUnavailableError) as exc:
            error, status = str(exc), 503
            headers["Retry-After"] = "1" if isinstance(exc, SqlBusyError) else "5"
        else:
            answer = found.result
            result = SqlTable(
                answer.columns,
                answer.types,
                msgspec.json.decode(answer.body, type=list[list[str | None]]),
                answer.truncated_by,
                answer.seconds,
                found.as_of,
            )
        if len(sql) <= MAX_TEXT:  # what ``?q=`` accepts
            headers["HX-Push-Url"] = href("/sql", {"q": sql})
    page = SqlPage(sql, result, error, _relations(state, store), EXAMPLE_QUERIES)
    response = render(
        request, "sql.html", page, {"sql-result": "_sql_result.html"}, status_code=status
    )
    response.headers.update(headers)
    return response


class SqlPages(Controller):
    path = "/sql"
    include_in_schema = False

    @get("/", name="dashboard:sql")
    async def console(
        self, request: Request[Any, Any, Any], state: State, store: NamedDependency[StoreBase]
    ) -> Template:
        """The console; ``?q=`` runs a query (a bookmarkable result)."""
        sql = QueryReader(request.query_params).text("q") or ""
        return await _run(request, state, store, sql)

    # A read, though posted: the auth guard must not ask for the ingest scope.
    @post("/", status_code=200, name="dashboard:sql-run", opt={"scope": "read"})
    async def run(
        self,
        request: Request[Any, Any, Any],
        state: State,
        store: NamedDependency[StoreBase],
        data: URLEncodedBody[SqlForm],
    ) -> Template:
        """The console's Run button (htmx swaps the result in; a plain post gets the page)."""
        return await _run(request, state, store, data.sql)
