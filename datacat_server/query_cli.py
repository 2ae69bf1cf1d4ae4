"""``datacat query``: read-only SQL from the terminal.

DuckDB lets one process open a database file, so while a server runs, the query goes
through its API; when no server answers, the file is opened directly (read-only, with
the same statement checks and row and byte limits as the server's SQL endpoint, in this
process: the server runs people's SQL in worker processes instead).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_query"]


class QueryFailed(Exception):
    """The query could not run; the message says why."""


def _via_server(url: str, token: str | None, sql: str, max_rows: int) -> dict[str, Any] | None:
    """The server's answer, or None when no server answers at ``url``."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(
            f"{url.rstrip('/')}/api/sql",
            json={"sql": sql, "max_rows": max_rows},
            headers=headers,
            timeout=120,
        )
    except httpx.TransportError:
        return None
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        raise QueryFailed(f"{answer.status_code}: {detail}")
    result: dict[str, Any] = answer.json()
    return result


def _on_file(path: Path, sql: str, max_rows: int, timeout: float) -> dict[str, Any]:
    try:
        import duckdb
    except ImportError:
        raise QueryFailed(
            "no server answers, and opening the database file directly needs the server's"
            " dependencies: pip install 'datacat[server]' (or point --url at a server)"
        ) from None

    from datacat_server.errors import InvalidInputError
    from datacat_server.queries.sql import run_readonly
    from datacat_server.store.database import lock_down

    if not path.exists():
        raise QueryFailed(f"no server answers and there is no database at {path}")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise QueryFailed(
            f"{path} is held by another process and no server answers at the URL given:"
            f" {exc}. Point --url at the server that holds it."
        ) from None
    try:
        lock_down(con, "1GB")
        try:
            result = run_readonly(con.cursor(), sql, max_rows=max_rows, timeout=timeout)
        except InvalidInputError as exc:
            raise QueryFailed(str(exc)) from None
    finally:
        con.close()
    return {
        "columns": result.columns,
        "types": result.types,
        "rows": [list(row) for row in result.rows],
        "truncated": result.truncated,
    }


def _table(result: dict[str, Any]) -> str:
    columns = [str(c) for c in result["columns"]]
    rows = [["" if v is None else str(v) for v in row] for row in result["rows"]]
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    plural = "s" if len(rows) != 1 else ""
    truncated = ", truncated" if result.get("truncated") else ""
    lines.append(f"({len(rows)} row{plural}{truncated})")
    return "\n".join(lines) + "\n"


def _render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return (
            json.dumps(
                [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]],
                default=str,
                ensure_ascii=False,
                indent=2,
            )
            + "\n"
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(result["columns"])
        writer.writerows(result["rows"])
        return out.getvalue()
    return _table(result)


def run_query(
    sql: str,
    *,
    url: str | None,
    token: str | None,
    db: Path | None,
    fmt: str,
    max_rows: int,
    timeout: float = 60.0,
) -> int:
    """Run ``sql``, print it in ``fmt`` (table, csv, json); the command's exit status."""
    url = url or os.environ.get("DATACAT_URL") or "http://127.0.0.1:8080"
    token = token or os.environ.get("DATACAT_TOKEN")
    try:
        result = None if db is not None else _via_server(url, token, sql, max_rows)
        if result is None:
            path = db or Path(os.environ.get("DATACAT_DB") or "datacat.duckdb")
            result = _on_file(path, sql, max_rows, timeout)
    except QueryFailed as exc:
        sys.stderr.write(f"datacat query: {exc}\n")
        return 1
    sys.stdout.write(_render(result, fmt))
    return 0
