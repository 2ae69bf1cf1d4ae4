"""``datacat retention``: delete old data on a running server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from datacat_server.commands._common import add_server_options, client, fail

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="delete old data on a running server (needs an admin token)",
        description="Apply the server's retention policy (DATACAT_RETENTION_DAYS), or delete"
        " sessions older than --days (of --project only, if given).",
    )
    parser.add_argument("--days", type=float, default=None, help="keep this many days")
    parser.add_argument("--project", default=None, help="only this project")
    add_server_options(parser, scope="admin")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datacat_client import DatacatError

    try:
        with client(args) as api:
            result = api.apply_retention(args.days, args.project)
    except DatacatError as exc:
        return fail("retention", str(exc))
    rows = sum(result.get("rows", {}).values())
    sys.stdout.write(f"deleted {result.get('sessions', 0)} sessions ({rows} rows)\n")
    return 0
