"""The ``datacat`` command as people type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.server.records import RecordMaker, batch
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def datacat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datacat_server", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _fill(url: str) -> None:
    maker = RecordMaker()
    body = batch(
        maker.start(name="app", product="shop"), *(maker.event("e", {"i": i}) for i in range(3))
    )
    assert httpx.post(f"{url}/api/ingest", content=body, timeout=30).status_code == 200


def test_query_through_a_running_server_in_each_format(live_server: ServerProcess) -> None:
    _fill(live_server.url)
    sql = "SELECT name, count(*) AS n FROM events GROUP BY name"
    table = datacat("query", sql, "--url", live_server.url)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["name", "n"]
    assert table.stdout.splitlines()[2].split() == ["e", "3"]
    assert "(1 row)" in table.stdout
    as_csv = datacat("query", sql, "--url", live_server.url, "--format", "csv")
    assert as_csv.stdout.splitlines() == ["name,n", "e,3"]
    as_json = datacat("query", sql, "--format", "json", env={"DATACAT_URL": live_server.url})
    assert json.loads(as_json.stdout) == [{"name": "e", "n": 3}]


def test_a_refused_statement_says_why_and_exits_1(live_server: ServerProcess) -> None:
    done = datacat("query", "DROP TABLE sessions", "--url", live_server.url)
    assert done.returncode == 1
    assert "DROP statement" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # 3-11 s here: out of the fast subset
def test_query_the_file_directly_when_no_server_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "direct.duckdb"
    with ServerProcess(db) as server:
        _fill(server.url)
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = datacat(
        "query", "SELECT product FROM sessions", "--url", nowhere, env={"DATACAT_DB": str(db)}
    )
    assert done.returncode == 0, done.stderr
    assert "shop" in done.stdout
    explicit = datacat(
        "query", "SELECT count(*) AS n FROM event_log", "--db", str(db), "--format", "csv"
    )
    assert explicit.stdout.splitlines() == ["n", "3"]
    refused = datacat("query", "DELETE FROM event_log", "--db", str(db))
    assert refused.returncode == 1
    assert datacat(
        "query", "SELECT count(*) AS n FROM event_log", "--db", str(db), "--format", "csv"
    ).stdout.splitlines() == ["n", "3"]


def test_a_file_held_by_a_server_is_not_opened_behind_its_back(live_server: ServerProcess) -> None:
    done = datacat("query", "SELECT 1", "--db", str(live_server.db_path))
    assert done.returncode == 1
    assert "held by another process" in done.stderr
    assert "--url" in done.stderr


def test_help_texts(tmp_path: Path) -> None:
    top = datacat("--help")
    for command in ("serve", "upload", "query"):
        assert command in top.stdout
    serve = datacat("serve", "--help")
    assert "DATACAT_DB" in serve.stdout
    assert "127.0.0.1" in serve.stdout


def test_upload_of_a_directory_that_is_not_there_says_so(tmp_path: Path) -> None:
    done = datacat("upload", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "is not a directory" in done.stderr


def test_token_prints_a_secret_and_a_hint_with_its_scope() -> None:
    done = datacat("token", "--scope", "read")
    assert done.returncode == 0
    secret = done.stdout.strip()
    assert len(secret) >= 40
    assert f"DATACAT_TOKENS=read:{secret}" in done.stderr
    assert "'read <token> <name>'" in done.stderr  # not a template left unfilled
