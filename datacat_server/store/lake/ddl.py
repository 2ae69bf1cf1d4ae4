"""The stored tables (`datacat_server.store.tables`) as DuckLake can hold them.

DuckLake 1.5.5 differs from a DuckDB file in what a table may declare (measured, see
docs/lake-design.md):

- no user-defined types, and no ENUM at all: ``outcome`` is stored as VARCHAR
  (Parquet dictionary-encodes it; the queries compare it with text either way);
- no default for a LIST column (``failing_sids INTEGER[] DEFAULT []``): left out, the
  writer always gives the value;
- a column added by ALTER TABLE can never become NOT NULL (``SET NOT NULL`` needs
  column statistics a new column does not have); tables made here are created whole,
  at the current description, so their NOT NULLs hold. `Table.arrow` refuses a
  missing value for a NOT NULL column before DuckDB sees it, on both stores.

Everything else the descriptions use works as on a file: MAP, JSON, UUID, lists,
constant and ``now()`` defaults, NOT NULL at CREATE TABLE.
"""

from __future__ import annotations

import duckdb

from datacat_server.store.tables import Column, Table
from datacat_server.store.transactions import transaction

__all__ = ["LAKE_TYPES", "column_ddl", "create_tables", "table_ddl"]

#: Our column types DuckLake cannot store → what stands in for them.
LAKE_TYPES: dict[str, str] = {"outcome": "VARCHAR"}


def column_ddl(column: Column) -> str:
    """The column's definition in a DuckLake CREATE TABLE."""
    kind = LAKE_TYPES.get(column.type, column.type)
    default = column.default
    if default is not None and kind.endswith("[]"):
        default = None  # "Default value for LIST type not supported"
    default_sql = f" DEFAULT {default}" if default is not None else ""
    not_null = "" if column.nullable else " NOT NULL"
    return f'"{column.name}" {kind}{default_sql}{not_null}'


def table_ddl(table: Table) -> str:
    """CREATE TABLE IF NOT EXISTS for ``table`` in the current (lake) database."""
    body = ",\n    ".join(column_ddl(c) for c in table.columns)
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n)"


def create_tables(cur: duckdb.DuckDBPyConnection, tables: tuple[Table, ...]) -> None:
    """Create ``tables`` that do not exist yet, in one transaction (one snapshot)."""
    with transaction(cur):
        for table in tables:
            cur.execute(table_ddl(table))
