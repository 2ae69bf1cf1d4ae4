"""Batched ingest: exactly once per (session, seq), committed before the answer."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]


def _post(client: Client, body: bytes) -> Any:
    return client.post("/api/ingest", content=body, headers={"content-type": "application/json"})


def test_a_retried_batch_is_not_counted_twice(client: Client) -> None:
    maker = RecordMaker()
    records = [maker.start(product="p")]
    records += [maker.event(f"e{i}", {"i": i}) for i in range(10)]
    records += [maker.make(wire.Metric, name="m", value=float(i)) for i in range(10)]
    records += [maker.result(f"t.py::test_{i}") for i in range(10)]
    body = batch(*records)
    assert _post(client, body).json() == {"accepted": 31, "duplicates": 0}
    assert _post(client, body).json() == {"accepted": 0, "duplicates": 31}
    session = client.get(f"/api/sessions/{maker.session_id}").json()
    assert [e["name"] for e in session["events"] if e["name"].startswith("e")] == [
        f"e{i}" for i in range(10)
    ]
    assert sum(1 for e in session["events"] if e["name"] == "test_result") == 10
    assert sum(1 for m in session["metrics"] if m["name"] == "m") == 10
    assert sum(1 for m in session["metrics"] if m["name"] == "test_duration") == 10


def test_overlapping_retries_store_each_record_once(client: Client) -> None:
    maker = RecordMaker(start=1_000_000)
    start = maker.start()
    events = [maker.event("e", {"i": i}) for i in range(20)]
    assert _post(client, batch(start, *events[:12])).json()["accepted"] == 13
    answer = _post(client, batch(*events[5:])).json()
    assert answer == {"accepted": 8, "duplicates": 7}
    got = [e["data"]["i"] for e in client.get(f"/api/sessions/{maker.session_id}").json()["events"]]
    assert got == list(range(20))


def test_one_batch_may_carry_several_sessions(client: Client) -> None:
    a, b = RecordMaker(), RecordMaker()
    body = batch(
        a.start(name="a"), b.start(name="b"), a.event("x"), b.event("y"), a.make(wire.SessionEnd)
    )
    assert _post(client, body).json() == {"accepted": 5, "duplicates": 0}
    assert client.get(f"/api/sessions/{a.session_id}").json()["status"] == "ended"
    assert [e["name"] for e in client.get(f"/api/sessions/{b.session_id}").json()["events"]] == [
        "y"
    ]


def test_unknown_session_in_a_batch_is_404_and_stores_nothing(client: Client) -> None:
    known = RecordMaker()
    _post(client, batch(known.start()))
    stranger = RecordMaker()
    answer = _post(client, batch(known.event("should not land"), stranger.event("x")))
    assert answer.status_code == 404
    assert stranger.session_id in answer.json()["detail"]
    assert client.get(f"/api/sessions/{known.session_id}").json()["events"] == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"records": [{"kind": "nope", "session_id": "x", "seq": 1, "timestamp": 1}]}', "kind"),
        (b'{"records": [{"kind": "event", "seq": 1, "timestamp": 1, "name": "e"}]}', "session_id"),
        (
            b'{"records": [{"kind": "event", "session_id": "not-a-uuid", "seq": 1, "timestamp": 1, "name": "e"}]}',
            "session_id",
        ),
        (
            b'{"records": [{"kind": "event", "session_id": "%s", "seq": -1, "timestamp": 1, "name": "e"}]}'
            % str(uuid.uuid4()).encode(),
            "seq",
        ),
        (
            b'{"records": [{"kind": "metric", "session_id": "%s", "seq": 1, "timestamp": 1, "name": "m", "value": 1e400}]}'
            % str(uuid.uuid4()).encode(),
            "$.records[0].value",
        ),
        (
            b'{"records": [{"kind": "test_result", "session_id": "%s", "seq": 1, "timestamp": 1, "nodeid": "t", "outcome": "exploded"}]}'
            % str(uuid.uuid4()).encode(),
            "outcome",
        ),
        (b'{"records": 5}', "records"),
        (b'{"records": [', "malformed"),
        (b"[1]", "Expected `object`"),
    ],
)
def test_malformed_batches_are_400_with_the_reason(
    client: Client, body: bytes, needle: str
) -> None:
    answer = _post(client, body)
    assert answer.status_code == 400, answer.text
    assert needle in answer.text


def test_too_many_records_is_refused(client: Client) -> None:
    maker = RecordMaker()
    limit = 20_000
    body = batch(maker.start(), *(maker.event("e") for _ in range(limit)))
    answer = _post(client, body)
    assert answer.status_code == 400
    assert "at most 20000 records" in answer.json()["detail"]


def test_test_results_are_typed_and_show_as_events_and_metrics(client: Client) -> None:
    maker = RecordMaker()
    failing = maker.result(
        "tests/test_x.py::test_fails[a-1]",
        "failed",
        file="tests/test_x.py",
        line=10,
        func="test_fails",
        param_id="a-1",
        markers=["parametrize"],
        call_duration=0.25,
        setup_duration=0.01,
        exc_type="AssertionError",
        exc_message="assert 1 == 2",
        traceback="Traceback\n  line\nAssertionError: assert 1 == 2",
        cpu_time=0.2,
        rss_delta=4096,
    )
    _post(client, batch(maker.start(product="proj"), failing))
    session = client.get(f"/api/sessions/{maker.session_id}").json()
    by_name = {e["name"]: e["data"] for e in session["events"]}
    assert by_name["test_result"]["nodeid"] == "tests/test_x.py::test_fails[a-1]"
    assert by_name["test_result"]["outcome"] == "failed"
    assert by_name["test_result"]["duration"] == pytest.approx(0.26)
    assert by_name["exception"]["type"] == "AssertionError"
    assert by_name["exception"]["message"] == "assert 1 == 2"
    assert by_name["exception"]["traceback"][-1] == "AssertionError: assert 1 == 2"
    metrics = {m["name"]: m for m in session["metrics"]}
    assert metrics["test_duration"]["value"] == pytest.approx(0.26)
    assert "nodeid=tests/test_x.py::test_fails[a-1]" in metrics["test_duration"]["tags"]
    assert "outcome=failed" in metrics["test_duration"]["tags"]
    assert metrics["test_cpu_time"]["value"] == pytest.approx(0.2)
    assert metrics["test_rss_delta"]["value"] == 4096


def _wait_status(client: Client, session_id: str, wanted: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = client.get(f"/api/sessions/{session_id}").json()["status"]
        if status == wanted:
            return status
        time.sleep(0.05)
    return status


def test_liveness_running_crashed_hung_recovered_ended(client: Client) -> None:
    maker = RecordMaker()
    # A heartbeat interval of 0.1 s and the default grace of 3: silent for 0.3 s is crashed.
    _post(client, batch(maker.start(heartbeat_interval=0.1)))
    assert client.get(f"/api/sessions/{maker.session_id}").json()["status"] == "running"
    assert _wait_status(client, maker.session_id, "crashed") == "crashed"
    _post(client, batch(maker.make(wire.Heartbeat, interval=30.0)))
    assert _wait_status(client, maker.session_id, "running") == "running"
    _post(client, batch(maker.event("application_appears_hung", {"seconds_since_heartbeat": 61})))
    assert client.get(f"/api/sessions/{maker.session_id}").json()["status"] == "hung"
    _post(client, batch(maker.event("application_recovered", {"hang_duration": 70})))
    assert client.get(f"/api/sessions/{maker.session_id}").json()["status"] == "running"
    _post(client, batch(maker.make(wire.SessionEnd)))
    assert client.get(f"/api/sessions/{maker.session_id}").json()["status"] == "ended"


def test_a_stale_retried_hang_event_does_not_undo_the_recovery(client: Client) -> None:
    maker = RecordMaker()
    start = maker.start()
    hung = maker.event("application_appears_hung")
    recovered = maker.event("application_recovered")
    _post(client, batch(start, hung, recovered))
    _post(client, batch(hung))  # a retry of an old batch arrives late
    assert client.get(f"/api/sessions/{maker.session_id}").json()["status"] == "running"


def test_session_without_heartbeats_never_crashes(client: Client) -> None:
    sid = client.post("/api/sessions").json()["session_id"]
    time.sleep(0.3)
    assert client.get(f"/api/sessions/{sid}").json()["status"] == "running"


def test_tests_in_progress_name_the_test_a_crash_interrupted(client: Client) -> None:
    maker = RecordMaker()
    _post(
        client,
        batch(
            maker.start(heartbeat_interval=0.1),
            maker.make(wire.TestStart, nodeid="t.py::test_ok", worker="gw0"),
            maker.result("t.py::test_ok", worker="gw0"),
            maker.make(wire.TestStart, nodeid="t.py::test_killed", worker="gw0"),
            maker.make(wire.TestStart, nodeid="t.py::test_other", worker="gw1"),
        ),
    )
    assert _wait_status(client, maker.session_id, "crashed") == "crashed"
    session = client.get(f"/api/sessions/{maker.session_id}").json()
    assert session["in_progress"]["t.py::test_killed"]["worker"] == "gw0"
    assert session["in_progress"]["t.py::test_other"]["worker"] == "gw1"
    assert set(session["in_progress"]) == {"t.py::test_killed", "t.py::test_other"}


def test_state_follows_sequence_order_not_arrival_order(client: Client) -> None:
    maker = RecordMaker()
    start = maker.start(state={"n": 0, "keep": True})
    first = maker.make(wire.StateUpdate, state={"n": 1, "a": {"x": 1}})
    second = maker.make(wire.StateUpdate, state={"n": 2, "a": {"y": 2}})
    third = maker.make(wire.StateUpdate, state={"n": 3})
    # The second patch went to a spool and arrives last.
    _post(client, batch(start, first))
    _post(client, batch(third))
    assert client.get(f"/api/sessions/{maker.session_id}").json()["state"]["n"] == 3
    _post(client, batch(second))
    state = client.get(f"/api/sessions/{maker.session_id}").json()["state"]
    assert state == {"n": 3, "keep": True, "a": {"x": 1, "y": 2}}
