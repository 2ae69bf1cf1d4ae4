"""``datacat query``: one read-only SQL statement, through a server or on the file.

DuckDB lets one process open a database file, so while a server runs, the query goes
through its API (the client library); when no server answers, the file is opened
directly (read-only, with the same checks and bounds as the server's SQL).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from datacat_server.commands._common import add_server_options

__all__ = ["register", "run", "run_query"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="run one read-only SQL query against the store",
        description="Run one read-only SQL statement (SELECT, WITH, FROM, DESCRIBE, SHOW,"
        " SUMMARIZE, EXPLAIN). It goes through a running server (only one process can"
        " open the DuckDB file); when none answers, the file is read directly, and its"
        " path said on stderr.",
        epilog='Example: datacat query "SELECT nodeid, avg(duration) FROM test_results'
        ' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"',
    )
    parser.add_argument("sql", help="the SQL statement")
    parser.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default="table",
        help="output (table); parquet is binary, so it needs --output or a redirection",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="write to this file (default: standard output)"
    )
    add_server_options(parser)
    parser.add_argument(
        "--db",
        type=Path,
        default=None,
        help="read this file directly, without a server (default when no server answers:"
        " DATACAT_DB, else ./datacat.duckdb, as for serve)",
    )
    parser.add_argument("--max-rows", type=int, default=10_000, help="most rows shown (10000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_query(
        args.sql,
        url=args.url,
        token=args.token,
        db=args.db,
        fmt=args.format,
        max_rows=args.max_rows,
        output=args.output,
    )


class QueryFailed(Exception):
    """The query could not run; the message says why."""


def _via_server(
    url: str, token: str | None, sql: str, max_rows: int, fmt: str
) -> dict[str, Any] | bytes | None:
    """The server's answer (Parquet bytes, else the JSON result), or None when no server
    answers at ``url``."""
    from datacat_client import DatacatClient, DatacatError, TransportError

    try:
        with DatacatClient(url, token, timeout=120.0) as api:
            answer: dict[str, Any] | bytes = api.sql(
                sql, max_rows=max_rows, fmt="parquet" if fmt == "parquet" else "json"
            )
    except TransportError as exc:
        if exc.unreachable:
            return None
        raise QueryFailed(str(exc)) from None
    except DatacatError as exc:
        raise QueryFailed(str(exc)) from None
    return answer


def _on_file(
    path: Path, sql: str, max_rows: int, timeout: float, fmt: str
) -> dict[str, Any] | bytes:
    try:
        import duckdb
    except ImportError:
        raise QueryFailed(
            "no server answers, and reading the database file directly needs the server's"
            " dependencies: pip install 'pytest-datacat[server]' (or point --url at a server)"
        ) from None

    import msgspec

    from datacat_server.errors import InvalidInputError
    from datacat_server.queries.sql import run_readonly
    from datacat_server.store.database import lock_down

    if not path.is_file():
        raise QueryFailed(
            f"there is no database at {path}: name one with --db or DATACAT_DB, or start"
            " its server (datacat serve --db FILE) and point --url at it"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise QueryFailed(
            f"{path} is held by another process and no server answers at the URL given:"
            f" {exc}. Point --url at the server that holds it."
        ) from None
    try:
        lock_down(con, "1GB")
        try:
            result = run_readonly(
                con.cursor(),
                sql,
                fmt="parquet" if fmt == "parquet" else "json",
                max_rows=max_rows,
                timeout=timeout,
            )
        except InvalidInputError as exc:
            raise QueryFailed(str(exc)) from None
    finally:
        con.close()
    if fmt == "parquet":
        return result.body
    return {
        "columns": result.columns,
        "types": result.types,
        "rows": msgspec.json.decode(result.body),
        "truncated": result.truncated_by is not None,
    }


def _table(result: dict[str, Any]) -> str:
    columns = [str(c) for c in result["columns"]]
    rows = [["" if v is None else str(v) for v in row] for row in result["rows"]]
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    plural = "s" if len(rows) != 1 else ""
    truncated = ", truncated" if result.get("truncated") else ""
    lines.append(f"({len(rows)} row{plural}{truncated})")
    return "\n".join(lines) + "\n"


def _render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return (
            json.dumps(
                [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]],
                default=str,
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(result["columns"])
        writer.writerows(result["rows"])
        return out.getvalue()
    return _table(result)


def _database_path(db: Path | None) -> Path:
    """``--db``, else ``DATACAT_DB``, else the file `datacat serve` opens by default."""
    from datacat_server.settings import Settings

    return db or Path(os.environ.get("DATACAT_DB") or Settings.db_path)


def run_query(
    sql: str,
    *,
    url: str | None,
    token: str | None,
    db: Path | None,
    fmt: str,
    max_rows: int,
    output: Path | None = None,
    timeout: float = 60.0,
) -> int:
    """Run ``sql`` and write it in ``fmt`` (table, csv, json, parquet) to ``output`` or
    standard output; the command's exit status. Parquet is refused to a terminal."""
    from datacat_client._config import resolve_base_url, resolve_token

    if fmt == "parquet" and output is None and sys.stdout.isatty():
        sys.stderr.write(
            "datacat query: Parquet is binary; write it to a file with --output FILE\n"
        )
        return 2
    url = resolve_base_url(url)
    try:
        answer = (
            None if db is not None else _via_server(url, resolve_token(token), sql, max_rows, fmt)
        )
        if answer is None:
            path = _database_path(db)
            unreachable = "" if db is not None else f"no server answers at {url}; "
            sys.stderr.write(f"datacat query: {unreachable}reading {path.resolve()}\n")
            answer = _on_file(path, sql, max_rows, timeout, fmt)
    except QueryFailed as exc:
        sys.stderr.write(f"datacat query: {exc}\n")
        return 1
    data = answer if isinstance(answer, bytes) else _render(answer, fmt).encode()
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            sys.stderr.write(f"datacat query: cannot write {output}: {exc.strerror or exc}\n")
            return 1
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
