"""Nothing acknowledged is lost: a real server killed with SIGKILL at random moments.

Three clients send batches while the server is killed (``kill -9``: no shutdown code
runs) at random moments, at least 20 times. After each restart every record whose
batch was acknowledged must be there; a batch that got no answer is sent again; at the
end, every record is stored exactly once.
"""

from __future__ import annotations

import random
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

KILLS = 20
BATCH = 40


class Sender:
    """A client that remembers what was acknowledged, and retries what was not."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id = str(uuid.uuid4())
        self.acked: set[int] = set()
        self.sent = 0
        self.pending: list[Any] | None = None  # the batch without an answer yet
        self.seq = 1
        self.started = False
        self.stop = threading.Event()
        self.errors: list[str] = []

    def _batch(self) -> list[Any]:
        if self.pending is not None:
            return self.pending
        records: list[Any] = []
        if not self.started:
            records.append(
                wire.SessionStart(session_id=self.session_id, seq=0, timestamp=time.time())
            )
        for _ in range(BATCH):
            records.append(
                wire.Event(
                    session_id=self.session_id,
                    seq=self.seq,
                    timestamp=time.time(),
                    name="n",
                    data={"seq": self.seq},
                )
            )
            self.seq += 1
        self.pending = records
        return records

    def post_once(self, client: httpx.Client) -> bool:
        records = self._batch()
        try:
            answer = client.post(
                f"{self.url}/api/ingest", content=wire.encode(wire.Batch(records)), timeout=10
            )
        except httpx.HTTPError:
            return False  # no answer: it may or may not be stored; send it again
        if answer.status_code != 200:
            if answer.status_code >= 500 and answer.status_code != 503:
                self.errors.append(f"{answer.status_code}: {answer.text[:200]}")
            return False
        self.started = True
        self.acked.update(r.seq for r in records if isinstance(r, wire.Event))
        self.sent += len(records)
        self.pending = None
        return True

    def run(self) -> None:
        with httpx.Client() as client:
            while not self.stop.is_set():
                if not self.post_once(client):
                    time.sleep(0.05)


def _stored(url: str, session_id: str) -> list[int]:
    answer = httpx.get(f"{url}/api/sessions/{session_id}", timeout=30)
    if answer.status_code == 404:
        return []
    return [e["data"]["seq"] for e in answer.json()["events"]]


def test_acknowledged_records_survive_20_sigkills_and_are_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    server = ServerProcess(db).start()
    senders = [Sender(server.url) for _ in range(3)]
    threads = [threading.Thread(target=s.run) for s in senders]
    rng = random.Random(20261127)
    deadline = time.monotonic() + 240
    try:
        for thread in threads:
            thread.start()
        for kill in range(KILLS):
            assert time.monotonic() < deadline, f"only {kill} kills in the time allowed"
            time.sleep(rng.uniform(0.05, 0.6))
            acked_before = {id(s): set(s.acked) for s in senders}
            server.kill()
            server = ServerProcess(db, port=server.port).start()
            for sender in senders:
                stored = set(_stored(server.url, sender.session_id))
                missing = acked_before[id(sender)] - stored
                assert not missing, f"kill {kill + 1}: {len(missing)} acknowledged records lost"
        for sender in senders:
            sender.stop.set()
        for thread in threads:
            thread.join(30)
        # The last unanswered batches, sent again until answered.
        with httpx.Client() as client:
            for sender in senders:
                for _ in range(100):
                    if sender.pending is None or sender.post_once(client):
                        break
                    time.sleep(0.1)
        for sender in senders:
            assert sender.errors == []
            stored = _stored(server.url, sender.session_id)
            assert len(stored) == len(set(stored)), "a record was stored twice"
            assert set(stored) == sender.acked
            assert sorted(stored) == list(range(1, sender.seq))
            assert len(sender.acked) > 100
    finally:
        for sender in senders:
            sender.stop.set()
        server.stop()
