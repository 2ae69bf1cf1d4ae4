#!/usr/bin/env python
"""The basics: one session with state, events and metrics, read back from the server.

Shows `create_session` used as a context manager, partial state updates, events with
data, metrics with tags (a list of strings or a mapping), `get_details()` to read the
session back, logging after `end()`, and a plain `DatacatClient` call.

Run it against a server (``datacat serve``)::

    python examples/basic_example.py

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when everything logged was found on the server, 1 otherwise.
"""

from __future__ import annotations

import sys

from datacat_client import DatacatClient, DatacatError, create_session


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def main() -> int:
    # Nothing here waits for the server: records are queued and sent in the background.
    with create_session(product="basic-example", version="1.0.0") as session:
        print(f"session: {session.session_id}")

        session.update_state({"app": "basic-example", "status": "starting"})
        session.log_event("app_started", {"user": "demo", "environment": "staging"})
        session.log_metric("startup_time_s", 2.5, tags=["env:staging"])
        session.log_metric("memory_mb", 128.5, tags={"env": "staging", "unit": "mb"})
        print("logged: state 'starting', event 'app_started', 2 metrics")

        session.update_state({"status": "running"})
        session.log_metric("requests_per_second", 1000, tags=["env:staging"])
        session.log_metric("cpu_percent", 45.2, tags=["env:staging", "unit:percent"])
        print("logged: state 'running', 2 more metrics")

        # get_details() flushes first, so the program reads its own writes.
        details = session.get_details()
        print(f"read back: state={details['state']}")
        print(f"read back: {len(details['events'])} events, {len(details['metrics'])} metrics")
        results = [
            expect(
                details["state"] == {"app": "basic-example", "status": "running"},
                "the state is the merge of both updates",
            ),
            expect(
                [e["name"] for e in details["events"]] == ["app_started"],
                "the event is there",
            ),
            expect(
                [m["name"] for m in details["metrics"]]
                == ["startup_time_s", "memory_mb", "requests_per_second", "cpu_percent"],
                "the four metrics are there, in order",
            ),
            expect(
                details["metrics"][1]["tags"] == ["env=staging", "unit=mb"],
                "mapping tags are sent as key=value",
            ),
            expect(details["status"] == "running", "the session is running"),
        ]

        session.log_event("app_stopped")
        session.update_state({"status": "stopped"})
        session.end()
        # Records logged after end() are still stored.
        session.log_event("after_end", {"note": "late records are kept"})
        details = session.get_details()
        print("ended the session")
        results += [
            expect(details["status"] == "ended", "the session is ended"),
            expect(details["state"]["status"] == "stopped", "the final state is 'stopped'"),
            expect(
                [e["name"] for e in details["events"]][-2:] == ["app_stopped", "after_end"],
                "events logged at and after the end are there",
            ),
        ]

    # Leaving the `with` block ended and closed the session. DatacatClient makes plain
    # synchronous REST calls (and raises DatacatError when they fail).
    with DatacatClient() as client:
        seen = client.get_session(session.session_id)
    results.append(
        expect(seen["product"] == "basic-example", "DatacatClient reads the same session")
    )
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")
