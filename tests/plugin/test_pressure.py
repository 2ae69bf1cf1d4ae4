"""Under pressure: a server that throttles (429 + Retry-After) and a spool that cannot be
written. The run's outcome never changes, nothing the server takes is lost or doubled,
and nothing hangs."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from datacat_client import create_session
from tests.plugin.conftest import plugins, run_id_of
from tests.support.server import ServerProcess, free_port

INGEST_PLUGIN = "ingest-plugin-0123456789abcdef"
INGEST_CLIENT = "ingest-client-0123456789abcdef"
READ = "read-token-0123456789abcdef00"

#: Requests a second per token, and the burst: at most one post every 2 s.
RATE, BURST = "0.5", "1"

TESTS = 200
FAILING = {7, 57, 107, 157}
#: Long enough (about 4 s) for the plugin, posting at most once a second, to exceed
#: one post every 2 s several times.
SUITE = f"""
import time
import pytest

@pytest.mark.parametrize("i", range({TESTS}))
def test_many(i):
    time.sleep(0.02)
    assert i not in {sorted(FAILING)}
"""

_INGEST_429 = re.compile(r'"POST /api/ingest(?:/v2)? HTTP/1\.1" 429')


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with tokens and a tiny rate limit, logging every request."""
    server = ServerProcess(
        tmp_path_factory.mktemp("throttled") / "throttled.duckdb",
        env={
            "DATACAT_RATE_LIMIT": RATE,
            "DATACAT_RATE_BURST": BURST,
            "DATACAT_TOKENS": f"ingest:{INGEST_PLUGIN},ingest:{INGEST_CLIENT},read:{READ}",
            "DATACAT_TOKENS_FILE": "",
        },
        # The last --log-level wins over ServerProcess's "warning".
        extra_args=["--log-level", "info", "--access-log"],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _ingest_429s(server: ServerProcess) -> int:
    """Batches the server has answered with 429 so far (from its access log)."""
    return len(_INGEST_429.findall(server.log_path.read_text(errors="replace")))


def _read(server: ServerProcess, method: str, path: str, **kwargs: Any) -> Any:
    """A read with the read token, waiting as told while throttled (for 60 s at most)."""
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.request(
            method,
            f"{server.url}{path}",
            headers={"Authorization": f"Bearer {READ}"},
            timeout=30,
            **kwargs,
        )
        if answer.status_code != 429:
            assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
            return answer.json()
        assert time.monotonic() < deadline, "still throttled after 60 s"
        time.sleep(float(answer.headers["Retry-After"]))


def _sql(server: ServerProcess, sql: str) -> list[list[Any]]:
    rows: list[list[Any]] = _read(server, "POST", "/api/sql", json={"sql": sql})["rows"]
    return rows


@pytest.mark.slow
@pytest.mark.e2e
def test_the_plugin_honours_429_and_loses_nothing(
    pytester: pytest.Pytester, throttled: ServerProcess, clean_environment: Path
) -> None:
    pytester.makepyfile(test_pressure_suite=SUITE)
    before = _ingest_429s(throttled)
    result = pytester.runpytest_subprocess(
        *plugins(),
        "--datacat",
        f"--datacat-url={throttled.url}",
        f"--datacat-token={INGEST_PLUGIN}",
        "--datacat-flush-timeout=30",
        timeout=90,
    )
    output = result.stdout.str()
    # The run is what it is without the plugin.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes() == {"passed": TESTS - len(FAILING), "failed": len(FAILING)}
    # The server pushed back...
    assert _ingest_429s(throttled) > before, "the limit is so low that the plugin must hit it"
    # ...and the plugin waited and delivered everything.
    (summary,) = [line for line in result.outlines if line.startswith("datacat:")]
    assert f"{TESTS} results recorded" in summary
    assert "lost" not in summary
    assert "spooled" not in summary
    run_id = run_id_of(output)
    assert str(uuid.UUID(run_id)) == run_id  # safe to put in SQL
    rows = _sql(
        throttled,
        "SELECT nodeid, count(*) AS n, min(outcome) AS outcome FROM test_results"
        f" WHERE session_id = '{run_id}' GROUP BY nodeid ORDER BY nodeid",
    )
    stored = {nodeid: (n, outcome) for nodeid, n, outcome in rows}
    expected = {
        f"test_pressure_suite.py::test_many[{i}]": (1, "failed" if i in FAILING else "passed")
        for i in range(TESTS)
    }
    assert stored == expected  # every result, exactly once, with its outcome
    run = _read(throttled, "GET", f"/api/runs/{run_id}")
    assert run["outcome"] == "failed"
    assert run["status"] == "ended"
    assert run["exit_status"] == 1
    assert {k: v for k, v in run["counts"].items() if k != "warnings"} == {
        "passed": TESTS - len(FAILING),
        "failed": len(FAILING),
    }
    # Nothing was left behind in the spool either.
    assert not list(clean_environment.glob("*.jsonl"))


@pytest.mark.slow
@pytest.mark.e2e
def test_the_client_library_honours_429_and_loses_nothing(
    throttled: ServerProcess, tmp_path: Path
) -> None:
    spool = tmp_path / "client-spool"
    before = _ingest_429s(throttled)
    session = create_session(
        throttled.url,
        token=INGEST_CLIENT,
        name="pressure",
        spool_dir=spool,
        heartbeat_interval=None,
        flush_timeout=30,
    )
    try:
        for i in range(300):
            session.log_event("tick", {"i": i})
            if i % 50 == 49:
                time.sleep(0.3)  # a post every 0.3 s or so: over one every 2 s
        assert session.flush(30), "everything must be acknowledged within the flush timeout"
        stats = session.stats
    finally:
        session.close(timeout=5)
    assert _ingest_429s(throttled) > before
    assert stats.retries >= 1, "a 429 is retried after Retry-After"
    assert stats.lost == 0
    assert stats.sent + stats.duplicates == stats.submitted
    assert not list(spool.glob("*.jsonl"))
    ((count, distinct, first, last),) = _sql(
        throttled,
        "SELECT count(*), count(DISTINCT e.seq), min((e.data->>'i')::INT),"
        " max((e.data->>'i')::INT) FROM event_log e JOIN sessions s USING (sid)"
        f" WHERE s.id = '{session.session_id}' AND e.name = 'tick'",
    )
    assert (count, distinct, first, last) == (300, 300, 0, 299)


# -- a spool that cannot be written, with the server down -----------------------------------

SMALL = """
def test_a(): pass
def test_b(): pass
def test_c(): pass
def test_d(): assert 0
"""


@pytest.fixture(params=["read-only-directory", "under-a-regular-file"])
def unwritable_spool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A spool directory that can be neither created nor written (even by root)."""
    if request.param == "read-only-directory":
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.skip("root writes into a read-only directory")
        spool = tmp_path / "read-only"
        spool.mkdir()
        spool.chmod(0o500)
        try:
            yield spool
        finally:
            spool.chmod(0o700)
    else:
        blocker = tmp_path / "file.txt"
        blocker.write_text("a file, so nothing can be created under it\n")
        yield blocker / "spool"


def test_an_unwritable_spool_with_the_server_down_changes_nothing_and_hangs_nothing(
    pytester: pytest.Pytester, unwritable_spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATACAT_SPOOL_DIR", str(unwritable_spool))
    pytester.makepyfile(test_small=SMALL)
    plain = pytester.runpytest_subprocess(*plugins(), timeout=60)
    result = pytester.runpytest_subprocess(
        *plugins(), "--datacat", f"--datacat-url=http://127.0.0.1:{free_port()}", timeout=60
    )
    assert plain.ret == result.ret == pytest.ExitCode.TESTS_FAILED
    assert plain.parseoutcomes() == result.parseoutcomes() == {"passed": 3, "failed": 1}
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    assert result.duration < plain.duration + 3.0  # a server that is down costs no wait
    # The one summary line says that records were lost.
    (summary,) = [line for line in result.outlines if line.startswith("datacat:")]
    assert "4 results not sent (server unreachable)" in summary
    assert re.search(r"\d+ records lost", summary), summary
    # Nothing was written, and nothing broke trying.
    if unwritable_spool.is_dir():
        assert not list(unwritable_spool.iterdir())
    else:
        assert not unwritable_spool.exists()
    # "not writable", "cannot write": said once, not once per batch, and naming the path.
    lines = [
        line
        for line in [*result.outlines, *result.errlines]
        if str(unwritable_spool) in line and "writ" in line
    ]
    assert len(lines) == 1, "\n".join([*result.outlines, *result.errlines])
