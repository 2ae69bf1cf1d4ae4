"""`HangWatchdog` on a fake clock: one report per hang, with stacks; the recovery; no
report between tests."""

from __future__ import annotations

import os
from typing import Any

from pytest_datacat.watchdog import HangWatchdog
from tests.client.fakes import FakeClock


def _watchdog(clock: FakeClock) -> tuple[HangWatchdog, list[tuple[str, dict[str, Any]]]]:
    reports: list[tuple[str, dict[str, Any]]] = []
    watchdog = HangWatchdog(
        60.0, lambda name, data: reports.append((name, data)), worker="gw1", clock=clock
    )
    return watchdog, reports


def test_a_test_running_past_the_timeout_is_reported_once_then_its_recovery() -> None:
    clock = FakeClock()
    watchdog, reports = _watchdog(clock)
    watchdog.test_started("t.py::test_slow")
    clock.advance(60.0)
    watchdog.check()
    assert reports == []  # not longer than the timeout yet
    clock.advance(1.0)
    watchdog.check()
    clock.advance(30.0)
    watchdog.check()  # still the same hang
    watchdog.test_finished("t.py::test_slow")
    (hung_name, hung), (recovered_name, recovered) = reports
    assert (hung_name, recovered_name) == ("application_appears_hung", "application_recovered")
    assert (hung["nodeid"], hung["seconds_since_heartbeat"], hung["timeout"]) == (
        "t.py::test_slow",
        61.0,
        60.0,
    )
    assert (hung["worker"], hung["pid"]) == ("gw1", os.getpid())
    assert any("test_a_test_running_past" in "".join(t["stack"]) for t in hung["threads"])
    assert recovered == {
        "nodeid": "t.py::test_slow",
        "hang_duration": 91.0,
        "timeout": 60.0,
        "worker": "gw1",
    }


def test_nothing_is_watched_before_or_between_tests() -> None:
    clock = FakeClock()
    watchdog, reports = _watchdog(clock)
    clock.advance(600.0)  # a long collection
    watchdog.check()
    watchdog.test_started("t.py::test_a")
    clock.advance(1.0)
    watchdog.test_finished("t.py::test_a")
    clock.advance(600.0)  # a long session teardown
    watchdog.check()
    assert reports == []


def test_its_thread_starts_and_stops() -> None:
    watchdog, _ = _watchdog(FakeClock())
    watchdog.start()
    assert watchdog._detector.is_running()
    watchdog.stop()
    assert not watchdog._detector.is_running()
