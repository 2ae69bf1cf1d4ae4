"""Fifty clients at once, writing and reading, against a real server at its default settings."""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from datacat_client import wire
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WRITERS = 40
READERS = 10
SECONDS = 12.0


class Writer(threading.Thread):
    """A CI job's pace: a batch of 20 records about three times a second."""

    def __init__(self, url: str, until: float) -> None:
        super().__init__()
        self.url, self.until = url, until
        self.session_id = str(uuid.uuid4())
        self.sent: list[int] = []
        self.statuses: list[int] = []

    def run(self) -> None:
        seq = 1
        with httpx.Client(timeout=30) as client:
            records: list[Any] = [
                wire.SessionStart(session_id=self.session_id, seq=0, timestamp=time.time())
            ]
            while time.monotonic() < self.until:
                records += [
                    wire.Event(
                        session_id=self.session_id,
                        seq=s,
                        timestamp=time.time(),
                        name="n",
                        data={"s": s},
                    )
                    for s in range(seq, seq + 20)
                ]
                answer = client.post(
                    f"{self.url}/api/ingest", content=wire.encode(wire.Batch(records))
                )
                self.statuses.append(answer.status_code)
                if answer.status_code == 200:
                    self.sent += [r.seq for r in records if isinstance(r, wire.Event)]
                    seq += 20
                    records = []
                else:  # 429 or 503: the same batch again, later
                    time.sleep(float(answer.headers.get("Retry-After", "0.5")))
                    records = [r for r in records if not isinstance(r, wire.Event)]
                time.sleep(0.3)


class Reader(threading.Thread):
    def __init__(self, url: str, until: float, writers: list[Writer]) -> None:
        super().__init__()
        self.url, self.until, self.writers = url, until, writers
        self.latencies: list[float] = []
        self.statuses: list[int] = []

    def run(self) -> None:
        paths = ["/api/sessions?limit=20", "/api/overview", "/api/data/sessions?limit=5"]
        with httpx.Client(timeout=30) as client:
            i = 0
            while time.monotonic() < self.until:
                path = (
                    paths[i % len(paths)]
                    if i % 4
                    else f"/api/sessions/{self.writers[i % len(self.writers)].session_id}"
                )
                started = time.perf_counter()
                answer = client.get(f"{self.url}{path}")
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(answer.status_code)
                i += 1
                time.sleep(0.2)


def test_fifty_clients_no_5xx_no_deadlock_nothing_lost(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "load.duckdb") as server:
        until = time.monotonic() + SECONDS
        writers = [Writer(server.url, until) for _ in range(WRITERS)]
        readers = [Reader(server.url, until, writers) for _ in range(READERS)]
        for thread in [*writers, *readers]:
            thread.start()
        for thread in [*writers, *readers]:
            thread.join(SECONDS + 60)
            assert not thread.is_alive(), "a client is stuck: a deadlock?"
        statuses = [s for t in [*writers, *readers] for s in t.statuses]
        assert not [s for s in statuses if s >= 500 and s != 503], "server errors"
        assert statuses.count(429) == 0, "the default rate limit throttled a CI-like load"
        latencies = sorted(t for reader in readers for t in reader.latencies)
        p50 = statistics.median(latencies)
        p95 = latencies[int(len(latencies) * 0.95)]
        print(
            f"\n{len(statuses)} requests; read latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
        assert p95 < 5.0
        with httpx.Client(timeout=60) as client:
            for writer in writers:
                stored = [
                    e["data"]["s"]
                    for e in client.get(f"{server.url}/api/sessions/{writer.session_id}").json()[
                        "events"
                    ]
                ]
                assert sorted(stored) == writer.sent, "a record was lost or stored twice"
                assert len(writer.sent) >= 20
