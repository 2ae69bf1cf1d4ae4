"""Hangs are reported (never killed); a run killed from outside shows as crashed."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from tests.plugin.conftest import Api, plugins
from tests.support.server import ServerProcess

# Each runs tests that hang for seconds, on purpose; pytest_datacat.watchdog's logic is
# tested on a fake clock in test_watchdog.py.
pytestmark = [pytest.mark.slow, pytest.mark.e2e]

HANGING = """
import time

def test_quick():
    pass

def test_hangs_a_while():
    time.sleep(2.5)

def test_after():
    pass
"""


def _wait(predicate: Any, timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def _run_of(api: Api, project: str) -> dict[str, Any] | None:
    runs: list[dict[str, Any]] = api.get("/api/runs", project=project)
    return runs[0] if runs else None


def _start(pytester: pytest.Pytester, *args: str) -> Any:
    return pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        stdout=sys.stdout,
        stderr=sys.stderr,
    )


@pytest.mark.parametrize("xdist", [False, True], ids=["one-process", "xdist"])
def test_a_hang_is_reported_once_with_stacks_and_the_recovery_after(
    pytester: pytest.Pytester, server: ServerProcess, api: Api, xdist: bool
) -> None:
    project = f"hang-{xdist}"
    pytester.makepyfile(test_hang=HANGING)
    extra = [*plugins("xdist"), "-n", "1"] if xdist else plugins()
    proc = _start(
        pytester,
        *extra,
        "--datacat",
        f"--datacat-url={server.url}",
        f"--datacat-project={project}",
        "--datacat-hang-timeout=1",
    )
    try:
        run = _wait(lambda: _run_of(api, project), 20)
        assert run is not None
        # While the test hangs, the session shows hung.
        assert _wait(lambda: api.session(run["id"])["status"] == "hung", 10)
        assert proc.wait(60) == 0  # the plugin never kills the test
    finally:
        proc.kill()
    events = api.session(run["id"])["events"]
    hung = [e["data"] for e in events if e["name"] == "application_appears_hung"]
    recovered = [e["data"] for e in events if e["name"] == "application_recovered"]
    assert len(hung) == 1
    assert hung[0]["nodeid"] == "test_hang.py::test_hangs_a_while"
    assert hung[0]["seconds_since_heartbeat"] >= 1.0
    assert hung[0]["timeout"] == 1.0
    assert hung[0]["worker"] == ("gw0" if xdist else "")
    stacks = "".join("".join(thread["stack"]) for thread in hung[0]["threads"])
    assert "test_hangs_a_while" in stacks
    assert "time.sleep(2.5)" in stacks
    assert len(recovered) == 1
    assert recovered[0]["nodeid"] == "test_hang.py::test_hangs_a_while"
    assert recovered[0]["hang_duration"] >= 2.0
    assert api.session(run["id"])["status"] == "ended"
    assert api.run(run["id"])["outcome"] == "passed"


def test_a_run_killed_by_pytest_timeout_shows_as_crashed_in_its_test(
    pytester: pytest.Pytester, server: ServerProcess, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATACAT_HEARTBEAT_INTERVAL", "0.3")
    pytester.makepyfile("import time\ndef test_fine(): pass\ndef test_stuck(): time.sleep(60)\n")
    proc = _start(
        pytester,
        *plugins("timeout"),
        "--timeout=2",
        "--timeout-method=thread",
        "--datacat",
        f"--datacat-url={server.url}",
        "--datacat-project=killed",
    )
    try:
        code = proc.wait(60)
    finally:
        proc.kill()
    assert code != 0  # pytest-timeout's thread method ends the process with os._exit(1)
    run = _wait(lambda: _run_of(api, "killed"), 10)
    assert run is not None
    assert _wait(lambda: api.session(run["id"])["status"] == "crashed", 10)
    session = api.session(run["id"])
    assert list(session["in_progress"]) == [
        "test_a_run_killed_by_pytest_timeout_shows_as_crashed_in_its_test.py::test_stuck"
    ]
    assert api.run(run["id"])["outcome"] is None  # it never finished
    names = [t["nodeid"].split("::")[-1] for t in api.tests(run["id"])]
    assert names == ["test_fine"]
