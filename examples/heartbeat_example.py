#!/usr/bin/env python
"""Hang detection: a `HeartbeatMonitor` notices when the program stops calling `heartbeat()`.

Three sessions, one after the other:

1. healthy: the program calls `session.heartbeat()` regularly; nothing is reported.
2. hanging: the heartbeats stop. After ``--hang-timeout`` seconds the monitor logs one
   ``application_appears_hung`` event holding the stack of every thread, and the server
   shows the session's status as ``hung``. The session is left unended, as a program
   that never comes back would leave it.
3. recovering: the heartbeats stop, the hang is reported, then the next `heartbeat()`
   logs ``application_recovered`` with how long the hang lasted.

Real programs use timeouts of a minute or so (the default is 60 s); here the default is
one second, so that the whole demo takes a few seconds. Run it against a server
(``datacat serve``)::

    python examples/heartbeat_example.py [--hang-timeout 1.0] [--check-interval 0.1]

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when every session shows what it should, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from datacat_client import DatacatError, Session, create_session

HUNG = "application_appears_hung"
RECOVERED = "application_recovered"


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def events_named(details: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [event for event in details["events"] if event["name"] == name]


def work_with_heartbeats(session: Session, seconds: float, beat_every: float) -> None:
    """Healthy work: a little progress, then a heartbeat, again and again."""
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        step += 1
        session.update_state({"work": {"step": step}})
        session.heartbeat()
        print(".", end="", flush=True)
        time.sleep(beat_every)
    print()


def long_blocking_call(seconds: float) -> None:
    """Stands for a deadlock or a call that never returns: no heartbeat while it runs."""
    time.sleep(seconds)


def wait_for_event(session: Session, name: str, timeout: float, poll: float) -> dict[str, Any]:
    """Read the session until it has an event called ``name`` (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        details = session.get_details()
        if events_named(details, name) or time.monotonic() > deadline:
            return details
        time.sleep(poll)


def healthy(hang_timeout: float, check_interval: float) -> bool:
    print("=== 1. a healthy program ===")
    with create_session(product="heartbeat-example", name="healthy") as session:
        print(f"session: {session.session_id} (healthy)")
        session.start_heartbeat_monitor(timeout=hang_timeout, check_interval=check_interval)
        session.log_event("application_started")
        # Run for longer than the timeout, beating eight times per timeout.
        work_with_heartbeats(session, 1.5 * hang_timeout, hang_timeout / 8)
        session.log_event("application_completed")
        # Stop watching when the watched work is done: what follows sends no heartbeats,
        # and a slow read-back would otherwise count as a hang.
        session.stop_heartbeat_monitor()
        details = session.get_details()
        results = [
            expect(not events_named(details, HUNG), "no hang was reported"),
            expect(details["status"] == "running", "the status is 'running'"),
        ]
        session.end()
        results.append(expect(session.get_details()["status"] == "ended", "then 'ended'"))
    return all(results)


def hanging(hang_timeout: float, check_interval: float) -> bool:
    print("=== 2. a program that hangs and never comes back ===")
    # No `with` block here: leaving one would end the session, and this program never
    # gets that far.
    session = create_session(product="heartbeat-example", name="hanging")
    try:
        print(f"session: {session.session_id} (hanging)")
        session.start_heartbeat_monitor(timeout=hang_timeout, check_interval=check_interval)
        session.log_event("application_started")
        work_with_heartbeats(session, hang_timeout / 2, hang_timeout / 8)

        print(f"no more heartbeats: blocking for {hang_timeout + 3 * check_interval:.1f} s")
        long_blocking_call(hang_timeout + 3 * check_interval)
        details = wait_for_event(session, HUNG, 10 + 5 * hang_timeout, check_interval)
        # Stay silent a few more checks: the monitor reports a hang once, not every check.
        time.sleep(3 * check_interval)
        details = session.get_details()

        hangs = events_named(details, HUNG)
        results = [expect(len(hangs) == 1, f"exactly one {HUNG} event")]
        if hangs:
            data = hangs[0]["data"]
            print(
                f"  hang data: seconds_since_heartbeat={data['seconds_since_heartbeat']},"
                f" timeout={data['timeout']}, {len(data['threads'])} thread(s)"
            )
            main = [t for t in data["threads"] if t["name"] == "MainThread"]
            if main and main[0]["stack"]:
                innermost = main[0]["stack"][-1].strip().splitlines()[0]
                print(f"  the main thread was at: {innermost}")
            results += [
                expect(
                    data["seconds_since_heartbeat"] > hang_timeout,
                    "it was silent for longer than the timeout",
                ),
                expect(data["timeout"] == hang_timeout, "the timeout is recorded"),
                expect(
                    bool(data["threads"]) and all("stack" in t for t in data["threads"]),
                    "every thread's stack is recorded",
                ),
            ]
        results.append(expect(details["status"] == "hung", "the server shows status 'hung'"))
    finally:
        # Send what was logged and let go, without ending the session. Once the sender's
        # liveness heartbeats have been missing for a while, the server shows it as
        # 'crashed'.
        session.close()
    print("left the session unended, as a program that never returns would")
    return all(results)


def recovering(hang_timeout: float, check_interval: float) -> bool:
    print("=== 3. a program that hangs, then recovers ===")
    with create_session(product="heartbeat-example", name="recovering") as session:
        print(f"session: {session.session_id} (recovering)")
        session.start_heartbeat_monitor(timeout=hang_timeout, check_interval=check_interval)
        session.log_event("application_started")
        work_with_heartbeats(session, hang_timeout / 2, hang_timeout / 8)

        print("no more heartbeats for a while...")
        long_blocking_call(hang_timeout + 3 * check_interval)
        details = wait_for_event(session, HUNG, 10 + 5 * hang_timeout, check_interval)
        results = [
            expect(len(events_named(details, HUNG)) == 1, "the hang was reported"),
            expect(details["status"] == "hung", "the status is 'hung'"),
        ]

        print("the call returns; the next heartbeat reports the recovery")
        session.heartbeat()
        work_with_heartbeats(session, hang_timeout / 2, hang_timeout / 8)
        session.stop_heartbeat_monitor()
        details = session.get_details()
        recoveries = events_named(details, RECOVERED)
        print(f"  events: {[event['name'] for event in details['events']]}")
        results += [
            expect(len(recoveries) == 1, f"one {RECOVERED} event"),
            expect(
                bool(recoveries) and recoveries[0]["data"]["hang_duration"] > hang_timeout,
                "it says how long the hang lasted",
            ),
            expect(details["status"] == "running", "the status is 'running' again"),
        ]
        session.log_event("application_completed")
        session.end()
        results.append(expect(session.get_details()["status"] == "ended", "then 'ended'"))
    return all(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--hang-timeout",
        type=float,
        default=1.0,
        help="seconds without a heartbeat before a hang is reported (default: 1.0)",
    )
    parser.add_argument(
        "--check-interval",
        type=float,
        default=0.1,
        help="seconds between the monitor's checks (default: 0.1)",
    )
    args = parser.parse_args(argv)
    results = [
        healthy(args.hang_timeout, args.check_interval),
        hanging(args.hang_timeout, args.check_interval),
        recovering(args.hang_timeout, args.check_interval),
    ]
    print("=== summary ===")
    print("Ask the server for sessions whose status is 'hung' (or 'crashed'), or that")
    print(f"logged {HUNG!r} without a later {RECOVERED!r}.")
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")
