"""The ``datacat`` command.

Server commands import the server's dependencies lazily, so that ``datacat upload``
works with the base install (client and plugin only) and ``datacat serve`` without the
``server`` extra says what to install instead of printing a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

_SERVER_MODULES = ("litestar", "uvicorn", "duckdb", "jinja2", "pyarrow")


def _missing_server_modules() -> list[str]:
    return [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]


def _require_server_extra(command: str) -> None:
    missing = _missing_server_modules()
    if missing:
        sys.stderr.write(
            f"datacat {command} needs the server's dependencies, which are not installed"
            f" (missing: {', '.join(missing)}).\n"
            "Install them with:  pip install 'pytest-datacat[server]'\n"
        )
        raise SystemExit(2)


def _cmd_serve(args: argparse.Namespace) -> int:
    _require_server_extra("serve")
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
            host=args.host,
            port=args.port,
            allow_anonymous=args.allow_anonymous or None,
        )
        tokens = load_tokens(os.environ)
    except (ValueError, TokenConfigError) as exc:
        sys.stderr.write(f"datacat serve: {exc}\n")
        return 2
    if tokens.open and not settings.allow_anonymous and not _is_loopback(settings.host):
        sys.stderr.write(
            f"datacat serve: refusing to listen on {settings.host} without tokens: anyone who"
            " can reach it could read and write everything.\n"
            "Configure tokens (DATACAT_TOKENS=ingest:<token>,read:<token>,admin:<token> or"
            " DATACAT_TOKENS_FILE; see SECURITY.md; `datacat token` makes one), or pass"
            " --allow-anonymous to accept the risk.\n"
        )
        return 2
    try:
        check_port(settings.host, settings.port)  # before the store: a busy port creates nothing
    except PortUnavailable as exc:
        sys.stderr.write(f"datacat serve: {exc}\n")
        return 1
    try:
        store = open_store(settings)
    except StoreError as exc:
        sys.stderr.write(f"datacat serve: {exc}\n")
        return 1
    try:
        app = create_app(settings, store=store, tokens=tokens)
        access = (
            f"{len(tokens.tokens)} tokens configured"
            if not tokens.open
            else "open: no tokens, anyone who can reach it may read and write"
        )
        sys.stderr.write(
            f"DataCat serving {settings.db_path} on http://{settings.host}:{settings.port}"
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


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cmd_token(args: argparse.Namespace) -> int:
    import secrets

    token = secrets.token_urlsafe(32)
    sys.stdout.write(f"{token}\n")
    sys.stderr.write(
        f"Give it to the server, e.g. DATACAT_TOKENS={args.scope}:{token}"
        f" (or a line '{args.scope} <token> <name>' in DATACAT_TOKENS_FILE),"
        " and to its users as DATACAT_TOKEN.\n"
    )
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    import httpx

    from datacat_client._config import resolve_base_url, resolve_token

    url, token = resolve_base_url(args.url), resolve_token(args.token)
    body = {"days": args.days, "project": args.project} if args.days is not None else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(f"{url}/api/admin/retention", json=body, headers=headers, timeout=600)
    except httpx.TransportError as exc:
        sys.stderr.write(f"datacat retention: no server answers at {url}: {exc}\n")
        return 1
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        sys.stderr.write(f"datacat retention: {answer.status_code}: {detail}\n")
        return 1
    result = answer.json()
    rows = sum(result["rows"].values())
    sys.stdout.write(f"deleted {result['sessions']} sessions ({rows} rows)\n")
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from datacat_client import upload_spool

    if args.directory is not None and not Path(args.directory).is_dir():
        sys.stderr.write(f"datacat upload: {args.directory} is not a directory\n")
        return 2
    report = upload_spool(args.directory, base_url=args.url, token=args.token)
    sys.stdout.write(f"{report}\n")
    return 0 if report.ok else 1


def _cmd_query(args: argparse.Namespace) -> int:
    # Through a server, httpx is enough; the file itself needs duckdb (query_cli says so).
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


def _cmd_demo(args: argparse.Namespace) -> int:
    _require_server_extra("demo")
    from datacat_server.demo import run_demo

    if not _is_loopback(args.host):
        sys.stderr.write(
            f"datacat demo: refusing to listen on {args.host}: the demo has no tokens, so"
            " anyone who could reach it could read and write. Use 127.0.0.1, or `datacat"
            " serve` with tokens.\n"
        )
        return 2

    return run_demo(args.db, runs=args.runs, host=args.host, port=args.port)


def _build_parser() -> argparse.ArgumentParser:
    from datacat_client._config import DEFAULT_BASE_URL

    url_help = f"server URL (default: DATACAT_URL, else {DEFAULT_BASE_URL})"
    parser = argparse.ArgumentParser(
        prog="datacat",
        description="DataCat: test telemetry with a Litestar + DuckDB server.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the server (API and dashboard) on a DuckDB file",
        description="Run the DataCat server. Settings fall back to DATACAT_DB, DATACAT_HOST"
        " and DATACAT_PORT, then to the defaults shown.",
    )
    serve.add_argument(
        "--db", type=Path, default=None, help="DuckDB file (default: ./datacat.duckdb)"
    )
    serve.add_argument(
        "--host", default=None, help="address to bind (default: 127.0.0.1, this machine only)"
    )
    serve.add_argument("--port", type=int, default=None, help="port (default: 8080)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level (default: info)",
    )
    serve.add_argument(
        "--access-log", action="store_true", help="log every request (off by default)"
    )
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        help="listen on a non-loopback address without tokens (anyone who can reach it"
        " can read and write everything; see SECURITY.md)",
    )
    serve.set_defaults(func=_cmd_serve)

    upload = sub.add_parser(
        "upload",
        help="send records that clients spooled while the server was unreachable",
        description="Send spooled records, then delete each file once all of it is stored."
        " Safe to repeat: the server stores every record once.",
    )
    upload.add_argument(
        "directory",
        nargs="?",
        default=None,
        help="spool directory (default: DATACAT_SPOOL_DIR, else ~/.cache/datacat/spool)",
    )
    upload.add_argument("--url", default=None, help=url_help)
    upload.add_argument("--token", default=None, help="API token (default: DATACAT_TOKEN)")
    upload.set_defaults(func=_cmd_upload)

    query = sub.add_parser(
        "query",
        help="run one read-only SQL query against the store",
        description="Run one read-only SQL statement (SELECT, WITH, FROM, DESCRIBE, SHOW,"
        " SUMMARIZE, EXPLAIN). It goes through a running server (only one process can"
        " open the DuckDB file); when none answers, the file is read directly, and its"
        " path said on stderr.",
        epilog='Example: datacat query "SELECT nodeid, avg(duration) FROM test_results'
        ' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"',
    )
    query.add_argument("sql", help="the SQL statement")
    query.add_argument(
        "--format",
        choices=["table", "csv", "json", "parquet"],
        default="table",
        help="output (table); parquet is binary, so it needs --output or a redirection",
    )
    query.add_argument(
        "--output", type=Path, default=None, help="write to this file (default: standard output)"
    )
    query.add_argument("--url", default=None, help=url_help)
    query.add_argument("--token", default=None, help="API token (default: DATACAT_TOKEN)")
    query.add_argument(
        "--db",
        type=Path,
        default=None,
        help="read this file directly, without a server (default when no server answers:"
        " DATACAT_DB, else ./datacat.duckdb, as for serve)",
    )
    query.add_argument("--max-rows", type=int, default=10_000, help="most rows shown (10000)")
    query.set_defaults(func=_cmd_query)

    demo = sub.add_parser(
        "demo",
        help="fill a new database with sample test runs and sessions, then serve it",
        description="Run the sample suite several times through the pytest plugin (flaky,"
        " slow, regressed and hanging tests; a few commits and branches) and the client"
        " examples, into a new database, then serve it. About a minute.",
    )
    demo.add_argument(
        "--db",
        type=Path,
        default=Path("datacat-demo.duckdb"),
        help="new DuckDB file (default: ./datacat-demo.duckdb)",
    )
    demo.add_argument("--runs", type=int, default=8, help="test runs to record (8)")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8080, help="port (8080)")
    demo.set_defaults(func=_cmd_demo)

    token = sub.add_parser(
        "token",
        help="print a new random API token",
        description="Print a new random token (256 bits), to configure on the server"
        " (DATACAT_TOKENS or DATACAT_TOKENS_FILE) and give to its users.",
    )
    token.add_argument(
        "--scope",
        default="ingest",
        choices=["ingest", "read", "admin", "ingest+read"],
        help="the scope to suggest in the hint (ingest)",
    )
    token.set_defaults(func=_cmd_token)

    retention = sub.add_parser(
        "retention",
        help="delete old data on a running server (needs an admin token)",
        description="Apply the server's retention policy (DATACAT_RETENTION_DAYS), or delete"
        " sessions older than --days (of --project only, if given).",
    )
    retention.add_argument("--days", type=float, default=None, help="keep this many days")
    retention.add_argument("--project", default=None, help="only this project")
    retention.add_argument("--url", default=None, help=url_help)
    retention.add_argument("--token", default=None, help="admin token (default: DATACAT_TOKEN)")
    retention.set_defaults(func=_cmd_retention)

    from datacat_server import junit_cli

    junit_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``datacat`` console script."""
    logging.basicConfig(
        level=os.environ.get("DATACAT_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    args = _build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
