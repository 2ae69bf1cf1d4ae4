"""Hang detection: `HangDetector` on a fake clock; `HeartbeatMonitor` with its thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from datacat_client import DatacatClient, HeartbeatMonitor, Session, wire
from datacat_client._heartbeat import Hang, HangDetector

from .fakes import BASE_URL, FakeClock, FakeServer, wait_for

SID = "12345678-1234-4234-8234-123456789abc"


class Reports:
    """Collects what a detector reports; can be told to fail."""

    def __init__(self) -> None:
        self.hangs: list[Hang] = []
        self.recoveries: list[tuple[Hang, float]] = []
        self.fail = False

    def hung(self, hang: Hang) -> None:
        if self.fail:
            raise RuntimeError("the network is gone")
        self.hangs.append(hang)

    def recovered(self, hang: Hang, duration: float) -> None:
        if self.fail:
            raise RuntimeError("the network is gone")
        self.recoveries.append((hang, duration))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture
def detector(clock: FakeClock, reports: Reports) -> HangDetector:
    return HangDetector(10.0, reports.hung, reports.recovered, check_interval=1.0, clock=clock)


def test_a_hang_is_reported_once_after_the_timeout(
    detector: HangDetector, clock: FakeClock, reports: Reports
) -> None:
    detector.beat("test_x")
    clock.advance(10.0)
    assert detector.check() is None  # not longer than the timeout yet
    clock.advance(0.5)
    hang = detector.check()
    assert hang == Hang("test_x", clock.now - 10.5, 10.5)
    for _ in range(5):
        clock.advance(1.0)
        assert detector.check() is None  # still hung: said once
    assert reports.hangs == [hang]


def test_the_next_beat_reports_the_recovery_and_how_long_it_lasted(
    detector: HangDetector, clock: FakeClock, reports: Reports
) -> None:
    detector.beat("test_x")
    began = clock.now
    clock.advance(11.0)
    detector.check()
    clock.advance(4.0)
    detector.beat("test_y")
    ((hang, duration),) = reports.recoveries
    assert (hang.subject, duration) == ("test_x", clock.now - began)
    detector.beat()  # no hang any more: nothing new
    assert len(reports.recoveries) == 1
    clock.advance(11.0)  # a second hang is a new hang, reported again
    assert detector.check() is not None
    assert len(reports.hangs) == 2


def test_regular_beats_keep_it_quiet(
    detector: HangDetector, clock: FakeClock, reports: Reports
) -> None:
    for _ in range(100):
        clock.advance(9.0)
        detector.beat()
        assert detector.check() is None
    assert (reports.hangs, reports.recoveries) == ([], [])


def test_idle_watches_nothing_and_ends_a_hang(
    detector: HangDetector, clock: FakeClock, reports: Reports
) -> None:
    detector.idle()
    clock.advance(1000.0)
    assert detector.check() is None  # between tests: nothing to watch
    detector.beat("test_x")
    clock.advance(20.0)
    assert detector.check() is not None
    detector.idle()
    assert [hang.subject for hang, _ in reports.recoveries] == ["test_x"]


def test_failing_reports_are_logged_and_the_detector_goes_on(
    detector: HangDetector,
    clock: FakeClock,
    reports: Reports,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reports.fail = True
    clock.advance(11.0)
    assert detector.check() is not None  # the report raised; check() did not
    detector.beat()  # nor does the recovery's
    reports.fail = False
    clock.advance(11.0)
    assert detector.check() is not None
    assert len(reports.hangs) == 1
    assert len([r for r in caplog.records if "could not report" in r.getMessage()]) == 2


# -- HeartbeatMonitor, with its thread ----------------------------------------------------


class Events:
    """A `Session`-like target that records events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def log_event(self, name: str, data: Any = None) -> None:
        self.events.append((name, data))

    def named(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]


def test_the_monitor_logs_a_hang_with_every_thread_stack_then_the_recovery() -> None:
    target = Events()
    monitor = HeartbeatMonitor(target, timeout=0.2, check_interval=0.02).start()
    try:
        assert wait_for(lambda: target.named("application_appears_hung"))
        monitor.heartbeat()
    finally:
        monitor.stop()
    (hung,) = target.named("application_appears_hung")
    assert hung["timeout"] == 0.2
    assert hung["seconds_since_heartbeat"] >= 0.2  # rounded to the millisecond
    names = {t["name"] for t in hung["threads"]}
    assert {threading.main_thread().name, "datacat-heartbeat"} <= names
    main = next(t for t in hung["threads"] if t["name"] == threading.main_thread().name)
    assert any("test_the_monitor_logs_a_hang" in line for line in main["stack"])
    (recovered,) = target.named("application_recovered")
    assert recovered["hang_duration"] > 0.2


def test_stop_is_prompt_and_is_running_follows() -> None:
    monitor = HeartbeatMonitor(Events(), timeout=60, check_interval=5)
    assert monitor.is_running() is False
    assert monitor.start() is monitor
    assert monitor.is_running() is True
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 1.0  # not the 5 s check interval
    assert monitor.is_running() is False


def test_on_a_client_it_needs_a_session_id_and_logs_through_it(fake: FakeServer) -> None:
    client = DatacatClient(BASE_URL, transport=fake)
    with pytest.raises(ValueError, match="session_id"):
        HeartbeatMonitor(client)
    monitor = HeartbeatMonitor(client, SID, timeout=0.05, check_interval=0.02).start()
    try:
        assert wait_for(lambda: fake.requests)
    finally:
        monitor.stop()
        client.close()
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", f"/api/sessions/{SID}/events")
    assert json.loads(request.body or b"")["name"] == "application_appears_hung"


def test_session_monitor_logs_to_the_session(
    make_session: Callable[..., Session], fake: FakeServer
) -> None:
    session = make_session()
    monitor = session.start_heartbeat_monitor(timeout=0.1, check_interval=0.02)
    assert monitor.is_running()
    assert wait_for(
        lambda: (
            session.flush(5.0)
            and any(e.name == "application_appears_hung" for e in fake.of_kind(wire.Event))
        )
    )
    session.heartbeat()
    session.end()  # stops the monitor
    assert not monitor.is_running()
    assert session.flush(5.0)
    names = [e.name for e in fake.of_kind(wire.Event)]
    assert names == ["application_appears_hung", "application_recovered"]
