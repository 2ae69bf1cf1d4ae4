"""The ``datacat`` command's subcommands: one module each, with ``register(subparsers)``.

A subcommand that talks to a server does it through the client library
(`datacat_client.DatacatClient`: one transport, errors parsed once); one that needs the
server's dependencies imports them when it runs, so that the base install (client and
plugin only) has ``datacat upload``, ``datacat query`` through a server, ``datacat
quarantine`` and ``datacat import junit``. Adding a subcommand: a module here, and its
name in `COMMANDS`.
"""

from __future__ import annotations

__all__ = ["COMMANDS"]

#: In the order ``datacat --help`` lists them.
COMMANDS = (
    "serve",
    "demo",
    "upload",
    "query",
    "import_junit",
    "quarantine",
    "retention",
    "migrate_store",
    "token",
)
