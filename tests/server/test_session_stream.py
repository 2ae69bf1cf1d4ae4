"""A session's detail streams its events and metrics a chunk at a time: a session of a
million events costs the server a chunk, not the whole answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.queries import sessions
from datacat_server.store import Store
from tests.server.records import RecordMaker

Client = TestClient  # type: ignore[type-arg]

CHUNK = 100
EVENTS, METRICS = 2 * CHUNK + 37, CHUNK + 1  # past chunk boundaries, not on them


def _session(store: Store) -> str:
    maker = RecordMaker()
    records: list[Any] = [maker.start(product="stream")]
    records += [maker.event("tick", {"i": i}, timestamp=1_000 + i) for i in range(EVENTS)]
    records += [
        maker.make(wire.Metric, name="load", value=float(i), timestamp=1_000 + i)
        for i in range(METRICS)
    ]
    store.write_sync(records)
    return maker.session_id


def test_the_detail_is_every_event_and_metric_in_order_in_bounded_chunks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "STREAM_CHUNK", CHUNK)
    session_id = _session(store)
    cur = store.db.new_cursor()
    row = sessions.session_row(cur, session_id)
    assert row is not None
    chunks = list(sessions.session_json(cur, row))
    whole = b"".join(chunks)
    detail = json.loads(whole)
    assert [e["data"]["i"] for e in detail["events"]] == list(range(EVENTS))
    assert [m["value"] for m in detail["metrics"]] == [float(i) for i in range(METRICS)]
    # Three chunks of events and two of metrics, each a fraction of the answer.
    event_chunks = [c for c in chunks if b'"tick"' in c]
    assert len(event_chunks) == 3
    assert max(len(c) for c in chunks) < len(whole) / 2


def test_the_api_answers_the_same_stream(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "STREAM_CHUNK", CHUNK)
    session_id = _session(client.app.state.store)
    answer = client.get(f"/api/sessions/{session_id}")
    assert answer.status_code == 200
    assert answer.headers.get("content-length") is None  # streamed, not buffered
    detail = answer.json()
    assert len(detail["events"]) == EVENTS
    assert detail["events"][-1]["data"] == {"i": EVENTS - 1}
    assert len(detail["metrics"]) == METRICS
