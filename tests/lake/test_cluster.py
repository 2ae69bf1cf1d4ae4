"""Real ``datacat serve`` processes on one lake (PostgreSQL 15 + moto S3): batches of
one session sent to different servers, servers SIGKILLed (one right after a lake
commit, before answering) and restarted; then behind Debian's HAProxy, three servers,
``pytest --datacat`` runs (the sample suite and 5,000 generated tests) and 20 client
sessions while one server after another is killed. Afterwards every result is stored
exactly once, every session has its right status, and every server answers the same."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import datacat_client
from datacat_server.store.lake.writer import CRASH_AFTER_COMMIT
from tests.support.lake import HAProxy, LakeSpec, haproxy_available, unavailable
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.lake, pytest.mark.slow, pytest.mark.e2e]

SAMPLE = Path(__file__).parents[2] / "examples" / "sample_suite"
_RUN_URL = re.compile(r"datacat: run \S+ · .*?(https?://\S+/runs/([0-9a-f-]{36}))")


def lake_server(tmp_path: Path, spec: LakeSpec, name: str, **env: str) -> ServerProcess:
    """A ``datacat serve --store lake`` process (not started)."""
    return ServerProcess(
        tmp_path / f"{name}.duckdb",  # names the log only: the data is in the lake
        env={**spec.env(), "DATACAT_STORE": "lake", **env},
    )


def _sql(url: str, sql: str) -> list[list[Any]]:
    answer = httpx.post(f"{url}/api/sql", json={"sql": sql}, timeout=60)
    assert answer.status_code == 200, answer.text
    rows: list[list[Any]] = answer.json()["rows"]
    return rows


def _post(url: str, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The batch's answer, or None when the server did not give one."""
    try:
        answer = httpx.post(f"{url}/api/ingest", json={"records": records}, timeout=30)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    return body


def _result(session: str, seq: int) -> dict[str, Any]:
    return {
        "kind": "test_result",
        "session_id": session,
        "seq": seq,
        "timestamp": time.time(),
        "nodeid": f"tests/test_x.py::test_{seq}",
        "outcome": "failed" if seq % 11 == 0 else "passed",
    }


@pytest.mark.timeout(600)
def test_batches_of_one_session_go_to_two_servers_one_dies_after_its_commit(
    tmp_path: Path, lake_spec: LakeSpec
) -> None:
    # Server one dies (SIGKILL, by itself) right after its 4th lake commit of records,
    # before answering: the client's retry goes to server two, which must find the
    # batch stored and store nothing again.
    one = lake_server(tmp_path, lake_spec, "one", **{CRASH_AFTER_COMMIT: "4"})
    two = lake_server(tmp_path, lake_spec, "two")
    sessions = [str(uuid.uuid4()) for _ in range(4)]
    try:
        one.start(timeout=180)
        two.start(timeout=180)
        servers = [one, two]
        unanswered = 0
        for session in sessions:
            start = {
                "kind": "session_start",
                "session_id": session,
                "seq": 0,
                "timestamp": time.time(),
                "product": "cluster",
                "heartbeat_interval": 60,
            }
            assert _post(two.url, [start]) is not None
        for batch in range(8):
            for index, session in enumerate(sessions):
                records = [_result(session, 1 + batch * 10 + i) for i in range(10)]
                target = servers[(batch + index) % 2]
                if _post(target.url, records) is None:
                    unanswered += 1
                    other = two if target is one else one
                    assert _post(other.url, records) is not None
                if one.proc is not None and one.proc.poll() is not None:
                    one.env.pop(CRASH_AFTER_COMMIT, None)
                    one.start(timeout=180)  # restarted mid-way, without the hook
        for index, session in enumerate(sessions):
            end = {"kind": "end", "session_id": session, "seq": 100, "timestamp": time.time()}
            assert _post(servers[index % 2].url, [end]) is not None
        assert unanswered >= 1  # the hook fired: a committed batch went unanswered
        for server in servers:
            rows = _sql(
                server.url,
                "SELECT s.id::VARCHAR, count(r.seq), count(DISTINCT r.seq), any_value(st.status)"
                " FROM sessions s LEFT JOIN results r USING (sid)"
                " JOIN session_status st USING (sid) GROUP BY s.id ORDER BY 1",
            )
            assert rows == [[key, 80, 80, "ended"] for key in sorted(sessions)]
    finally:
        one.stop()
        two.stop()


# -- three servers behind HAProxy ----------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, lake_spec: LakeSpec) -> Iterator[tuple[HAProxy, list[ServerProcess]]]:
    try:
        haproxy_available()
    except Exception as exc:
        unavailable(f"HAProxy is not installed (apt-get install haproxy): {exc}")
    servers = [lake_server(tmp_path, lake_spec, f"s{i}") for i in range(3)]
    proxy: HAProxy | None = None
    try:
        # The first sets the lake up; the others start together and find it ready.
        servers[0].start(timeout=180)
        starting = [
            threading.Thread(target=server.start, kwargs={"timeout": 180}) for server in servers[1:]
        ]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join(200)
        for server in servers:
            server.wait_healthy(10)
        proxy = HAProxy(
            {f"s{i}": s.port for i, s in enumerate(servers)}, check_interval=0.5
        ).start()
        yield proxy, servers
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()


def _generated_suite(path: Path, count: int) -> Path:
    path.mkdir()
    per_file = 500
    for number in range(count // per_file):
        body = [
            "import pytest",
            "",
            f"@pytest.mark.parametrize('n', range({per_file}))",
            "def test_generated(n):",
            f"    assert (n + {number}) % 97 != 0",
        ]
        (path / f"test_gen_{number}.py").write_text("\n".join(body) + "\n")
    (path / "pytest.ini").write_text("[pytest]\n")
    return path


def _pytest_run(directory: Path, url: str) -> tuple[str, dict[str, int]]:
    """Run ``pytest --datacat`` on ``directory``; its run id and pytest's own counts."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(directory), "-q", "-p", "datacat", "--datacat"],
        cwd=directory,
        env={
            **os.environ,
            "DATACAT_URL": url,
            "DATACAT_FLUSH_TIMEOUT": "180",
            "SAMPLE_SEED": "0",
            "SAMPLE_HANG": "0.3",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    match = _RUN_URL.search(output)
    assert match, output[-3000:]
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    counts = {
        ("error" if kind == "errors" else kind): int(n)
        for n, kind in re.findall(r"(\d+) (\w+)", summary[-1])
    }
    return match.group(2), counts


def _killer(servers: list[ServerProcess], stop: threading.Event, killed: list[str]) -> None:
    """SIGKILL one server after another, restarting each, until ``stop``."""
    index = 0
    while not stop.wait(4.0):
        server = servers[index % len(servers)]
        server.kill()
        killed.append(server.url)
        server.start(timeout=180)
        index += 1


def _client_session(url: str, number: int, ids: list[str]) -> None:
    session = datacat_client.create_session(
        url,
        name=f"client-{number}",
        product="cluster-clients",
        heartbeat_interval=1.0,
        flush_timeout=180.0,
    )
    ids.append(session.session_id)
    for step in range(30):
        session.update_state({"step": step, f"k{step % 3}": number})
        session.log_event("tick", {"step": step})
        session.log_metric("load", float(step))
        time.sleep(0.05)
    session.end()
    session.close(timeout=180.0)


@pytest.mark.timeout(900)
def test_three_servers_behind_haproxy_lose_nothing_while_killed_in_turn(
    tmp_path: Path, cluster: tuple[HAProxy, list[ServerProcess]]
) -> None:
    proxy, servers = cluster
    import shutil

    sample = tmp_path / "sample_suite"
    shutil.copytree(SAMPLE, sample)
    generated = _generated_suite(tmp_path / "generated", 5_000)
    stop, killed = threading.Event(), []
    client_ids: list[str] = []
    clients = [
        threading.Thread(target=_client_session, args=(proxy.url, n, client_ids)) for n in range(20)
    ]
    killer = threading.Thread(target=_killer, args=(servers, stop, killed))
    killer.start()
    try:
        for thread in clients:
            thread.start()
        runs = [_pytest_run(sample, proxy.url), _pytest_run(generated, proxy.url)]
        for thread in clients:
            thread.join(300)
    finally:
        stop.set()
        killer.join(300)
    assert killed, "no server was killed during the runs"
    for server in servers:
        server.wait_healthy(180)
    answers = []
    for server in servers:
        per_run = []
        for run_id, counts in runs:
            rows = _sql(
                server.url,
                "SELECT count(*), count(DISTINCT r.seq), count(*) FILTER (WHERE r.subtest IS NULL"
                " AND r.final), any_value(st.status) FROM results r JOIN session_status st"
                f" USING (sid) WHERE st.id = '{run_id}'",
            )
            total, distinct, finals, status = rows[0]
            assert total == distinct, (run_id, total, distinct)
            assert status == "ended"
            decided = sum(
                v
                for k, v in counts.items()
                if k in {"passed", "failed", "skipped", "xfailed", "xpassed", "error"}
            )
            assert finals >= decided - counts.get("failed", 0)
            per_run.append((total, finals))
        clients_rows = _sql(
            server.url,
            "SELECT st.status, count(*) FROM session_status st"
            " WHERE st.product = 'cluster-clients' GROUP BY 1",
        )
        assert clients_rows == [["ended", 20]]
        events = _sql(
            server.url,
            "SELECT count(*), count(DISTINCT (sid, seq)) FROM event_log WHERE name = 'tick'",
        )
        assert events == [[600, 600]]
        page = httpx.get(f"{server.url}/runs", timeout=60)
        assert page.status_code == 200
        per_run.append(events[0][0])
        answers.append(per_run)
    # The generated suite: exactly its 5,000 results, and every server says the same.
    assert runs[1][1]["passed"] + runs[1][1]["failed"] == 5_000
    assert answers[0][1] == (5_000, 5_000)
    assert answers[0] == answers[1] == answers[2]
