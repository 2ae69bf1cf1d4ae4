"""A forked child gets a fresh sender: it logs and flushes; the parent goes on unharmed."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from datacat_client import create_session, wire

from .fakes import INGEST_PATHS, CapturingServer, Reply, ingested_records

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the child did not finish in time")


def _ingested(server: CapturingServer) -> list[wire.Record]:
    return [
        record
        for request in server.requests
        if request.path in INGEST_PATHS
        for record in ingested_records(request.path, request.body)
    ]


def test_forked_child_logs_through_its_own_sender(server: CapturingServer, spool_dir: Path) -> None:
    acks = [Reply(200, {"accepted": 1, "duplicates": 0}) for _ in range(20)]
    server.reply(*acks)
    session = create_session(server.url, spool_dir=spool_dir, heartbeat_interval=None)
    try:
        session.log_event("parent-before")
        assert session.flush(2.0)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                session.log_event("child")
                code = 0 if session.flush(3.0) else 3
            finally:
                os._exit(code)
        session.log_event("parent-after")
        assert session.flush(2.0)
        assert _wait_child(pid, 5.0) == 0
    finally:
        session.close(1.0)
    events = [r for r in _ingested(server) if isinstance(r, wire.Event)]
    names = sorted(e.name for e in events)
    assert names == ["child", "parent-after", "parent-before"]
    assert len({e.seq for e in events}) == 3
    assert not list(spool_dir.glob("*.jsonl"))
