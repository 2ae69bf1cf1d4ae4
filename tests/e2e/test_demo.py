"""``datacat demo``: a newcomer's first minute."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_fills_a_new_database_and_serves_it(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "demo.duckdb"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "datacat_server",
            "demo",
            "--db",
            str(db),
            "--runs",
            "2",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ready"):
                break
        assert any(line.startswith("Ready") for line in lines), "".join(lines)
        url = f"http://127.0.0.1:{port}"
        runs = httpx.get(f"{url}/api/runs", timeout=30).json()
        assert len(runs) == 2
        assert {run["project"] for run in runs} == {"shop"}
        assert all(run["counts"].get("passed", 0) > 20 for run in runs)
        tests = httpx.get(f"{url}/api/runs/{runs[0]['id']}/tests", timeout=30).json()
        assert {t["outcome"] for t in tests} >= {"passed", "failed", "skipped", "xfailed", "error"}
        sessions = httpx.get(f"{url}/api/sessions", params={"limit": 100}, timeout=30).json()
        assert {s["name"] for s in sessions} >= {"pytest", "hanging", "recovering"}
        assert httpx.get(f"{url}/api/metrics/names", timeout=30).json()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    refused = subprocess.run(
        [sys.executable, "-m", "datacat_server", "demo", "--db", str(db), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "exists" in refused.stderr
