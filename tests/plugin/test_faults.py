"""The server is down, slow, wrong or restarting: the run is unaffected and nothing is lost."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.plugin.conftest import Api, plugins, run_id_of, summary_line
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


def _closed_port() -> int:
    """A port nothing listens on: bound, then closed (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _overhead(line: str) -> float:
    return float(line.rsplit("overhead ", 1)[1].split("s", 1)[0])


def _spooled_results(spool: Path) -> int:
    lines = (line for path in spool.glob("*.jsonl") for line in path.read_bytes().splitlines())
    return sum(b'"kind":"test_result"' in line for line in lines)


def test_a_server_that_is_down_costs_a_run_well_under_a_second(
    pytester: pytest.Pytester, clean_environment: Path
) -> None:
    """Nothing listens at the URL: the run does not wait for it (the default flush
    timeout, 10 s, is for a slow server), and its results are in the spool."""
    spool = clean_environment
    pytester.makepyfile(test_suite=SUITE)
    plain = pytester.runpytest_subprocess(*plugins())
    port = _closed_port()
    result = pytester.runpytest_subprocess(
        *plugins(), "--datacat", f"--datacat-url=http://127.0.0.1:{port}"
    )
    assert result.ret == plain.ret == 1
    assert result.parseoutcomes() == plain.parseoutcomes()
    # A behaviour bound, not a benchmark: it was 10 s more (the whole flush timeout).
    assert result.duration < plain.duration + 3.0
    line = summary_line(result)
    assert _overhead(line) < 1.0, line
    assert "30 results spooled · server unreachable, " in line
    assert "recorded" not in line
    assert f"(send them with: datacat upload {spool} --url http://127.0.0.1:{port})" in line
    assert _spooled_results(spool) == 30


@pytest.mark.slow
@pytest.mark.e2e
def test_the_next_run_sends_what_earlier_runs_spooled_and_says_so(
    pytester: pytest.Pytester, clean_environment: Path, tmp_path: Path
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    port = _closed_port()
    args = [*plugins(), "--datacat", f"--datacat-url=http://127.0.0.1:{port}"]
    down = pytester.runpytest_subprocess(*args)
    spooled = int(re.findall(r"server unreachable, (\d+) records in", summary_line(down))[0])
    with ServerProcess(tmp_path / "later.duckdb", port=port) as server:  # the server is back
        result = pytester.runpytest_subprocess(*args)
        line = summary_line(result)
        assert "30 results recorded" in line
        assert f"sent {spooled} records spooled by earlier runs" in line
        assert not list(clean_environment.glob("*.jsonl"))
        api = Api(server.url)
        runs = api.get("/api/runs")
        assert len(runs) == 2  # the earlier run is stored too, with all its results
        for run in runs:
            assert len(api.tests(run["id"])) == 30
            assert (run["outcome"], run["status"]) == ("failed", "ended")
        # Nothing is left for ``datacat upload``.
        done = _upload(clean_environment, server.url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("0 spool files")


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


@pytest.mark.slow
def test_a_hanging_server_is_waited_for_up_to_the_flush_timeout(
    pytester: pytest.Pytester, silent_server: str, clean_environment: Path
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    plain = pytester.runpytest_subprocess(*plugins())
    result = pytester.runpytest_subprocess(
        *plugins(), "--datacat", f"--datacat-url={silent_server}", "--datacat-flush-timeout=2"
    )
    assert result.ret == plain.ret
    # It waits for a slow server (unlike an absent one), as long as the flush timeout
    # (2 s) says; and a shared machine's noise.
    assert plain.duration + 1.5 < result.duration < plain.duration + 2 + 6
    line = summary_line(result)
    assert "30 results spooled · server did not answer in time, " in line
    assert _overhead(line) >= 1.5  # the wait at the end is the plugin's cost
    assert _spooled_results(clean_environment) == 30


class _Failing(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_POST(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status_code": 500, "detail": "broken"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.slow
@pytest.mark.e2e
def test_server_restarting_in_the_middle_of_a_run_loses_nothing(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Killed at the 10th test, back before the last one: what was spooled meanwhile is
    sent once it answers again, and the run is complete on the server."""
    port = free_port()
    killed, back = tmp_path / "kill-now", tmp_path / "back"
    pytester.makepyfile(
        "import pathlib, time, pytest\n"
        "@pytest.mark.parametrize('i', range(40))\n"
        "def test_slowly(i):\n"
        f"    if i == 10: pathlib.Path({str(killed)!r}).touch()\n"
        f"    if i == 39:  # the server is back before the end\n"
        f"        while not pathlib.Path({str(back)!r}).exists(): time.sleep(0.05)\n"
        "    time.sleep(0.05)\n"
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
        deadline = time.monotonic() + 60
        while not killed.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        server = ServerProcess(tmp_path / "restart.duckdb", port=port).start()
        back.touch()
        proc.wait(90)
        text = proc.stdout.read().decode()
    finally:
        back.touch()
        proc.kill()
    try:
        assert proc.returncode == 0, text
        run_id = run_id_of(text)
        tests = Api(server.url).tests(run_id)
        assert sorted(t["param_id"] for t in tests) == sorted(str(i) for i in range(40))
        assert Api(server.url).run(run_id)["outcome"] == "passed"
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.e2e
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
        line = summary_line(result)
        assert "30 results spooled · server refused them (HTTP 401" in line, line
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
