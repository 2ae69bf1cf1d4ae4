#!/usr/bin/env python
"""Everything together: a pretend desktop application's whole session.

1. a session with product, version, labels and an initial state;
2. a heartbeat monitor, fed while the application works;
3. nested state updates (deep-merged), events, and metrics with tags;
4. errors during work, logged with `log_exception` and extra data;
5. reading the session back and checking it;
6. stopping the monitor and ending the session;
7. the plain synchronous `DatacatClient`: a second session made with one REST call
   at a time, as the original service's client did.

Run it against a server (``datacat serve``)::

    python examples/complete_example.py

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when everything logged was found on the server, 1 otherwise.
"""

from __future__ import annotations

import sys
import time

from datacat_client import DatacatClient, DatacatError, Session, create_session

WINDOWS = ["Main", "Inspector", "Console"]
#: CPU and memory readings of each work cycle; cycle 3 hits an error.
CYCLES = [(22.5, 110.0), (48.0, 121.5), (79.5, 140.25), (35.0, 118.0)]
FAILING_CYCLE = 3


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def refresh_cache(cycle: int) -> None:
    if cycle == FAILING_CYCLE:
        raise TimeoutError("background cache refresh took too long")


def start_up(session: Session) -> None:
    print("2. starting up: opening windows")
    session.update_state({"application": {"status": "starting"}})
    for count, window in enumerate(WINDOWS, start=1):
        memory = 50.0 + 20.0 * count
        session.update_state(
            {
                "windows": {"open": WINDOWS[:count], "active": window},
                "resources": {"memory_mb": memory},
            }
        )
        session.log_event("window_opened", {"window": window})
        session.log_metric("window_count", count)
        session.log_metric("memory_mb", memory, tags={"phase": "startup"})
        session.heartbeat()
        print(f"   opened {window!r}")
    session.update_state({"application": {"status": "running"}})
    session.log_event("application_ready")


def work(session: Session) -> int:
    """Work cycles: metrics, state, and the occasional error. Returns the errors seen."""
    print("3. working")
    errors = 0
    for cycle, (cpu, memory) in enumerate(CYCLES, start=1):
        session.log_metric("cpu_percent", cpu, tags={"cycle": cycle})
        session.log_metric("memory_mb", memory, tags={"cycle": cycle})
        session.update_state({"resources": {"cpu_percent": cpu, "memory_mb": memory}})
        try:
            refresh_cache(cycle)
        except TimeoutError as exc:
            errors += 1
            print(f"   cycle {cycle}: error: {exc}")
            session.log_exception(extra_data={"cycle": cycle, "severity": "warning"})
        else:
            print(f"   cycle {cycle}: cpu {cpu}%, memory {memory} MB")
        session.heartbeat()
        time.sleep(0.05)
    return errors


def plain_client_session() -> bool:
    """7. The synchronous client: each call is one HTTP request and may raise."""
    print("7. a maintenance session through the plain DatacatClient")
    with DatacatClient() as client:
        session_id = client.register_session(product="CompleteExample", version="1.0.0")
        print(f"session: {session_id}")
        client.update_state(session_id, {"maintenance": {"task": "vacuum", "done": False}})
        client.log_event(session_id, "maintenance_started", {"task": "vacuum"})
        client.log_metric(session_id, "freed_mb", 12.5, tags=["task:vacuum"])
        client.update_state(session_id, {"maintenance": {"done": True}})
        client.end_session(session_id)
        details = client.get_session(session_id)
        print(f"   read any session at {client.base_url}/api/sessions/<id>")
    return all(
        [
            expect(
                details["state"] == {"maintenance": {"task": "vacuum", "done": True}},
                "the plain client's state updates were merged",
            ),
            expect(
                [e["name"] for e in details["events"]] == ["maintenance_started"]
                and [m["value"] for m in details["metrics"]] == [12.5],
                "its event and metric are there",
            ),
            expect(details["status"] == "ended", "and it is ended"),
        ]
    )


def main() -> int:
    print("1. creating the session")
    with create_session(
        product="CompleteExample",
        version="1.0.0",
        labels={"user": "demo", "channel": "beta"},
        state={
            "application": {"name": "CompleteExample", "status": "initializing"},
            "settings": {"theme": "dark", "autosave": True, "refresh_rate": 60},
        },
    ) as session:
        print(f"session: {session.session_id}")
        session.log_event("session_started", {"user": "demo"})
        # Reports a hang if heartbeat() is not called for a minute (see heartbeat_example.py).
        session.start_heartbeat_monitor(timeout=60.0, check_interval=5.0)

        start_up(session)
        errors = work(session)

        print("4. changing settings and closing windows")
        session.update_state({"settings": {"theme": "light", "refresh_rate": 120}})
        session.log_event("settings_changed", {"changed": ["theme", "refresh_rate"]})
        session.update_state({"windows": {"open": ["Main"], "active": "Main"}})
        for window in WINDOWS[1:]:
            session.log_event("window_closed", {"window": window})
        session.log_metric("window_count", 1)
        session.heartbeat()

        print("5. reading the session back")
        details = session.get_details()
        state = details["state"]
        names = [e["name"] for e in details["events"]]
        exceptions = [e["data"] for e in details["events"] if e["name"] == "exception"]
        print(f"   status: {details['status']}, labels: {details['labels']}")
        print(f"   state: {state}")
        print(f"   {len(names)} events, {len(details['metrics'])} metrics, {errors} error(s)")
        results = [
            expect(
                state
                == {
                    "application": {"name": "CompleteExample", "status": "running"},
                    "settings": {"theme": "light", "autosave": True, "refresh_rate": 120},
                    "windows": {"open": ["Main"], "active": "Main"},
                    "resources": {"memory_mb": 118.0, "cpu_percent": 35.0},
                },
                "the state is the deep merge of the initial state and every update",
            ),
            expect(
                (details["product"], details["version"]) == ("CompleteExample", "1.0.0"),
                "product and version",
            ),
            expect(details["labels"] == {"user": "demo", "channel": "beta"}, "the labels"),
            expect(
                names.count("window_opened") == 3 and names.count("window_closed") == 2,
                "three windows opened, two closed",
            ),
            expect(
                len(exceptions) == 1
                and exceptions[0]["type"] == "TimeoutError"
                and exceptions[0]["cycle"] == FAILING_CYCLE,
                "the error of cycle 3, with its extra data",
            ),
            expect(
                [m["tags"] for m in details["metrics"] if m["name"] == "cpu_percent"]
                == [[f"cycle={n}"] for n in range(1, len(CYCLES) + 1)],
                "a tagged cpu_percent metric per cycle",
            ),
            expect("application_appears_hung" not in names, "no hang was reported"),
            expect(details["status"] == "running", "the session is running"),
        ]

        print("6. shutting down")
        session.log_event("application_stopping")
        session.update_state({"application": {"status": "stopped"}})
        session.stop_heartbeat_monitor()
        session.end()
        session.log_event("session_ended")  # records after end() are still kept
        details = session.get_details()
        results += [
            expect(details["status"] == "ended", "the session is ended"),
            expect(details["ended_at"] is not None, f"ended at {details['ended_at']}"),
            expect(details["events"][-1]["name"] == "session_ended", "the last event is there"),
        ]

    results.append(plain_client_session())
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")
