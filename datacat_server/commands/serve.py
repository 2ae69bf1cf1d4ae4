"""``datacat serve``: the server (API and dashboard) on a DuckDB file or a DuckLake."""

from __future__ import annotations

import argparse
import gc
import os
from pathlib import Path
from typing import Any

from datacat_server.commands._common import fail, is_loopback, require_server_extra

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the server (API and dashboard) on a DuckDB file or a DuckLake",
        description="Run the DataCat server. Settings fall back to DATACAT_STORE, DATACAT_DB,"
        " DATACAT_HOST and DATACAT_PORT, then to the defaults shown; every other setting is"
        " a DATACAT_ variable (README, 'Server settings' and 'More than one machine').",
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="DuckDB file (default: ./datacat.duckdb)"
    )
    parser.add_argument(
        "--store",
        default=None,
        help="where the data lives: a .duckdb file (as --db), or 'lake' for a DuckLake that"
        " many servers share, its catalog and data path read from DATACAT_LAKE_CATALOG and"
        " DATACAT_LAKE_DATA_PATH (S3 from DATACAT_S3_*), or 'ducklake:<catalog>' with the"
        " catalog's PostgreSQL connection string (keep passwords in PGPASSWORD or"
        " ~/.pgpass, not here: command lines are visible to every user)",
    )
    parser.add_argument(
        "--host", default=None, help="address to bind (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: 8080)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default)"
    )
    parser.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="listen on a non-loopback address without tokens (anyone who can reach it"
        " can read and write everything; see SECURITY.md)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_server_extra("serve")
    import uvicorn

    from datacat_server.app import create_app
    from datacat_server.auth import TokenConfigError, load_tokens
    from datacat_server.errors import StoreError
    from datacat_server.http_head import bounded_protocol
    from datacat_server.port import PortUnavailable, check_port
    from datacat_server.settings import Settings
    from datacat_server.store import open_store

    try:
        settings = Settings.from_env(
            db_path=args.db,
            store=args.store,
            host=args.host,
            port=args.port,
            allow_anonymous=args.allow_anonymous or None,
        )
        settings.lake  # noqa: B018  (a lake's settings are read, and refused, here)
        tokens = load_tokens(os.environ)
    except (ValueError, TokenConfigError) as exc:
        return fail("serve", str(exc), 2)
    if tokens.open and not settings.allow_anonymous and not is_loopback(settings.host):
        return fail(
            "serve",
            f"refusing to listen on {settings.host} without tokens: anyone who can reach it"
            " could read and write everything.\n"
            "Configure tokens (DATACAT_TOKENS=ingest:<token>,read:<token>,admin:<token> or"
            " DATACAT_TOKENS_FILE; see SECURITY.md; `datacat token` makes one), or pass"
            " --allow-anonymous to accept the risk.",
            2,
        )
    try:
        check_port(settings.host, settings.port)  # before the store: a busy port creates nothing
    except PortUnavailable as exc:
        return fail("serve", str(exc))
    try:
        store = open_store(settings)
    except StoreError as exc:
        return fail("serve", str(exc))
    try:
        app = create_app(settings, store=store, tokens=tokens)
        access = (
            f"{len(tokens.tokens)} tokens configured"
            if not tokens.open
            else "open: no tokens, anyone who can reach it may read and write"
        )
        import sys

        sys.stderr.write(
            f"DataCat serving {store.describe()} on http://{settings.host}:{settings.port}"
            f"  ({access}; API docs: /schema)\n"
        )
        # Everything made so far (the app, the store, imported modules) lives as long as
        # the process: keep the garbage collector from walking it again and again.
        gc.freeze()
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=args.log_level,
            access_log=args.access_log,
            timeout_graceful_shutdown=10,
            http=bounded_protocol(settings),
        )
    finally:
        store.close()
    return 0
