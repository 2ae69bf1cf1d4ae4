"""Small helpers shared by the query modules."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import duckdb
import msgspec

__all__ = ["decode_json", "iso", "parse_session_id", "rows"]

_decode = msgspec.json.decode


def iso(value: dt.datetime | None) -> str | None:
    """A stored (naive, UTC) timestamp as RFC 3339 text."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decode_json(text: str | None) -> Any:
    """A stored JSON column as Python values (None stays None)."""
    return None if text is None else _decode(text)


def parse_session_id(value: str) -> str | None:
    """The canonical form of a session id, or None if it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        return None


def rows(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """A result's rows by column name (every one fetched: DuckDB 2.0 wants results
    read to their end)."""
    names = [d[0] for d in result.description or ()]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
