"""``datacat migrate-store``: move a single-node DuckDB file into a DuckLake."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from datacat_server.commands._common import fail, require_server_extra

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate-store",
        help="move a DuckDB file's data into an empty DuckLake (for many servers)",
        description="Copy every session, result, run, test and rollup of a DuckDB file into"
        " an empty DuckLake, then count each table in both and say whether they match"
        " (exit status 1 if not). Stop the server that uses the file first. The lake's"
        " settings are read as `datacat serve --store lake` reads them (README, 'More"
        " than one machine').",
    )
    parser.add_argument("--from", dest="source", type=Path, required=True, help="the DuckDB file")
    parser.add_argument(
        "--to",
        dest="target",
        default="lake",
        help="'lake' (DATACAT_LAKE_CATALOG, DATACAT_LAKE_DATA_PATH, DATACAT_S3_*) or"
        " 'ducklake:<catalog connection string>' (default: lake)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_server_extra("migrate-store")
    from datacat_server.errors import StoreError
    from datacat_server.settings import Settings

    try:
        settings = Settings.from_env(store=args.target)
        lake = settings.lake
        if lake is None:
            return fail(
                "migrate-store", f"--to must be 'lake' or 'ducklake:...', not {args.target!r}", 2
            )
    except ValueError as exc:
        return fail("migrate-store", str(exc), 2)
    from datacat_server.store.lake.migrate import describe, migrate_file

    try:
        counts = migrate_file(args.source, lake, settings.heartbeat_grace)
    except StoreError as exc:
        return fail("migrate-store", str(exc))
    sys.stdout.write(f"table  {args.source}  lake\n{describe(counts)}\n")
    if not all(count.ok for count in counts):
        return fail("migrate-store", "the counts differ (see above)")
    sys.stdout.write(f"moved {args.source} into the lake at {lake.data_path}\n")
    return 0
