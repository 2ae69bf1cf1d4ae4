"""`Session` and `create_session`: records built, pinned, validated; the context manager."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given

from datacat_client import DatacatClient, Session, create_session, wire
from datacat_client._session import _pin, _seq_base
from tests.strategies import json_values

from .fakes import BASE_URL, SESSION_ID, FakeServer, answer, wait_for

MakeSession = Callable[..., Session]


def _kinds(fake: FakeServer) -> list[str]:
    return [type(r).__name__ for r in sorted(fake.stored, key=lambda r: r.seq)]


def test_create_session_returns_at_once_even_if_the_server_hangs(
    make_session: MakeSession, fake: FakeServer
) -> None:
    fake.script.append(30.0)
    started = time.monotonic()
    session = make_session(name="run", product="app", version="1.2", labels={"env": "ci"})
    assert time.monotonic() - started < 0.5  # the first post hangs for 30 s
    assert len(session.session_id) == 36
    assert isinstance(session.client, DatacatClient)


def test_session_start_is_the_first_record(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session(
        name="run",
        product="app",
        version="1.2",
        labels={"env": "ci", "n": 3},
        state={"phase": "boot"},
    )
    assert session.flush(5.0)
    (start,) = fake.of_kind(wire.SessionStart)
    assert start.session_id == session.session_id
    assert (start.name, start.product, start.version) == ("run", "app", "1.2")
    assert start.labels == {"env": "ci", "n": "3"}
    assert start.state == {"phase": "boot"}


def test_given_session_id_is_used_and_a_bad_one_refused(make_session: MakeSession) -> None:
    sid = "12345678-1234-4234-8234-123456789abc"
    assert make_session(session_id=sid).session_id == sid
    with pytest.raises(ValueError, match="UUID"):
        make_session(session_id="not-a-uuid")


def test_logging_calls_build_the_records(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    session.update_state({"window": {"open": ["a", "b"]}})
    session.log_event("clicked", {"x": 1})
    session.log_event("bare")
    session.log_metric("fps", 59.5, ["scene:1"])
    session.log_metric("latency", 12, {"route": "/", "code": 200})
    assert session.flush(5.0)
    (state,) = fake.of_kind(wire.StateUpdate)
    assert state.state == {"window": {"open": ["a", "b"]}}
    events = {e.name: e for e in fake.of_kind(wire.Event)}
    assert events["clicked"].data == {"x": 1}
    assert events["bare"].data is None
    metrics = {m.name: m for m in fake.of_kind(wire.Metric)}
    assert (metrics["fps"].value, metrics["fps"].tags) == (59.5, ["scene:1"])
    assert (metrics["latency"].value, metrics["latency"].tags) == (12.0, ["route=/", "code=200"])
    assert _kinds(fake) == ["SessionStart", "StateUpdate", "Event", "Event", "Metric", "Metric"]


def test_data_is_pinned_at_call_time(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    data = {"items": [1]}
    session.log_event("snapshot", data)
    session.update_state(data)
    data["items"].append(2)  # the caller changes its object afterwards
    assert session.flush(5.0)
    assert fake.of_kind(wire.Event)[0].data == {"items": [1]}
    assert fake.of_kind(wire.StateUpdate)[0].state == {"items": [1]}


def test_values_json_cannot_hold_are_sent_as_text(
    make_session: MakeSession, fake: FakeServer
) -> None:
    session = make_session()
    session.log_event("odd", {"when": object(), (1, 2): "tuple key", "nan": math.nan})
    assert session.flush(5.0)
    data = fake.of_kind(wire.Event)[0].data
    assert data["(1, 2)"] == "tuple key"
    assert data["when"].startswith("<object object")
    assert data["nan"] is None


@given(value=json_values)
def test_any_json_value_round_trips_as_event_data(value: Any) -> None:
    pinned = wire.Event(session_id=SESSION_ID, seq=1, timestamp=1.0, name="v", data=_pin(value))
    decoded = wire.record_decoder.decode(wire.encode(pinned))
    assert isinstance(decoded, wire.Event)
    assert decoded.data == value


def test_seqs_increase_and_two_sessions_on_one_id_never_collide(
    make_session: MakeSession, fake: FakeServer
) -> None:
    sid = "12345678-1234-4234-8234-123456789abc"
    first = make_session(session_id=sid)
    for n in range(100):
        first.log_event("a", n)
    # The second one starts later (its numbers start at its creation time in µs), and
    # the first logs 100 more: the clock must have moved past all of those.
    last = first.next_seq()
    assert wait_for(lambda: _seq_base() > last + 100)
    second = make_session(session_id=sid)
    for n in range(100):
        second.log_event("b", n)
    for n in range(100):
        first.log_event("a", n)
    assert first.flush(5.0)
    assert second.flush(5.0)
    stored = [r for r in fake.stored if isinstance(r, wire.Event)]
    assert len(stored) == 300  # nothing dropped as a duplicate
    assert len({r.seq for r in stored}) == 300
    first_seqs = [r.seq for r in stored if r.name == "a"]
    assert first_seqs == sorted(first_seqs)


def test_non_finite_metric_is_dropped_with_one_warning_per_name(
    make_session: MakeSession, fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    session = make_session()
    with caplog.at_level(logging.WARNING, logger="datacat"):
        session.log_metric("ratio", math.nan)
        session.log_metric("ratio", math.inf)
        session.log_metric("other", -math.inf)
        session.log_metric("ratio", "not a number")  # type: ignore[arg-type]
        session.log_metric("ratio", 0.5)
    assert session.flush(5.0)
    assert [(m.name, m.value) for m in fake.of_kind(wire.Metric)] == [("ratio", 0.5)]
    assert session.stats.dropped == 4
    messages = [r.getMessage() for r in caplog.records if r.name == "datacat"]
    assert len(messages) == 2
    assert any("'ratio'" in m for m in messages)
    assert any("'other'" in m for m in messages)


def test_bad_input_is_dropped_without_raising(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    session.log_event("")
    session.log_metric("", 1.0)
    session.update_state(["not", "a", "dict"])  # type: ignore[arg-type]
    session.log_event(42, "named by a number")  # type: ignore[arg-type]
    assert session.flush(5.0)
    assert [e.name for e in fake.of_kind(wire.Event)] == ["42"]
    assert fake.of_kind(wire.Metric) == []
    assert fake.of_kind(wire.StateUpdate) == []
    assert session.stats.dropped == 3


def _explode() -> None:
    raise RuntimeError("boom")


def test_log_exception_shape(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    try:
        _explode()
    except RuntimeError:
        session.log_exception(extra_data={"order": 7})
    session.log_exception(ValueError("given as an instance"))
    assert session.flush(5.0)
    first, second = fake.of_kind(wire.Event)
    assert first.name == "exception"
    assert first.data["type"] == "RuntimeError"
    assert first.data["message"] == "boom"
    assert first.data["order"] == 7
    assert first.data["traceback"][0].startswith("Traceback")
    assert any("_explode" in line for line in first.data["traceback"])
    assert second.data["type"] == "ValueError"


def test_context_manager_logs_the_escaping_exception_then_ends(
    fake: FakeServer, spool_dir: Any
) -> None:
    with (
        pytest.raises(KeyError, match="missing"),
        create_session(BASE_URL, transport=fake, spool_dir=spool_dir, heartbeat_interval=None),
    ):
        raise KeyError("missing")
    kinds = _kinds(fake)
    assert kinds == ["SessionStart", "Event", "SessionEnd"]
    (exception,) = fake.of_kind(wire.Event)
    assert exception.name == "exception"
    assert exception.data["type"] == "KeyError"
    assert fake.closed


def test_context_manager_without_exception_just_ends(fake: FakeServer, spool_dir: Any) -> None:
    with create_session(
        BASE_URL, transport=fake, spool_dir=spool_dir, heartbeat_interval=None
    ) as session:
        session.log_event("work")
    assert _kinds(fake) == ["SessionStart", "Event", "SessionEnd"]


def test_logging_after_end_is_still_sent(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    session.end()
    session.end()  # once is enough
    session.log_event("late")
    assert session.flush(5.0)
    assert _kinds(fake) == ["SessionStart", "SessionEnd", "Event"]


def test_record_fills_session_seq_and_timestamp(
    make_session: MakeSession, fake: FakeServer
) -> None:
    session = make_session()
    before = time.time()
    session.record(
        wire.TestResult, nodeid="tests/test_a.py::test_x", outcome="passed", call_duration=0.01
    )
    session.record(wire.RunFinish, exit_status=0, status="passed", counts={"passed": 1})
    assert session.flush(5.0)
    (result,) = fake.of_kind(wire.TestResult)
    assert result.session_id == session.session_id
    assert result.timestamp >= before
    (finish,) = fake.of_kind(wire.RunFinish)
    assert finish.seq > result.seq


def test_an_invalid_record_is_dropped_alone(
    make_session: MakeSession, fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    session = make_session()
    with caplog.at_level(logging.WARNING, logger="datacat"):
        session.record(wire.TestResult, nodeid="t", outcome="exploded")
        session.record(wire.TestResult, nodeid="t", outcome="failed")
    assert session.flush(5.0)
    assert [r.outcome for r in fake.of_kind(wire.TestResult)] == ["failed"]
    assert session.stats.dropped == 1
    assert any("TestResult" in r.getMessage() for r in caplog.records)


def test_submit_and_next_seq(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    seq = session.next_seq()
    session.submit(
        wire.TestStart(session_id=session.session_id, seq=seq, timestamp=time.time(), nodeid="t")
    )
    assert session.flush(5.0)
    assert fake.of_kind(wire.TestStart)[0].seq == seq
    assert session.next_seq() > seq


def test_heartbeat_without_a_monitor_logs_nothing(
    make_session: MakeSession, fake: FakeServer
) -> None:
    session = make_session()
    session.heartbeat()
    session.stop_heartbeat_monitor()
    assert session.flush(5.0)
    assert _kinds(fake) == ["SessionStart"]


def test_liveness_heartbeats_are_sent_until_end(
    make_session: MakeSession, fake: FakeServer
) -> None:
    session = make_session(heartbeat_interval=0.05)
    assert wait_for(lambda: len(fake.of_kind(wire.Heartbeat)) >= 2)
    beats = fake.of_kind(wire.Heartbeat)
    assert beats[0].interval == 0.05
    assert fake.of_kind(wire.SessionStart)[0].heartbeat_interval == 0.05
    session.end()
    submitted = session.stats.submitted
    session.sender._next_heartbeat = 0.0  # long due: still none after the end
    session.sender._heartbeat_due()
    assert session.stats.submitted == submitted


def test_get_details_flushes_first(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session(sender_options={"linger": 60.0})
    path = f"/api/sessions/{session.session_id}"
    fake.answers[path] = answer(200, {"id": session.session_id, "events": [{"name": "written"}]})
    session.log_event("written")
    details = session.get_details()
    assert details["events"] == [{"name": "written"}]
    # The batch holding the event was acknowledged before the read.
    assert [r.path for r in fake.requests] == ["/api/ingest/v2", path]
    assert [e.name for e in fake.of_kind(wire.Event)] == ["written"]


def test_stats_are_exposed(make_session: MakeSession) -> None:
    session = make_session()
    session.log_event("a")
    assert session.flush(5.0)
    stats = session.stats
    assert stats.submitted == 2
    assert stats.sent == 2
    assert stats.batches >= 1


def test_log_event_is_cheap(make_session: MakeSession) -> None:
    """Target: median 5 µs per call; asserted loosely here (shared CI machines)."""
    session = make_session(sender_options={"max_queue": 100_000})
    clock = time.perf_counter_ns
    samples = []
    data = {"user": "alice", "items": [1, 2, 3]}
    for n in range(20_000):
        started = clock()
        session.log_event("clicked", data)
        samples.append(clock() - started)
        if n % 2 == 0:
            session.log_metric("fps", 60.0)
    assert statistics.median(samples) < 20_000  # ns
