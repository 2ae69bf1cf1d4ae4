"""A newcomer's first commands: ``serve`` and ``demo`` on a busy port, ``datacat query``
with no server running."""

from __future__ import annotations

import io
import os
import pty
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from tests.server.records import RecordMaker, batch
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def datacat(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdout: int | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DATACAT_")}
    return subprocess.run(
        [sys.executable, "-m", "datacat_server", *args],
        cwd=cwd,
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        timeout=120,
        check=False,
        env={**base, **(env or {})},
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another program listens on (bound as servers bind, with SO_REUSEADDR)."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


# -- a busy port ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--db", "mine.duckdb"],
        ["demo", "--db", "mine.duckdb", "--runs", "1"],
    ],
    ids=["serve", "demo"],
)
def test_a_busy_port_stops_with_one_line_and_creates_nothing(
    tmp_path: Path, busy_port: int, command: list[str]
) -> None:
    done = datacat(*command, "--port", str(busy_port), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert lines == [
        f"datacat {command[0]}: port {busy_port} on 127.0.0.1 is in use by another program;"
        " stop it, or choose another port with --port"
    ]
    assert done.stdout == b""  # in particular, no "serving on" and no demo progress
    assert list(tmp_path.iterdir()) == []  # no database, no spool


def test_serve_on_a_busy_port_named_by_the_environment_says_so_too(
    tmp_path: Path, busy_port: int
) -> None:
    done = datacat("serve", cwd=tmp_path, env={"DATACAT_PORT": str(busy_port)})
    assert done.returncode == 1
    assert f"port {busy_port} on 127.0.0.1 is in use" in done.stderr.decode()
    assert not (tmp_path / "datacat.duckdb").exists()


# -- datacat query without a server --------------------------------------------------------


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding one session of product ``shop`` with three events."""
    db = tmp_path_factory.mktemp("query") / "filled.duckdb"
    with ServerProcess(db) as server:
        maker = RecordMaker()
        body = batch(
            maker.start(name="app", product="shop"),
            *(maker.event("e", {"i": i}) for i in range(3)),
        )
        assert httpx.post(f"{server.url}/api/ingest", content=body, timeout=30).status_code == 200
    return db


@pytest.fixture
def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_without_a_server_query_names_the_file_it_reads(
    tmp_path: Path, filled_db: Path, nowhere: str
) -> None:
    sql = "SELECT product FROM sessions"
    done = datacat(
        "query", sql, cwd=tmp_path, env={"DATACAT_URL": nowhere, "DATACAT_DB": str(filled_db)}
    )
    assert done.returncode == 0, done.stderr
    assert b"shop" in done.stdout
    assert done.stderr.decode() == (
        f"datacat query: no server answers at {nowhere}; reading {filled_db.resolve()}\n"
    )
    explicit = datacat("query", sql, "--db", str(filled_db), cwd=tmp_path)
    assert explicit.returncode == 0, explicit.stderr
    assert explicit.stderr.decode() == f"datacat query: reading {filled_db.resolve()}\n"


def test_without_a_server_or_a_database_query_refuses_and_creates_nothing(
    tmp_path: Path, nowhere: str
) -> None:
    done = datacat("query", "SELECT 1", "--url", nowhere, cwd=tmp_path)
    assert done.returncode == 1
    default = tmp_path / "datacat.duckdb"
    err = done.stderr.decode()
    assert f"reading {default}" in err
    assert f"there is no database at {default.name}" in err
    assert "--db or DATACAT_DB" in err
    assert b"rows" not in done.stdout
    missing = tmp_path / "elsewhere.duckdb"
    named = datacat("query", "SELECT 1", cwd=tmp_path, env={"DATACAT_DB": str(missing)})
    assert named.returncode == 1
    assert f"there is no database at {missing}" in named.stderr.decode()
    assert list(tmp_path.iterdir()) == []


def _rows(parquet: bytes) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(io.BytesIO(parquet)).to_pylist()
    return rows


def test_parquet_to_a_file_from_the_database_and_through_a_server(
    tmp_path: Path, filled_db: Path
) -> None:
    sql = "SELECT name, count(*) AS n FROM events GROUP BY name"
    out = tmp_path / "direct.parquet"
    done = datacat(
        "query",
        sql,
        "--db",
        str(filled_db),
        "--format",
        "parquet",
        "--output",
        str(out),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert _rows(out.read_bytes()) == [{"name": "e", "n": 3}]
    # To a pipe, as `> file` does, Parquet goes to standard output.
    piped = datacat("query", sql, "--db", str(filled_db), "--format", "parquet", cwd=tmp_path)
    assert _rows(piped.stdout) == [{"name": "e", "n": 3}]

    copy = tmp_path / "served.duckdb"
    copy.write_bytes(filled_db.read_bytes())
    with ServerProcess(copy) as server:
        served = tmp_path / "served.parquet"
        done = datacat(
            "query",
            sql,
            "--format",
            "parquet",
            "--output",
            str(served),
            cwd=tmp_path,
            env={"DATACAT_URL": server.url},
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == b""  # through the server: no file was read
        assert _rows(served.read_bytes()) == [{"name": "e", "n": 3}]
        as_csv = tmp_path / "served.csv"
        datacat(
            "query",
            sql,
            "--url",
            server.url,
            "--format",
            "csv",
            "--output",
            str(as_csv),
            cwd=tmp_path,
        )
        assert as_csv.read_text().splitlines() == ["name,n", "e,3"]


def test_an_output_file_that_cannot_be_written_is_one_line(tmp_path: Path, filled_db: Path) -> None:
    target = tmp_path / "no" / "such" / "dir.parquet"
    done = datacat(
        "query",
        "SELECT 1",
        "--db",
        str(filled_db),
        "--format",
        "parquet",
        "--output",
        str(target),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stderr.decode().splitlines()[-1] == (
        f"datacat query: cannot write {target}: No such file or directory"
    )


def test_parquet_to_a_terminal_is_refused(tmp_path: Path, filled_db: Path) -> None:
    leader, follower = pty.openpty()
    try:
        done = datacat(
            "query",
            "SELECT 1 AS one",
            "--db",
            str(filled_db),
            "--format",
            "parquet",
            cwd=tmp_path,
            stdout=follower,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "datacat query: Parquet is binary; write it to a file with --output FILE\n"
    )


def test_query_help_lists_parquet_and_the_default_url(tmp_path: Path) -> None:
    from datacat_client._config import DEFAULT_BASE_URL

    text = datacat("query", "--help", cwd=tmp_path).stdout.decode()
    assert "parquet" in text
    assert "--output" in text
    assert DEFAULT_BASE_URL in text
