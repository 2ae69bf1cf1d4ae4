"""What the subcommands share: server options, the client, and how they fail."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datacat_client import DatacatClient

__all__ = [
    "add_server_options",
    "client",
    "fail",
    "is_loopback",
    "require_server_extra",
]

_SERVER_MODULES = ("litestar", "uvicorn", "duckdb", "jinja2", "pyarrow")


def require_server_extra(command: str) -> None:
    """Exit with what to install when the server's dependencies are missing."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        sys.stderr.write(
            f"datacat {command} needs the server's dependencies, which are not installed"
            f" (missing: {', '.join(missing)}).\n"
            "Install them with:  pip install 'pytest-datacat[server]'\n"
        )
        raise SystemExit(2)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_server_options(parser: argparse.ArgumentParser, *, scope: str = "") -> None:
    """``--url`` and ``--token``, with their environment fallbacks."""
    from datacat_client._config import DEFAULT_BASE_URL

    parser.add_argument(
        "--url", default=None, help=f"server URL (default: DATACAT_URL, else {DEFAULT_BASE_URL})"
    )
    what = f"{scope} token" if scope else "API token"
    parser.add_argument("--token", default=None, help=f"{what} (default: DATACAT_TOKEN)")


def client(args: argparse.Namespace, timeout: float = 30.0) -> DatacatClient:
    """The client for ``--url`` / ``--token`` (else the environment, else the defaults)."""
    from datacat_client import DatacatClient

    return DatacatClient(args.url, args.token, timeout)


def fail(command: str, message: str, status: int = 1) -> int:
    """Say why ``datacat COMMAND`` failed, on stderr; returns the exit status."""
    sys.stderr.write(f"datacat {command}: {message}\n")
    return status
