"""A real ``datacat serve``: persistence, a seed-era client, retries, spool and upload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from datacat_client import create_session, wire
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


class SeedClient:
    """A client as the original service's users wrote them: urllib and JSON, nothing else."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read().decode())


def test_a_seed_era_urllib_client_works_unchanged(live_server: ServerProcess) -> None:
    seed = SeedClient(live_server.url)
    session_id = seed.call("POST", "/api/sessions")["session_id"]
    assert seed.call("POST", f"/api/sessions/{session_id}/state", {"window": {"open": ["a"]}}) == {
        "status": "ok"
    }
    assert seed.call("POST", f"/api/sessions/{session_id}/state", {"window": {"active": "a"}}) == {
        "status": "ok"
    }
    assert seed.call(
        "POST", f"/api/sessions/{session_id}/events", {"name": "opened", "data": {"w": "a"}}
    ) == {"status": "ok"}
    assert seed.call(
        "POST",
        f"/api/sessions/{session_id}/metrics",
        {"name": "fps", "value": 59.5, "tags": ["gpu"]},
    ) == {"status": "ok"}
    assert seed.call("POST", f"/api/sessions/{session_id}/end") == {"status": "ok"}
    session = seed.call("GET", f"/api/sessions/{session_id}")
    assert session["state"] == {"window": {"open": ["a"], "active": "a"}}
    assert session["active"] is False
    assert [(e["name"], e["data"]) for e in session["events"]] == [("opened", {"w": "a"})]
    assert [(m["name"], m["value"], m["tags"]) for m in session["metrics"]] == [
        ("fps", 59.5, ["gpu"])
    ]
    everything = seed.call("GET", "/api/data/sessions")
    assert [s["id"] for s in everything] == [session_id]


def test_data_persists_across_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "p.duckdb").start()
    try:
        seed = SeedClient(server.url)
        session_id = seed.call("POST", "/api/sessions", {"name": "kept", "state": {"a": 1}})[
            "session_id"
        ]
        seed.call("POST", f"/api/sessions/{session_id}/events", {"name": "before"})
    finally:
        server.stop()
    server = ServerProcess(tmp_path / "p.duckdb").start()
    try:
        seed = SeedClient(server.url)
        seed.call("POST", f"/api/sessions/{session_id}/events", {"name": "after"})
        session = seed.call("GET", f"/api/sessions/{session_id}")
        assert session["name"] == "kept"
        assert session["state"] == {"a": 1}
        assert [e["name"] for e in session["events"]] == ["before", "after"]
    finally:
        server.stop()


def test_acknowledged_batches_survive_sigkill_and_retries_count_once(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "k.duckdb").start()
    session_id = str(uuid.uuid4())
    records: list[Any] = [wire.SessionStart(session_id=session_id, seq=0, timestamp=time.time())]
    records += [
        wire.Event(session_id=session_id, seq=i, timestamp=time.time(), name="e", data={"i": i})
        for i in range(1, 501)
    ]
    body = wire.encode(wire.Batch(records))
    try:
        answer = httpx.post(f"{server.url}/api/ingest", content=body, timeout=30)
        assert answer.json() == {"accepted": 501, "duplicates": 0}
        server.kill()  # no shutdown code runs
        server = ServerProcess(tmp_path / "k.duckdb", port=server.port).start()
        again = httpx.post(f"{server.url}/api/ingest", content=body, timeout=30)
        assert again.json() == {"accepted": 0, "duplicates": 501}
        events = httpx.get(f"{server.url}/api/sessions/{session_id}", timeout=30).json()["events"]
        assert [e["data"]["i"] for e in events] == list(range(1, 501))
    finally:
        server.stop()


def test_server_down_then_spool_then_upload_stores_everything_once(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    session = create_session(
        url, spool_dir=spool, name="offline", flush_timeout=2.0, heartbeat_interval=None
    )
    session.update_state({"phase": "offline"})
    for i in range(300):
        session.log_event("tick", {"i": i})
        session.log_metric("i", i)
    session.end()
    session.close(timeout=3.0)
    assert session.stats.spooled >= 602
    assert list(spool.glob("*.jsonl"))

    with ServerProcess(tmp_path / "u.duckdb", port=port) as server:
        env = {**os.environ, "DATACAT_URL": server.url}
        done = subprocess.run(
            [sys.executable, "-m", "datacat_server", "upload", str(spool)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert not list(spool.glob("*.jsonl"))
        # Uploading the same records again (a copy kept elsewhere) stores nothing twice.
        stored = httpx.get(f"{server.url}/api/sessions/{session.session_id}", timeout=30).json()
        assert stored["name"] == "offline"
        assert stored["state"] == {"phase": "offline"}
        assert stored["status"] == "ended"
        assert [e["data"]["i"] for e in stored["events"] if e["name"] == "tick"] == list(range(300))
        assert sorted(m["value"] for m in stored["metrics"]) == [float(i) for i in range(300)]
