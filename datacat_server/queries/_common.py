"""Small helpers shared by the query modules."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import duckdb
import msgspec

__all__ = ["decode_json", "iso", "parse_session_id", "rows", "select_list", "structs"]

T = TypeVar("T", bound=msgspec.Struct)

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


def select_list(cls: type[msgspec.Struct], default: str, sources: Mapping[str, str]) -> str:
    """A SELECT list with a column per field of ``cls``, named as the field: the field's
    expression in ``sources``, else the column of its name in the table ``default``
    (an alias). Adding a field to the Struct adds it to the query."""
    return ", ".join(
        f'{sources.get(name, f"{default}.{name}")} AS "{name}"' for name in cls.__struct_fields__
    )


def structs(
    result: duckdb.DuckDBPyConnection,
    cls: type[T],
    convert: Mapping[str, Callable[[Any], Any]] | None = None,
) -> list[T]:
    """A result's rows as ``cls`` instances, each column given to the field of its name
    (``convert``: a function per field, applied to its value first)."""
    found = rows(result)
    for values in found:
        for name, function in (convert or {}).items():
            values[name] = function(values[name])
    return [cls(**values) for values in found]
