"""A full disk, on a small tmpfs: a write is refused naming the disk, a failed
checkpoint (DuckDB then invalidates the database) is reported by /health, and the
server opens the database again by itself once space is freed. Nothing acknowledged
is lost; nothing refused is stored."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]
JSON = {"content-type": "application/json"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (root only: it needs mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def _results(maker: RecordMaker, n: int) -> bytes:
    return batch(
        *(
            maker.result(f"t.py::test_{maker.seq}", "failed", exc_message=os.urandom(300).hex())
            for _ in range(n)
        )
    )


def _stored_results(client: Client) -> int:
    rows = client.app.state.store.reader().execute("SELECT count(*) FROM results").fetchall()
    return int(rows[0][0])


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.mark.slow
def test_a_full_disk_is_named_and_the_store_recovers(small_disk: Path) -> None:
    settings = Settings(db_path=small_disk / "datacat.duckdb", soft_flush_interval=0.05)
    with TestClient(app=create_app(settings)) as client:
        maker = RecordMaker()
        start = batch(maker.start(product="p"), maker.make(wire.RunStart, project="p"))
        assert client.post("/api/ingest", content=start, headers=JSON).status_code == 200
        assert (
            client.post("/api/ingest", content=_results(maker, 50), headers=JSON).status_code == 200
        )
        acknowledged = _stored_results(client)
        assert acknowledged == 50

        filler = _fill(small_disk)
        refused = client.post("/api/ingest", content=_results(maker, 400), headers=JSON)
        assert refused.status_code == 503
        assert "the disk holding the database is full" in refused.json()["detail"]
        assert "no transaction is active" not in refused.text
        assert refused.headers["retry-after"]
        assert client.get("/health").json()["status"] in ("degraded", "ok")

        # A checkpoint on the full disk: DuckDB invalidates the database.
        store = client.app.state.store
        with pytest.raises(Exception):  # noqa: B017, PT011 - DuckDB's fatal error
            store.writer.maintain(lambda cur: cur.execute("CHECKPOINT"), transaction=False).result()
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert "disk holding the database is full" in health.json()["reason"]
        again = client.post("/api/ingest", content=_results(maker, 10), headers=JSON)
        assert again.status_code == 503
        assert client.get("/api/runs").status_code in (200, 503)  # never a 500

        # Space comes back: the server opens the database again by itself.
        filler.unlink()
        more = _results(maker, 10)
        ok = _eventually(
            lambda: client.post("/api/ingest", content=more, headers=JSON).status_code == 200
        )
        assert ok
        assert client.get("/health").json()["status"] == "ok"
        # What was acknowledged is there, what was refused is not.
        assert _stored_results(client) == acknowledged + 10
        assert client.get(f"/api/runs/{maker.session_id}").status_code == 200
