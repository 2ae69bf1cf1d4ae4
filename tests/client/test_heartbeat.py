"""`HeartbeatMonitor`: one hang event with thread stacks, recovery, prompt stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from datacat_client import DatacatClient, HeartbeatMonitor, Session, wire

from .fakes import FakeTransport

SID = "12345678-1234-4234-8234-123456789abc"


class Recorder:
    """A `Session`-like target that records events, and can be told to fail."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.fail = False

    def log_event(self, name: str, data: Any = None) -> None:
        if self.fail:
            raise RuntimeError("the network is gone")
        self.events.append((name, data))

    def named(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]


def _wait_for(condition: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_hang_is_logged_once_with_every_thread_stack(recorder: Recorder) -> None:
    monitor = HeartbeatMonitor(recorder, timeout=0.2, check_interval=0.05).start()
    try:
        assert _wait_for(lambda: bool(recorder.named("application_appears_hung")))
        time.sleep(0.2)  # four more checks, still hung
        hung = recorder.named("application_appears_hung")
        assert len(hung) == 1
        (data,) = hung
        assert data["timeout"] == 0.2
        assert data["seconds_since_heartbeat"] > 0.2
        names = {t["name"] for t in data["threads"]}
        assert threading.main_thread().name in names
        assert "datacat-heartbeat" in names
        main = next(t for t in data["threads"] if t["name"] == threading.main_thread().name)
        assert any("test_hang_is_logged_once" in line for line in main["stack"])
    finally:
        monitor.stop()


def test_next_heartbeat_after_a_hang_logs_recovery_with_its_duration(recorder: Recorder) -> None:
    began = time.monotonic()  # the monitor's clock starts a little after this
    monitor = HeartbeatMonitor(recorder, timeout=0.2, check_interval=0.05).start()
    try:
        assert _wait_for(lambda: bool(recorder.named("application_appears_hung")))
        time.sleep(0.05)
        monitor.heartbeat()
        lasted = time.monotonic() - began
        (recovered,) = recorder.named("application_recovered")
        assert 0.2 < recovered["hang_duration"] <= lasted + 0.01
        monitor.heartbeat()  # no hang any more: nothing new
        assert len(recorder.named("application_recovered")) == 1
        # A second hang is a new hang, logged again.
        assert _wait_for(lambda: len(recorder.named("application_appears_hung")) == 2)
    finally:
        monitor.stop()


def test_regular_heartbeats_keep_it_quiet(recorder: Recorder) -> None:
    monitor = HeartbeatMonitor(recorder, timeout=0.2, check_interval=0.02).start()
    try:
        for _ in range(20):
            monitor.heartbeat()
            time.sleep(0.02)
    finally:
        monitor.stop()
    assert recorder.events == []


def test_stop_is_prompt_and_is_running_follows(recorder: Recorder) -> None:
    monitor = HeartbeatMonitor(recorder, timeout=60, check_interval=5)
    assert monitor.is_running() is False
    assert monitor.start() is monitor
    assert monitor.is_running() is True
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 0.2
    assert monitor.is_running() is False


def test_logging_failures_do_not_stop_the_monitor(recorder: Recorder) -> None:
    recorder.fail = True
    monitor = HeartbeatMonitor(recorder, timeout=0.05, check_interval=0.02).start()
    try:
        time.sleep(0.15)
        assert monitor.is_running()
        monitor.heartbeat()  # recovery fails to log too, and does not raise
        recorder.fail = False
        assert _wait_for(lambda: bool(recorder.named("application_appears_hung")))
    finally:
        monitor.stop()


def test_on_a_client_it_needs_a_session_id_and_logs_through_it() -> None:
    class RecordingClient(DatacatClient):
        def __init__(self) -> None:
            super().__init__("http://datacat.test")
            self.logged: list[tuple[str, str, Any]] = []

        def log_event(self, session_id: str, name: str, data: Any = None) -> dict[str, Any]:
            self.logged.append((session_id, name, data))
            return {"status": "ok"}

    client = RecordingClient()
    with pytest.raises(ValueError, match="session_id"):
        HeartbeatMonitor(client)
    monitor = HeartbeatMonitor(client, SID, timeout=0.05, check_interval=0.02).start()
    try:
        assert _wait_for(lambda: bool(client.logged))
        assert client.logged[0][:2] == (SID, "application_appears_hung")
    finally:
        monitor.stop()
        client.close()


def test_session_monitor_logs_to_the_session(
    make_session: Callable[..., Session], fake: FakeTransport
) -> None:
    session = make_session()
    monitor = session.start_heartbeat_monitor(timeout=0.1, check_interval=0.02)
    assert monitor.is_running()
    assert _wait_for(
        lambda: (
            session.flush(0.5)
            and any(e.name == "application_appears_hung" for e in fake.of_kind(wire.Event))
        )
    )
    session.heartbeat()
    session.end()  # stops the monitor
    assert not monitor.is_running()
    assert session.flush(1.0)
    names = [e.name for e in fake.of_kind(wire.Event)]
    assert names == ["application_appears_hung", "application_recovered"]
