#!/usr/bin/env python
"""A test run recorded by hand: one session per run, an event and a metric per test.

A CI job that runs its checks with its own runner (here, a tiny one) can report them
with the `Session` API: the run is the session, each test logs ``test_started`` and
``test_completed`` events and a ``test_duration`` metric, a failing test logs its
exception with the test's name as extra data, and the state holds the run's progress
and result. (For pytest suites, ``pytest --datacat`` records all this by itself.)

Two of the five tests fail on purpose, to show how failures are recorded; that does not
make this script fail. Run it against a server (``datacat serve``)::

    python examples/testing_example.py

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when the run's records were found on the server, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

from datacat_client import DatacatError, Session, create_session

# -- the tests: plain functions; an AssertionError is a failure, anything else an error --


def test_addition() -> None:
    assert 2 + 2 == 4


def test_config_parsing() -> None:
    config = json.loads('{"retries": 3, "hosts": ["a", "b"]}')
    assert config["retries"] == 3


def test_rounding() -> None:
    # Fails: 2.675 is stored as 2.67499999..., so it rounds down.
    assert round(2.675, 2) == 2.68, "round(2.675, 2) should be 2.68"


def test_sorting() -> None:
    time.sleep(0.02)  # a slower test, to make the durations differ
    assert sorted([3, 1, 2]) == [1, 2, 3]


def test_service_call() -> None:
    raise ConnectionError("could not reach the inventory service")


TESTS: list[Callable[[], None]] = [
    test_addition,
    test_config_parsing,
    test_rounding,
    test_sorting,
    test_service_call,
]
EXPECTED = {
    "test_addition": "passed",
    "test_config_parsing": "passed",
    "test_rounding": "failed",
    "test_sorting": "passed",
    "test_service_call": "error",
}


# -- the runner ------------------------------------------------------------------------


def run_test(session: Session, test: Callable[[], None]) -> str:
    """Run one test, record it, return its outcome."""
    name = test.__name__
    session.log_event("test_started", {"test": name})
    started = time.perf_counter()
    try:
        test()
    except AssertionError:
        outcome = "failed"
        session.log_exception(extra_data={"test": name, "outcome": outcome})
    except Exception:
        outcome = "error"
        session.log_exception(extra_data={"test": name, "outcome": outcome})
    else:
        outcome = "passed"
    duration = time.perf_counter() - started
    session.log_event("test_completed", {"test": name, "outcome": outcome, "duration": duration})
    session.log_metric("test_duration", duration, tags={"test": name, "outcome": outcome})
    print(f"  {name}: {outcome} ({duration * 1000:.1f} ms)")
    return outcome


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def main() -> int:
    labels = {"suite": "examples", "ci": "yes" if os.environ.get("CI") else "no"}
    with create_session(
        name="testing-example", product="testing-example", version="1.0.0", labels=labels
    ) as session:
        print(f"session: {session.session_id}")
        session.update_state({"run": {"status": "running", "total": len(TESTS)}})
        session.log_event("test_run_started", {"suite": "examples", "runner": "testing_example"})

        print(f"running {len(TESTS)} tests")
        counts = {"passed": 0, "failed": 0, "error": 0}
        outcomes: dict[str, str] = {}
        for done, test in enumerate(TESTS, start=1):
            outcome = run_test(session, test)
            outcomes[test.__name__] = outcome
            counts[outcome] += 1
            session.update_state({"run": {"done": done, **counts}})

        session.update_state({"run": {"status": "completed"}})
        session.log_event("test_run_completed", {"total": len(TESTS), **counts})
        for outcome, count in counts.items():
            session.log_metric(f"tests_{outcome}", count, tags={"suite": "examples"})
        print(
            f"result: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} error"
        )

        details = session.get_details()
        completed = [e["data"] for e in details["events"] if e["name"] == "test_completed"]
        exceptions = [e["data"] for e in details["events"] if e["name"] == "exception"]
        results = [
            expect(outcomes == EXPECTED, "the tests ended as expected (two on purpose)"),
            expect(
                {c["test"]: c["outcome"] for c in completed} == EXPECTED,
                "a test_completed event per test, with its outcome",
            ),
            expect(
                sorted((x["test"], x["type"]) for x in exceptions)
                == [("test_rounding", "AssertionError"), ("test_service_call", "ConnectionError")],
                "an exception event per failing test, naming the test",
            ),
            expect(
                len([m for m in details["metrics"] if m["name"] == "test_duration"]) == len(TESTS),
                "a test_duration metric per test",
            ),
            expect(
                details["state"]["run"]
                == {
                    "status": "completed",
                    "total": 5,
                    "done": 5,
                    "passed": 3,
                    "failed": 1,
                    "error": 1,
                },
                "the state holds the run's result",
            ),
            expect(details["labels"] == labels, "the run's labels are there"),
        ]
        session.end()
    print(f"one session per run: look it up by its id, {session.session_id}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")
