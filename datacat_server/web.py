"""The server as the dashboard sees it.

`dashboard/` imports this module and the query layer (`datacat_server.queries`), and
nothing else of the server (`tests/test_layers.py` checks it). A page handler:

- reads with the query functions on `read_cursor(request)` (its thread's own cursor);
- learns who asked from `identity(request)` (and checks a sign-in with
  `sign_in_refusal`);
- runs people's SQL with `run_sql(request, …)` (the SQL worker processes);
- turns the errors below into its own pages: `InvalidInputError` (a value that breaks a
  rule: 400), `SqlRefused` (400), `SqlBusyError` and `SqlUnavailableError` (503).

Nothing here writes: the dashboard only reads (its sign-in cookie never authorises a
write, see SECURITY.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

import duckdb
from litestar import Request

from datacat_client.wire import OUTCOMES, VERDICTS
from datacat_server.auth import COOKIE, Scope, TokenSet, identity_of
from datacat_server.errors import InvalidInputError
from datacat_server.queries.sql import SqlRefused
from datacat_server.sqlpool.pool import SqlAnswer, SqlBusyError, SqlPool, SqlUnavailableError
from datacat_server.store import StoreBase

__all__ = [
    "COOKIE",
    "OUTCOMES",
    "VERDICTS",
    "Cursor",
    "Identity",
    "InvalidInputError",
    "SqlAnswer",
    "SqlBusyError",
    "SqlRefused",
    "SqlUnavailableError",
    "identity",
    "read_cursor",
    "run_sql",
    "sign_in_refusal",
]

#: What the query functions read through.
Cursor: TypeAlias = duckdb.DuckDBPyConnection


def read_cursor(request: Request[Any, Any, Any]) -> Cursor:
    """The calling thread's read cursor of the server's store (call it in the thread
    that reads: a cursor is never shared between threads)."""
    store: StoreBase = request.app.state.store
    return store.reader()


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a request comes from, as far as pages care."""

    #: The server has no tokens: everyone may read (and nobody signs in).
    open: bool
    #: The request came with the dashboard's sign-in cookie (known or not).
    signed_in: bool
    #: The token it presented is one the server knows.
    known: bool
    #: That token's name (``""`` when it has none, or is not known).
    name: str


def identity(request: Request[Any, Any, Any]) -> Identity:
    """Who made ``request``: the pages' view of the identity that authentication read
    once for it (`datacat_server.auth.IdentityMiddleware`)."""
    tokens: TokenSet = request.app.state.tokens
    found = identity_of(request)
    token = None if tokens.open else found.token
    return Identity(
        open=tokens.open,
        signed_in=found.via == "cookie",
        known=token is not None,
        name=token.name if token is not None else "",
    )


def sign_in_refusal(request: Request[Any, Any, Any], secret: str) -> tuple[int, str] | None:
    """Why ``secret`` may not sign in to the dashboard (a status and a sentence), or
    None when it is a known token that may read. The cookie `COOKIE` then carries it."""
    tokens: TokenSet = request.app.state.tokens
    token = tokens.find(secret) if secret else None
    if token is None:
        return 401, "This token is not known here."
    if not token.allows(Scope.READ):
        return 403, "This token cannot read. The dashboard needs a token with the read scope."
    return None


async def run_sql(
    request: Request[Any, Any, Any], sql: str, *, fmt: str = "text", max_rows: int | None = None
) -> SqlAnswer:
    """Run one read-only statement in a SQL worker (``fmt``: ``text`` for the console's
    cells, ``json``, ``csv``, ``parquet``). Raises `SqlRefused`, `SqlBusyError`,
    `SqlUnavailableError`."""
    pool: SqlPool = request.app.state.sql
    return await pool.run(sql, fmt=fmt, max_rows=max_rows)
