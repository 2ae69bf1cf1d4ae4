"""Transactions: every BEGIN has its COMMIT or ROLLBACK in one place."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb

__all__ = ["transaction"]


@contextlib.contextmanager
def transaction(
    cur: duckdb.DuckDBPyConnection, *, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction on ``cur``: committed if it returns, rolled
    back if it raises (the exception goes on)."""
    cur.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION")
    try:
        yield cur
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cur.execute("ROLLBACK")
        raise
    if read_only:
        cur.execute("ROLLBACK")
    else:
        cur.execute("COMMIT")
