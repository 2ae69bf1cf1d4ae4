"""``datacat token``: a new random API token."""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token",
        help="print a new random API token",
        description="Print a new random token (256 bits), to configure on the server"
        " (DATACAT_TOKENS or DATACAT_TOKENS_FILE) and give to its users.",
    )
    parser.add_argument(
        "--scope",
        default="ingest",
        choices=["ingest", "read", "quarantine", "admin", "ingest+read"],
        help="the scope to suggest in the hint (ingest)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(32)
    sys.stdout.write(f"{token}\n")
    sys.stderr.write(
        f"Give it to the server, e.g. DATACAT_TOKENS={args.scope}:{token}"
        f" (or a line '{args.scope} <token> <name>' in DATACAT_TOKENS_FILE),"
        " and to its users as DATACAT_TOKEN.\n"
    )
    return 0
