"""``datacat demo``: a new database filled with sample runs and sessions, served."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from datacat_server.commands._common import fail, is_loopback, require_server_extra

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="fill a new database with sample test runs and sessions, then serve it",
        description="Run the sample suite several times through the pytest plugin (flaky,"
        " slow, regressed and hanging tests; a few commits and branches) and the client"
        " examples, into a new database, then serve it. About a minute.",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Path("datacat-demo.duckdb"),
        help="new DuckDB file (default: ./datacat-demo.duckdb)",
    )
    parser.add_argument("--runs", type=int, default=8, help="test runs to record (8)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_server_extra("demo")
    from datacat_server.demo import run_demo

    if not is_loopback(args.host):
        return fail(
            "demo",
            f"refusing to listen on {args.host}: the demo has no tokens, so anyone who could"
            " reach it could read and write. Use 127.0.0.1, or `datacat serve` with tokens.",
            2,
        )
    return run_demo(args.db, runs=args.runs, host=args.host, port=args.port)
