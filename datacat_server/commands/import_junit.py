"""``datacat import junit``: send JUnit XML files to a DataCat server as one run.

The server reads the files (``POST /api/import/junit``), so this needs the base install
only; nothing here imports a server dependency.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from datacat_server.commands._common import add_server_options, client, fail

__all__ = ["register", "run"]

_EPILOG = """examples:
  gotestsum --junitfile report.xml ./...
  datacat import junit report.xml --project shop --branch main --commit "$(git rev-parse HEAD)"

  npx jest --reporters=default --reporters=jest-junit   # writes junit.xml
  datacat import junit junit.xml --project web --label suite=unit

  mvn test   # Surefire writes target/surefire-reports/TEST-*.xml
  datacat import junit target/surefire-reports/TEST-*.xml --project api

Importing the same files again stores nothing: it says which run they already are.
"""


def register(subparsers: Any) -> None:
    """Add ``import`` (with its ``junit`` format) to the ``datacat`` command."""
    command = subparsers.add_parser(
        "import",
        help="import other test runners' results (JUnit XML) as a run",
        description="Import test results written by other tools as a DataCat run.",
    )
    formats = command.add_subparsers(dest="format", required=True, metavar="FORMAT")
    junit = formats.add_parser(
        "junit",
        help="JUnit XML: pytest, go test (go-junit-report, gotestsum), Jest, Maven, Gradle",
        description="Send JUnit XML files to a DataCat server; together they become one run,\n"
        "shown on every page like a pytest run. A file cut short is stored up to where\n"
        "it breaks, and the break is reported (exit status 1).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    junit.add_argument("files", nargs="+", metavar="FILE", help="JUnit XML files")
    add_server_options(junit, scope="ingest")
    junit.add_argument(
        "--project",
        default=None,
        help="the project the tests belong to (default: DATACAT_PROJECT; required)",
    )
    junit.add_argument("--branch", default=None, help="the branch the tests ran on")
    junit.add_argument("--commit", default=None, help="the commit the tests ran on")
    junit.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="K=V",
        help="a label of the run (repeatable)",
    )
    junit.set_defaults(func=run)


def _summary(answer: dict[str, Any], base_url: str) -> str:
    counts = answer.get("counts") or {}
    shown = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    files = answer.get("files", 0)
    what = f"{files} file{'' if files == 1 else 's'}"
    tests = f"{answer.get('tests', 0)} tests" + (f" ({shown})" if shown else "")
    link = f"{base_url}{answer.get('url', '')}"
    run = answer.get("run_id")
    if answer.get("already_imported"):
        return f"already imported: {what} are run {run}, {tests}; nothing stored again · {link}"
    return f"imported {what} as run {run}: {tests}, {answer.get('status')} · {link}"


def run(args: argparse.Namespace) -> int:
    """Send the files; 0 when every file was read to its end and stored."""
    from datacat_client import DatacatError

    project = args.project or os.environ.get("DATACAT_PROJECT")
    if not project:
        return fail("import junit", "--project is required (or DATACAT_PROJECT)", 2)
    files = []
    for name in args.files:
        try:
            files.append((name, Path(name).read_bytes()))
        except OSError as exc:
            return fail("import junit", f"cannot read {name}: {exc.strerror or exc}", 2)
    try:
        with client(args, timeout=600.0) as api:
            _, answer = api.import_junit(
                files, project=project, branch=args.branch, commit=args.commit, labels=args.label
            )
            base_url = api.base_url
    except DatacatError as exc:
        return fail("import junit", str(exc))
    sys.stdout.write(_summary(answer, base_url) + "\n")
    for error in answer.get("errors") or []:
        fail("import junit", error)
    return 1 if answer.get("errors") else 0
