"""The ``datacat`` command: its subcommands are modules of `datacat_server.commands`.

Nothing here imports a server dependency: ``datacat upload`` works with the base
install (client and plugin only), and ``datacat serve`` without the ``server`` extra
says what to install instead of printing a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
from collections.abc import Sequence

from datacat_server.commands import COMMANDS

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datacat",
        description="DataCat: test telemetry with a Litestar + DuckDB server.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"datacat_server.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``datacat`` console script."""
    logging.basicConfig(
        level=os.environ.get("DATACAT_LOG_LEVEL", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
