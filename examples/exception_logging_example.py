#!/usr/bin/env python
"""Exception logging: handled exceptions with context, and an uncaught one.

An exception is an event named ``exception`` whose data holds ``type``, ``message``
and ``traceback`` (a list of lines, as `traceback.format_exception` gives), plus any
``extra_data`` you pass. This script shows:

1. `session.log_exception(extra_data=...)` inside an ``except`` block: without
   ``exc_info`` it logs the exception being handled;
2. `session.log_exception(exc, ...)` later, outside the ``except`` block, with the
   exception object (a ``sys.exc_info()`` tuple works too);
3. a chained exception (``raise ... from ...``): the traceback shows both;
4. an exception that escapes ``with create_session(...) as session:``: leaving the block
   logs it, ends the session, and lets it propagate. (Here the script catches it
   outside the block so that the demo can go on and check the result.)

Run it against a server (``datacat serve``)::

    python examples/exception_logging_example.py

The server address comes from ``$DATACAT_URL`` (default ``http://127.0.0.1:8080``).
The exit code is 0 when every exception was found on the server as logged, 1 otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from datacat_client import DatacatClient, DatacatError, Session, create_session


class InventoryError(Exception):
    """An error of the pretend application."""


def risky_operation(value: int) -> int:
    if value < 0:
        raise ValueError(f"value cannot be negative: {value}")
    if value > 100:
        raise OverflowError(f"value too large: {value}")
    return value * 2


def expect(ok: bool, what: str) -> bool:
    """Print one verification and return whether it held."""
    print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return ok


def exceptions_of(details: dict[str, Any]) -> list[dict[str, Any]]:
    return [event["data"] for event in details["events"] if event["name"] == "exception"]


def process_values(session: Session, values: list[int]) -> None:
    """1. Handled exceptions, logged where they are caught."""
    succeeded = failed = 0
    for operation_id, value in enumerate(values, start=1):
        try:
            result = risky_operation(value)
        except (ValueError, OverflowError) as exc:
            failed += 1
            print(f"  operation {operation_id}: {type(exc).__name__}: {exc}")
            # No exc_info: log the exception being handled, with some context.
            session.log_exception(extra_data={"operation_id": operation_id, "input_value": value})
        else:
            succeeded += 1
            print(f"  operation {operation_id}: {value} -> {result}")
            session.log_metric("operation_result", result, tags={"status": "success"})
        session.update_state({"statistics": {"succeeded": succeeded, "failed": failed}})


def main() -> int:
    values = [10, -5, 50, 150]
    with create_session(product="exception-example", version="1.0.0") as session:
        print(f"session: {session.session_id}")
        session.log_event("application_started")

        print("1. logging handled exceptions where they are caught")
        process_values(session, values)

        print("2. logging an exception later, from the exception object")
        failures: list[BaseException] = []
        for value in [-1, 7]:
            try:
                risky_operation(value)
            except ValueError as exc:
                failures.append(exc)  # keep it; report the batch's failures at the end
        for failure in failures:
            session.log_exception(failure, extra_data={"reported": "later", "severity": "low"})

        print("3. logging a chained exception")
        try:
            try:
                risky_operation(1000)
            except OverflowError as inner:
                raise InventoryError("could not update the stock level") from inner
        except InventoryError:
            session.log_exception(extra_data={"context": "nested", "severity": "high"})

        details = session.get_details()
        logged = exceptions_of(details)
        print(f"  {len(logged)} exception events on the server:")
        for data in logged:
            print(f"    {data['type']}: {data['message']} ({len(data['traceback'])} lines)")
        results = [
            expect(
                [(x["type"], x["message"]) for x in logged]
                == [
                    ("ValueError", "value cannot be negative: -5"),
                    ("OverflowError", "value too large: 150"),
                    ("ValueError", "value cannot be negative: -1"),
                    ("InventoryError", "could not update the stock level"),
                ],
                "four exception events, with type and message",
            ),
            expect(
                all(x["traceback"] and x["traceback"][0].startswith("Traceback") for x in logged),
                "each has its traceback, as a list of lines",
            ),
            expect(
                details["state"]["statistics"] == {"succeeded": 2, "failed": 2},
                "the state counts two successes and two failures",
            ),
            expect(
                [(x.get("operation_id"), x.get("input_value")) for x in logged[:2]]
                == [(2, -5), (4, 150)],
                "the extra data of the handled exceptions",
            ),
            expect(
                len(logged) > 2 and logged[2].get("reported") == "later",
                "the exception logged from the object, with its extra data",
            ),
            expect(
                len(logged) > 3
                and any("OverflowError: value too large" in line for line in logged[3]["traceback"])
                and any("direct cause" in line for line in logged[3]["traceback"]),
                "the chained exception's traceback shows its cause",
            ),
        ]
        session.log_event("application_completed", {"exceptions": len(logged)})
        session.end()

    print("4. an exception that escapes the `with` block")
    crashed_id = ""
    try:
        with create_session(product="exception-example", name="crashing") as crashing:
            crashed_id = crashing.session_id
            print(f"session: {crashed_id}")
            crashing.log_event("application_started")
            risky_operation(-42)  # nothing catches this inside the block
    except ValueError as exc:
        print(f"  it propagated out of the block: {exc!r}")

    # The session is closed; read it with a plain client.
    with DatacatClient() as client:
        crashed = client.get_session(crashed_id)
    escaped = exceptions_of(crashed)
    results += [
        expect(
            [(x["type"], x["message"]) for x in escaped]
            == [("ValueError", "value cannot be negative: -42")],
            "leaving the block logged the exception",
        ),
        expect(
            bool(escaped)
            and any("risky_operation(-42)" in line for line in escaped[0]["traceback"]),
            "its traceback shows where it was raised",
        ),
        expect(crashed["status"] == "ended", "and ended the session"),
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DatacatError as exc:
        sys.exit(f"could not reach the DataCat server (is `datacat serve` running?): {exc}")
