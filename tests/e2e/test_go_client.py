"""The Go client (``clients/go``) against a real ``datacat serve``.

``examples/go-client-example`` is built with ``go build`` and run against the server
through a proxy that loses the server's answer to one batch: the client sends that
batch again, and the server must store it once. What the example logged is then
read back with plain HTTP.

Without ``go`` these tests skip, unless ``DATACAT_REQUIRE_GO=1`` (as ``.ci/run``
sets it), where a missing ``go`` is a failure.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "go-client-example"
SESSION_LINE = re.compile(r"^session: ([0-9a-f-]{36}) \((\w+)\)$", re.MULTILINE)


def go_command() -> str:
    """The ``go`` command; skips (or fails, with DATACAT_REQUIRE_GO=1) without one."""
    go = shutil.which("go")
    if go is None:
        reason = "go is not installed (Debian: apt-get install golang-go)"
        if os.environ.get("DATACAT_REQUIRE_GO") == "1":
            pytest.fail(f"{reason}, and DATACAT_REQUIRE_GO=1 requires it")
        pytest.skip(f"{reason}; set DATACAT_REQUIRE_GO=1 to fail instead")
    return go


@pytest.fixture(scope="module")
def example_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``examples/go-client-example``, built from this repository (no download)."""
    go = go_command()
    out = tmp_path_factory.mktemp("go") / "go-client-example"
    env = {**os.environ, "GOPROXY": "off", "GOTOOLCHAIN": "local"}
    if "HOME" not in env and "GOCACHE" not in env:
        env["GOCACHE"] = str(out.parent / "cache")
    built = subprocess.run(
        [go, "build", "-o", str(out), "."],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return out


class LosingProxy(http.server.ThreadingHTTPServer):
    """Forwards every request to ``target``, but answers the first batch holding a
    record that contains ``needle`` with a 503 after the server stored it: the client
    never learns that it was stored, and sends it again."""

    daemon_threads = True

    def __init__(self, target: str, needle: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.target = target
        self.needle = needle
        self.lost: bytes | None = None
        self.ingested: list[bytes] = []
        self.lock = threading.Lock()
        self.http = httpx.Client(base_url=target, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Go client uses it
    server: LosingProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {
            key: value
            for key, value in self.headers.items()
            if key.lower() not in {"host", "content-length", "connection"}
        }
        answer = self.server.http.request(self.command, self.path, content=body, headers=headers)
        lose = False
        if self.path == "/api/ingest":
            with self.server.lock:
                self.server.ingested.append(body)
                if self.server.lost is None and self.server.needle in body:
                    self.server.lost, lose = body, True
        if lose:
            assert answer.status_code == 200, answer.text
            self._reply(503, b'{"detail": "lost"}', {"Retry-After": "0"})
        else:
            self._reply(answer.status_code, answer.content, dict(answer.headers))

    def _reply(self, status: int, content: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in {"content-length", "connection", "transfer-encoding", "date"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = _forward


@pytest.fixture
def proxy(live_server: ServerProcess) -> Iterator[LosingProxy]:
    losing = LosingProxy(live_server.url, b'"checkout_started"')
    thread = threading.Thread(target=losing.serve_forever, daemon=True)
    thread.start()
    try:
        yield losing
    finally:
        losing.shutdown()
        losing.server_close()
        losing.http.close()
        thread.join(10)


def run(binary: Path, url: str) -> dict[str, str]:
    """Run the example against ``url``; return its session ids by role."""
    env = {**os.environ, "DATACAT_URL": url}
    env.pop("DATACAT_TOKEN", None)
    proc = subprocess.run(
        [str(binary)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 0, output
    assert "[FAILED]" not in proc.stdout, output
    return {role: session_id for session_id, role in SESSION_LINE.findall(proc.stdout)}


def fetch(server: ServerProcess, session_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/sessions/{session_id}", timeout=10.0)
    response.raise_for_status()
    details: dict[str, Any] = response.json()
    return details


def events_named(details: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [event["data"] for event in details["events"] if event["name"] == name]


def test_the_go_example_stores_what_it_logged_and_a_retried_batch_once(
    example_binary: Path, live_server: ServerProcess, proxy: LosingProxy
) -> None:
    sessions = run(example_binary, proxy.url)
    assert set(sessions) == {"seed", "live"}

    # The seed calls of the original Go client.
    seed = fetch(live_server, sessions["seed"])
    assert seed["state"] == {"application": {"name": "go-example", "status": "running"}}
    assert [e["name"] for e in seed["events"]] == ["application_started", "work_completed"]
    assert [(m["name"], m["value"], m["tags"]) for m in seed["metrics"]] == [
        ("cpu_usage", 20.0 + i, ["app:go-example", "unit:percent"]) for i in range(5)
    ]
    assert seed["status"] == "ended"
    assert seed["ended_at"] is not None

    # The LiveSession: batches through POST /api/ingest.
    live = fetch(live_server, sessions["live"])
    assert (live["name"], live["product"], live["version"]) == (
        "go-client-example",
        "shop",
        "1.4.2",
    )
    assert live["labels"] == {"lang": "go"}
    assert live["state"] == {"window": {"theme": "dark", "open": ["cart", "pay"]}}
    assert live["status"] == "ended"
    assert live["ended_at"] is not None
    assert events_named(live, "checkout_started") == [{"items": 3}]
    metrics = [(m["name"], m["value"], m["tags"]) for m in live["metrics"]]
    assert metrics == [("latency", 40.0 + i, ["route=/checkout"]) for i in range(10)] + [
        ("orders", 1.0, ["shop=eu"])
    ]

    error, panic = events_named(live, "exception")
    assert error["type"] == "*fmt.wrapError"
    assert error["message"] == (
        "loading the configuration: open /no/such/config.toml: no such file or directory"
    )
    assert [c["type"] for c in error["causes"]] == ["*fs.PathError", "syscall.Errno"]
    assert error["traceback"][0].startswith("main.liveSession\n\t")
    assert all(isinstance(line, str) and line.endswith("\n") for line in error["traceback"])
    assert panic["type"] == "panic"
    assert panic["message"] == "assignment to entry in nil map"
    assert panic["traceback"][0].startswith("main.guarded\n\t")

    [hang] = events_named(live, "application_appears_hung")
    assert hang["timeout"] == 0.3
    assert hang["seconds_since_heartbeat"] >= 0.3  # past it, then rounded to the millisecond
    stacks = "".join("".join(thread["stack"]) for thread in hang["threads"])
    assert "main.liveSession" in stacks  # the stalled main goroutine
    [recovered] = events_named(live, "application_recovered")
    assert recovered["hang_duration"] > 0.3

    # The lost answer: the same batch was sent again, and stored once (counts above).
    assert proxy.lost is not None
    assert proxy.ingested.count(proxy.lost) == 2

    # Both sessions through the original clients' path too.
    listed = httpx.get(f"{live_server.url}/api/grafana/sessions", timeout=10.0).json()
    assert {s["id"] for s in listed} == set(sessions.values())
