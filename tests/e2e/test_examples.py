"""Each script of ``examples/`` runs to completion against a real ``datacat serve``, and
the records it claims to have logged are on the server.

The examples check themselves (their exit code says whether they found what they logged);
these tests check again from outside, with plain HTTP, so that an example that checks
too little, or a client that reads back something it never stored, cannot pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: Each example prints ``session: <uuid>``, then `` (<role>)`` where it makes several.
SESSION_LINE = re.compile(r"^session: ([0-9a-f-]{36})(?: \((\w+)\))?$", re.MULTILINE)
HUNG = "application_appears_hung"
RECOVERED = "application_recovered"


def run_example(
    server: ServerProcess, tmp_path: Path, script: str, *args: str
) -> list[tuple[str, str]]:
    """Run ``examples/<script>`` against ``server``; return the ``(session id, role)``
    pairs it printed, in order. Fails unless it exits with 0 and sent everything."""
    spool = tmp_path / "spool"
    env = {**os.environ, "DATACAT_URL": server.url, "DATACAT_SPOOL_DIR": str(spool)}
    env.pop("DATACAT_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, output
    assert "[FAILED]" not in proc.stdout, output
    # Nothing was left in the spool: every record reached the server.
    assert not list(spool.glob("*.jsonl")), output
    sessions = SESSION_LINE.findall(proc.stdout)
    assert sessions, f"no 'session: <id>' line\n{output}"
    return sessions


def fetch(server: ServerProcess, session_id: str) -> dict[str, Any]:
    """``GET /api/sessions/{id}``, as any HTTP client would."""
    response = httpx.get(f"{server.url}/api/sessions/{session_id}", timeout=10.0)
    response.raise_for_status()
    details: dict[str, Any] = response.json()
    return details


def names(details: dict[str, Any]) -> list[str]:
    return [event["name"] for event in details["events"]]


def data_of(details: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The data of every event called ``name``, in order."""
    return [event["data"] for event in details["events"] if event["name"] == name]


def assert_exception_shape(data: dict[str, Any]) -> None:
    """An ``exception`` event's data: type, message, and the traceback as a list of lines."""
    assert isinstance(data["type"], str)
    assert data["type"]
    assert isinstance(data["message"], str)
    lines = data["traceback"]
    assert isinstance(lines, list)
    assert all(isinstance(line, str) for line in lines)
    assert lines[0] == "Traceback (most recent call last):\n"
    assert lines[-1] == f"{data['type']}: {data['message']}\n"


def test_basic_example(module_server: ServerProcess, tmp_path: Path) -> None:
    [(session_id, _)] = run_example(module_server, tmp_path, "basic_example.py")
    details = fetch(module_server, session_id)
    assert details["product"] == "basic-example"
    assert details["status"] == "ended"
    assert details["ended_at"] is not None
    assert details["state"] == {"app": "basic-example", "status": "stopped"}
    assert names(details) == ["app_started", "app_stopped", "after_end"]
    assert data_of(details, "app_started") == [{"user": "demo", "environment": "staging"}]
    metrics = [(m["name"], m["value"], m["tags"]) for m in details["metrics"]]
    assert metrics == [
        ("startup_time_s", 2.5, ["env:staging"]),
        ("memory_mb", 128.5, ["env=staging", "unit=mb"]),
        ("requests_per_second", 1000.0, ["env:staging"]),
        ("cpu_percent", 45.2, ["env:staging", "unit:percent"]),
    ]


def test_window_tracking_example_deep_merges_the_state(
    module_server: ServerProcess, tmp_path: Path
) -> None:
    [(session_id, _)] = run_example(module_server, tmp_path, "window_tracking_example.py")
    details = fetch(module_server, session_id)
    assert details["state"] == {
        "application": {"name": "WindowManager", "version": "1.0.0"},
        "windows": {
            "open": ["editor", "terminal"],
            "active": "editor",
            "geometry": {"editor": {"width": 1280, "height": 800}, "terminal": {"width": 640}},
        },
        "memory": {"footprint_mb": 68.5},
        "settings": {"theme": "light", "autosave": True, "font": {"family": "mono", "size": 14}},
    }
    assert details["status"] == "ended"
    assert [e["window"] for e in data_of(details, "window_opened")] == [
        "editor",
        "terminal",
        "preview",
    ]
    assert data_of(details, "window_closed") == [{"window": "preview"}]
    counts = [m["value"] for m in details["metrics"] if m["name"] == "window_count"]
    assert counts == [1, 2, 3, 2]
    assert names(details)[0] == "session_started"
    assert names(details)[-1] == "session_ended"


@pytest.mark.slow  # 3-11 s here: out of the fast subset
def test_heartbeat_example_reports_a_hang_and_a_recovery(
    module_server: ServerProcess, tmp_path: Path
) -> None:
    sessions = run_example(
        module_server,
        tmp_path,
        "heartbeat_example.py",
        # A little more than the default 1.0, for headroom on a loaded machine.
        "--hang-timeout",
        "1.5",
        "--check-interval",
        "0.1",
    )
    by_role = {role: fetch(module_server, session_id) for session_id, role in sessions}
    assert sorted(by_role) == ["hanging", "healthy", "recovering"]

    healthy = by_role["healthy"]
    assert healthy["status"] == "ended"
    assert HUNG not in names(healthy)
    assert RECOVERED not in names(healthy)

    hanging = by_role["hanging"]
    [hang] = data_of(hanging, HUNG)
    assert hang["timeout"] == 1.5
    assert hang["seconds_since_heartbeat"] > 1.5
    threads = hang["threads"]
    assert isinstance(threads, list)
    assert threads
    assert all(isinstance(thread["stack"], list) for thread in threads)
    [main] = [thread for thread in threads if thread["name"] == "MainThread"]
    assert main["stack"]
    assert all(isinstance(line, str) for line in main["stack"])
    assert RECOVERED not in names(hanging)
    assert hanging["ended_at"] is None
    assert hanging["status"] == "hung"

    recovering = by_role["recovering"]
    assert len(data_of(recovering, HUNG)) == 1
    [recovery] = data_of(recovering, RECOVERED)
    assert recovery["hang_duration"] > 1.5
    assert names(recovering).index(HUNG) < names(recovering).index(RECOVERED)
    assert recovering["status"] == "ended"


def test_testing_example_records_a_test_run(module_server: ServerProcess, tmp_path: Path) -> None:
    [(session_id, _)] = run_example(module_server, tmp_path, "testing_example.py")
    details = fetch(module_server, session_id)
    expected = {
        "test_addition": "passed",
        "test_config_parsing": "passed",
        "test_rounding": "failed",
        "test_sorting": "passed",
        "test_service_call": "error",
    }
    assert details["status"] == "ended"
    assert details["labels"]["suite"] == "examples"
    assert [d["test"] for d in data_of(details, "test_started")] == list(expected)
    completed = data_of(details, "test_completed")
    assert {d["test"]: d["outcome"] for d in completed} == expected
    assert all(d["duration"] >= 0 for d in completed)
    exceptions = data_of(details, "exception")
    for data in exceptions:
        assert_exception_shape(data)
    assert [(x["type"], x["test"], x["outcome"]) for x in exceptions] == [
        ("AssertionError", "test_rounding", "failed"),
        ("ConnectionError", "test_service_call", "error"),
    ]
    durations = [m for m in details["metrics"] if m["name"] == "test_duration"]
    assert sorted(m["tags"][0] for m in durations) == sorted(f"test={t}" for t in expected)
    assert details["state"]["run"] == {
        "status": "completed",
        "total": 5,
        "done": 5,
        "passed": 3,
        "failed": 1,
        "error": 1,
    }
    assert data_of(details, "test_run_completed") == [
        {"total": 5, "passed": 3, "failed": 1, "error": 1}
    ]


def test_complete_example(module_server: ServerProcess, tmp_path: Path) -> None:
    [(main_id, _), (plain_id, _)] = run_example(module_server, tmp_path, "complete_example.py")
    details = fetch(module_server, main_id)
    assert (details["product"], details["version"]) == ("CompleteExample", "1.0.0")
    assert details["labels"] == {"user": "demo", "channel": "beta"}
    assert details["status"] == "ended"
    assert details["state"] == {
        "application": {"name": "CompleteExample", "status": "stopped"},
        "settings": {"theme": "light", "autosave": True, "refresh_rate": 120},
        "windows": {"open": ["Main"], "active": "Main"},
        "resources": {"memory_mb": 118.0, "cpu_percent": 35.0},
    }
    [error] = data_of(details, "exception")
    assert_exception_shape(error)
    assert (error["type"], error["cycle"], error["severity"]) == ("TimeoutError", 3, "warning")
    assert HUNG not in names(details)
    assert names(details)[-1] == "session_ended"
    cpu = [(m["value"], m["tags"]) for m in details["metrics"] if m["name"] == "cpu_percent"]
    assert cpu == [
        (22.5, ["cycle=1"]),
        (48.0, ["cycle=2"]),
        (79.5, ["cycle=3"]),
        (35.0, ["cycle=4"]),
    ]

    plain = fetch(module_server, plain_id)
    assert plain["state"] == {"maintenance": {"task": "vacuum", "done": True}}
    assert names(plain) == ["maintenance_started"]
    assert [(m["name"], m["value"], m["tags"]) for m in plain["metrics"]] == [
        ("freed_mb", 12.5, ["task:vacuum"])
    ]
    assert plain["status"] == "ended"


def test_exception_logging_example(module_server: ServerProcess, tmp_path: Path) -> None:
    [(main_id, _), (crashed_id, _)] = run_example(
        module_server, tmp_path, "exception_logging_example.py"
    )
    details = fetch(module_server, main_id)
    exceptions = data_of(details, "exception")
    for data in exceptions:
        assert_exception_shape(data)
    assert [(x["type"], x["message"]) for x in exceptions] == [
        ("ValueError", "value cannot be negative: -5"),
        ("OverflowError", "value too large: 150"),
        ("ValueError", "value cannot be negative: -1"),
        ("InventoryError", "could not update the stock level"),
    ]
    # Extra data is merged into the event's data, next to type, message and traceback.
    assert {k: exceptions[0][k] for k in ("operation_id", "input_value")} == {
        "operation_id": 2,
        "input_value": -5,
    }
    assert {k: exceptions[1][k] for k in ("operation_id", "input_value")} == {
        "operation_id": 4,
        "input_value": 150,
    }
    assert (exceptions[2]["reported"], exceptions[2]["severity"]) == ("later", "low")
    assert (exceptions[3]["context"], exceptions[3]["severity"]) == ("nested", "high")
    chained = "".join(exceptions[3]["traceback"])
    assert "OverflowError: value too large: 1000" in chained
    assert "direct cause of the following exception" in chained
    assert details["state"] == {"statistics": {"succeeded": 2, "failed": 2}}
    assert details["status"] == "ended"

    crashed = fetch(module_server, crashed_id)
    [escaped] = data_of(crashed, "exception")
    assert_exception_shape(escaped)
    assert (escaped["type"], escaped["message"]) == ("ValueError", "value cannot be negative: -42")
    assert any("risky_operation(-42)" in line for line in escaped["traceback"])
    assert crashed["status"] == "ended"
    assert crashed["name"] == "crashing"
