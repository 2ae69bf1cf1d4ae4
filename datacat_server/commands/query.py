"""``datacat query``: one read-only SQL statement, through a server or on the file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from datacat_server.commands._common import add_server_options

__all__ = ["register", "run"]


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
    # Through a server the client library is enough; the file itself needs duckdb.
    from datacat_server.query_cli import run_query

    return run_query(
        args.sql,
        url=args.url,
        token=args.token,
        db=args.db,
        fmt=args.format,
        max_rows=args.max_rows,
        output=args.output,
    )
