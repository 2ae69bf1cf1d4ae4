"""``datacat quarantine``: put tests in and out of quarantine, and list them."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from datacat_server.commands._common import add_server_options, client, fail

__all__ = ["register", "run"]

_EPILOG = """A quarantined test still runs and is recorded, but with
`pytest --datacat --datacat-quarantine` its failure does not fail the build.
Changing the quarantine needs a token with the quarantine scope; every change is kept
with who made it, why and when (`datacat quarantine list --log`).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "quarantine",
        help="put tests in or out of quarantine (their failures do not fail builds)",
        description="Put a test in quarantine, take it out, or list the quarantine.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("add", "put a test in quarantine"), ("remove", "take it out")):
        action = actions.add_parser(name, help=text, description=text.capitalize() + ".")
        action.add_argument("nodeid", help="the test's node id")
        action.add_argument("--reason", default="", help="why (kept in the quarantine's log)")
        _common_options(action)
    listing = actions.add_parser("list", help="the project's quarantined tests")
    listing.add_argument("--log", action="store_true", help="every change instead, newest first")
    _common_options(listing)
    parser.set_defaults(func=run)


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=None, help="the project (default: DATACAT_PROJECT)")
    add_server_options(parser)


def run(args: argparse.Namespace) -> int:
    from datacat_client import DatacatError

    project = args.project or os.environ.get("DATACAT_PROJECT")
    if not project:
        return fail("quarantine", "--project is required (or DATACAT_PROJECT)", 2)
    try:
        with client(args) as api:
            if args.action == "add":
                changed = api.add_to_quarantine(project, args.nodeid, args.reason)
                done = "in quarantine" if changed else "already in quarantine"
                sys.stdout.write(f"{args.nodeid}: {done}\n")
            elif args.action == "remove":
                changed = api.remove_from_quarantine(project, args.nodeid, args.reason)
                done = "out of quarantine" if changed else "was not in quarantine"
                sys.stdout.write(f"{args.nodeid}: {done}\n")
            elif args.log:
                for change in api.quarantine_log(project):
                    sys.stdout.write(
                        f"{change['when'][:19]}  {change['action']:6}  {change['nodeid']}"
                        f"  ({change['mode']}, by {change['who']}: {change['reason']})\n"
                    )
            else:
                for entry in api.quarantined(project):
                    sys.stdout.write(
                        f"{entry['nodeid']}  ({entry['mode']} since {entry['since'][:10]},"
                        f" by {entry['who']}: {entry['reason']})\n"
                    )
    except DatacatError as exc:
        return fail("quarantine", str(exc))
    return 0
