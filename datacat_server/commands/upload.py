"""``datacat upload``: send what clients spooled while the server was unreachable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from datacat_server.commands._common import add_server_options, fail

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="send records that clients spooled while the server was unreachable",
        description="Send spooled records, then delete each file once all of it is stored."
        " Safe to repeat: the server stores every record once.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=None,
        help="spool directory (default: DATACAT_SPOOL_DIR, else ~/.cache/datacat/spool)",
    )
    add_server_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from datacat_client import upload_spool

    if args.directory is not None and not Path(args.directory).is_dir():
        return fail("upload", f"{args.directory} is not a directory", 2)
    report = upload_spool(args.directory, base_url=args.url, token=args.token)
    sys.stdout.write(f"{report}\n")
    return 0 if report.ok else 1
