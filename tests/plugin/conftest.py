"""Fixtures for the plugin's tests: a real server, and inner pytest runs against it."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port


class _Quiet(http.server.BaseHTTPRequestHandler):
    """Answers 501 to everything, without a log line on stderr."""

    def log_message(self, *args: object) -> None:
        pass


def _load_http_stack() -> None:
    """Make one request so that every module httpx uses is imported now.

    pytester restores ``sys.modules`` after each test: a module first imported inside a
    test is imported anew by the next one, and httpx's exception map then no longer
    recognises httpcore's (new) exception classes.
    """
    server = http.server.HTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        httpx.get(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5)
    finally:
        thread.join(5)
        server.server_close()
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{free_port()}/", timeout=1)


_load_http_stack()

_RUN_URL = re.compile(r"datacat: run \S+ · .*?(https?://\S+/runs/([0-9a-f-]{36}))")

# pytester's inner runs must not see a DATACAT_* setting of the outer environment.
_OUTER_SETTINGS = (
    "DATACAT_ENABLE",
    "DATACAT_URL",
    "DATACAT_TOKEN",
    "DATACAT_PROJECT",
    "DATACAT_LABELS",
    "DATACAT_HANG_TIMEOUT",
    "DATACAT_FLUSH_TIMEOUT",
    "DATACAT_CAPTURE",
    "DATACAT_HEARTBEAT_INTERVAL",
    "GITHUB_ACTIONS",
    "GITHUB_STEP_SUMMARY",
    "GITLAB_CI",
    "CIRCLECI",
    "BUILDKITE",
    "TF_BUILD",
    "JENKINS_URL",
)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the plugin tests of this process."""
    process = ServerProcess(tmp_path_factory.mktemp("plugin-server") / "plugin.duckdb")
    process.start()
    try:
        yield process
    finally:
        process.stop()


def inner_environment(spool: Path) -> dict[str, str]:
    """The environment of an inner run: no outer DATACAT_* or CI setting, the spool in
    ``spool``, and only the plugins a test names (this dev environment auto-loads
    hypothesis, faker and schemathesis: 3 s per inner run). `plugins` names them."""
    env = {key: value for key, value in os.environ.items() if key not in _OUTER_SETTINGS}
    env["DATACAT_SPOOL_DIR"] = str(spool)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Inner runs get `inner_environment`, spooling into the test's directory."""
    spool = tmp_path / "spool"
    for name in _OUTER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATACAT_SPOOL_DIR", str(spool))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return spool


def run_pytest(directory: Path, *args: str, spool: Path, timeout: float = 120) -> pytest.RunResult:
    """An inner pytest run in a subprocess, like pytester's, but usable by a fixture of
    wider scope (one run that several tests look at)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=inner_environment(spool),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return pytest.RunResult(
        done.returncode,
        done.stdout.splitlines(),
        done.stderr.splitlines(),
        time.monotonic() - started,
    )


def summary_line(result: pytest.RunResult) -> str:
    """The plugin's one line in a run's output."""
    (line,) = [line for line in result.outlines if line.startswith("datacat:")]
    return line


def plugins(*names: str) -> list[str]:
    """``-p`` arguments loading DataCat (by its entry point name) and ``names``."""
    args = ["-p", "datacat"]
    for name in names:
        args += ["-p", name]
    return args


class Api:
    """Reads what a run recorded, through the server's JSON API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def run(self, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.get(f"/api/runs/{run_id}")
        return run

    def tests(self, run_id: str, **params: Any) -> list[dict[str, Any]]:
        tests: list[dict[str, Any]] = self.get(f"/api/runs/{run_id}/tests", limit=100_000, **params)
        return tests

    def session(self, run_id: str) -> dict[str, Any]:
        session: dict[str, Any] = self.get(f"/api/sessions/{run_id}")
        return session


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server.url)


def run_id_of(output: str) -> str:
    """The run id in the plugin's summary line (present when the server took the run)."""
    match = _RUN_URL.search(output)
    assert match, f"no datacat summary line with a run link in:\n{output[-3000:]}"
    return match.group(2)
