"""The server is down, slow, wrong or restarting: the run is unaffected and nothing is lost."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.plugin.conftest import Api, plugins, run_id_of
from tests.support.server import ServerProcess, free_port

SUITE = """
import pytest

@pytest.mark.parametrize("i", range(30))
def test_many(i):
    assert i != 7
"""


def _upload(spool: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datacat_server", "upload", str(spool), "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_server_down_for_the_whole_run_then_upload(
    pytester: pytest.Pytester, clean_environment: Path, tmp_path: Path
) -> None:
    spool = clean_environment
    pytester.makepyfile(test_suite=SUITE)
    plain = pytester.runpytest_subprocess(*plugins())
    port = free_port()
    start = time.monotonic()
    result = pytester.runpytest_subprocess(
        *plugins(),
        "--datacat",
        f"--datacat-url=http://127.0.0.1:{port}",
        "--datacat-flush-timeout=2",
    )
    elapsed = time.monotonic() - start
    assert result.ret == plain.ret == 1
    assert result.parseoutcomes() == plain.parseoutcomes()
    line = next(line for line in result.outlines if line.startswith("datacat:"))
    assert "server unreachable" in line
    assert f"datacat upload {spool} --url http://127.0.0.1:{port})" in line
    assert elapsed < 15
    # the wait for the server at the end is the plugin's cost, and is counted as such
    overhead = float(line.rsplit("overhead ", 1)[1].split("s", 1)[0])
    assert overhead >= 1.5, line
    with ServerProcess(tmp_path / "later.duckdb", port=port) as server:
        done = _upload(spool, server.url)
        assert done.returncode == 0, done.stdout + done.stderr
        api = Api(server.url)
        (run,) = api.get("/api/runs")
        tests = api.tests(run["id"])
        assert len(tests) == 30
        assert len({t["nodeid"] for t in tests}) == 30
        assert run["outcome"] == "failed"
        assert run["status"] == "ended"
        # Uploading again finds nothing left to send.
        assert _upload(spool, server.url).returncode == 0
        assert len(api.tests(run["id"])) == 30


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def test_a_hanging_server_delays_the_end_by_at_most_the_flush_timeout(
    pytester: pytest.Pytester, silent_server: str, clean_environment: Path
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    start = time.monotonic()
    plain = pytester.runpytest_subprocess(*plugins())
    plain_elapsed = time.monotonic() - start
    start = time.monotonic()
    result = pytester.runpytest_subprocess(
        *plugins(), "--datacat", f"--datacat-url={silent_server}", "--datacat-flush-timeout=2"
    )
    elapsed = time.monotonic() - start
    assert result.ret == plain.ret
    # The flush timeout, closing the session (at most 2 s more), and a shared machine's noise.
    assert elapsed < plain_elapsed + 2 + 2 + 6
    assert list(clean_environment.glob("*.jsonl")), "what was not sent must be spooled"


class _Failing(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status_code": 500, "detail": "broken"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [500, 400])
def test_error_answers_lose_nothing(
    pytester: pytest.Pytester, clean_environment: Path, tmp_path: Path, status: int
) -> None:
    handler = type("Handler", (_Failing,), {"status": status})
    failing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=failing.serve_forever, daemon=True)
    thread.start()
    try:
        pytester.makepyfile(test_suite=SUITE)
        result = pytester.runpytest_subprocess(
            *plugins(),
            "--datacat",
            f"--datacat-url=http://127.0.0.1:{failing.server_address[1]}",
            "--datacat-flush-timeout=2",
        )
        assert result.ret == 1
    finally:
        failing.shutdown()
        failing.server_close()
    with ServerProcess(tmp_path / "after.duckdb") as server:
        assert _upload(clean_environment, server.url).returncode == 0
        (run,) = Api(server.url).get("/api/runs")
        assert len(Api(server.url).tests(run["id"])) == 30


def test_ctrl_c_ends_the_session_as_interrupted(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(
        "import os, signal\n"
        "def test_before(): pass\n"
        "def test_interrupt(): os.kill(os.getpid(), signal.SIGINT)\n"
        "def test_never(): pass\n"
    )
    result = pytester.runpytest_subprocess(*plugins(), "--datacat", f"--datacat-url={server.url}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    run = api.run(run_id_of(result.stdout.str()))
    assert run["outcome"] == "interrupted"
    assert run["status"] == "ended"
    assert [t["nodeid"].split("::")[-1] for t in api.tests(run["id"])] == ["test_before"]


def test_stop_after_first_failure_says_so(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile("def test_a(): assert 0\ndef test_b(): pass\n")
    result = pytester.runpytest_subprocess(
        *plugins(), "-x", "--datacat", f"--datacat-url={server.url}"
    )
    run = api.run(run_id_of(result.stdout.str()))
    assert run["outcome"] == "stopped"
    assert "stopping after 1 failures" in run["reason"]


def test_server_restarting_in_the_middle_of_a_run_loses_nothing(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    port = free_port()
    marker = tmp_path / "restart-now"
    pytester.makepyfile(
        "import pathlib, time, pytest\n"
        "@pytest.mark.parametrize('i', range(40))\n"
        "def test_slowly(i):\n"
        f"    if i == 10: pathlib.Path({str(marker)!r}).touch()\n"
        "    time.sleep(0.1)\n"
    )
    server = ServerProcess(tmp_path / "restart.duckdb", port=port).start()
    proc = pytester.popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            *plugins(),
            "--datacat",
            f"--datacat-url={server.url}",
            "--datacat-flush-timeout=20",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        time.sleep(1.0)
        server = ServerProcess(tmp_path / "restart.duckdb", port=port).start()
        proc.wait(90)
        text = proc.stdout.read().decode()
    finally:
        proc.kill()
    try:
        assert proc.returncode == 0, text
        run_id = run_id_of(text)
        tests = Api(server.url).tests(run_id)
        assert sorted(t["param_id"] for t in tests) == sorted(str(i) for i in range(40))
        assert Api(server.url).run(run_id)["outcome"] == "passed"
    finally:
        server.stop()
    assert os.environ.get("DATACAT_SPOOL_DIR")


def test_a_missing_token_is_named_as_the_reason_not_the_network(
    pytester: pytest.Pytester, clean_environment: Path, tmp_path: Path
) -> None:
    token, reader = "ingest-" + "k" * 24, "read-" + "r" * 24
    pytester.makepyfile(test_suite=SUITE)
    with ServerProcess(
        tmp_path / "guarded.duckdb", env={"DATACAT_TOKENS": f"ingest:{token},read:{reader}"}
    ) as server:
        result = pytester.runpytest_subprocess(
            *plugins(), "--datacat", f"--datacat-url={server.url}", "--datacat-flush-timeout=3"
        )
        line = next(line for line in result.outlines if line.startswith("datacat:"))
        assert "server refused them (HTTP 401" in line, line
        assert "unreachable" not in line
        assert f"--url {server.url})" in line
        assert result.ret == 1  # the suite's own outcome, whatever the server said
        done = subprocess.run(
            [sys.executable, "-m", "datacat_server", "upload", str(clean_environment)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "DATACAT_URL": server.url, "DATACAT_TOKEN": token},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        runs = httpx.get(
            f"{server.url}/api/runs", headers={"Authorization": f"Bearer {reader}"}, timeout=30
        ).json()
        assert [run["outcome"] for run in runs] == ["failed"]  # the upload stored the run
