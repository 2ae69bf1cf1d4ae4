"""``datacat import junit``: send JUnit XML files to a DataCat server as one run.

The server reads the files (``POST /api/import/junit``), so this needs the base install
only (httpx); nothing here imports a server dependency.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_EPILOG = """examples:
  gotestsum --junitfile report.xml ./...
  datacat import junit report.xml --project shop --branch main --commit "$(git rev-parse HEAD)"

  npx jest --reporters=default --reporters=jest-junit   # writes junit.xml
  datacat import junit junit.xml --project web --label suite=unit

  mvn test   # Surefire writes target/surefire-reports/TEST-*.xml
  datacat import junit target/surefire-reports/TEST-*.xml --project api

Importing the same files again stores nothing: it says which run they already are.
"""


def add_parser(subparsers: Any) -> None:
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
    junit.add_argument(
        "--url", default=None, help="server URL (default: DATACAT_URL, else http://127.0.0.1:8080)"
    )
    junit.add_argument("--token", default=None, help="API token (default: DATACAT_TOKEN)")
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


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"datacat import junit: {message}\n")
    return status


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
    import httpx

    from datacat_client._config import resolve_base_url, resolve_token

    project = args.project or os.environ.get("DATACAT_PROJECT")
    if not project:
        return _fail("--project is required (or DATACAT_PROJECT)", 2)
    files = []
    for name in args.files:
        try:
            files.append(("file", (name, Path(name).read_bytes(), "application/xml")))
        except OSError as exc:
            return _fail(f"cannot read {name}: {exc.strerror or exc}", 2)
    base_url = resolve_base_url(args.url)
    token = resolve_token(args.token)
    params: dict[str, str | list[str]] = {"project": project, "label": args.label}
    params.update({key: value for key in ("branch", "commit") if (value := getattr(args, key))})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(
            f"{base_url}/api/import/junit",
            files=files,
            params=params,
            headers=headers,
            timeout=600,
        )
    except httpx.TransportError as exc:
        return _fail(f"no server answers at {base_url}: {exc}")
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code not in (200, 201, 207) or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        return _fail(f"{answer.status_code}: {detail or answer.text[:500]}")
    sys.stdout.write(_summary(body, base_url) + "\n")
    for error in body.get("errors") or []:
        _fail(error)
    return 1 if body.get("errors") else 0
