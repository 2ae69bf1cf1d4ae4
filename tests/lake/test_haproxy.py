"""Debian's HAProxy in front of two real ``datacat serve`` processes (each on its own
embedded store for now): it balances between them, checks ``/health``, and when one
is SIGKILLed it sends everything to the other, then takes the first back once it is
up again."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.lake import HAProxy, Unavailable, unavailable
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.lake, pytest.mark.slow]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    try:
        for name in ("s0", "s1"):
            started[name] = ServerProcess(tmp_path / f"{name}.duckdb").start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def balancer(servers: dict[str, ServerProcess]) -> Iterator[HAProxy]:
    try:
        # Checks every second, down after two failures: a killed server is still taken
        # for up for a second or more, long enough to see requests redispatched.
        proxy = HAProxy({name: s.port for name, s in servers.items()}, check_interval=1.0)
    except Unavailable as exc:
        unavailable(str(exc))
    proxy.start()
    try:
        proxy.wait_states({"s0": "UP", "s1": "UP"})
        yield proxy
    finally:
        proxy.stop()


def _served_by(client: httpx.Client, count: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        answer = client.get("/health")
        assert answer.status_code == 200, answer.text
        seen[answer.headers["x-datacat-server"]] += 1
    return seen


def _sessions(server: ServerProcess) -> set[str]:
    answer = httpx.get(f"{server.url}/api/data/sessions", params={"limit": 1000}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {s["id"] for s in answer.json()}


def test_haproxy_balances_and_fails_over(
    balancer: HAProxy, servers: dict[str, ServerProcess]
) -> None:
    with httpx.Client(base_url=balancer.url, timeout=10) as client:
        assert _served_by(client, 20) == {"s0": 10, "s1": 10}  # round robin

        created = []
        for index in range(10):
            answer = client.post("/api/sessions", json={"name": f"run-{index}"})
            assert answer.status_code == 200, answer.text
            created.append(answer.json()["session_id"])
        on_s0, on_s1 = _sessions(servers["s0"]), _sessions(servers["s1"])
        # Each server stored the sessions it was handed (its own file, for now).
        assert on_s0 | on_s1 == set(created)
        assert on_s0
        assert on_s1
        assert not on_s0 & on_s1

        servers["s0"].kill()
        # Before the checks notice, requests handed to the dead server (its connection
        # refused) are sent to the other one: no client sees an error.
        assert balancer.states()["s0"] == "UP"
        assert set(_served_by(client, 10)) == {"s1"}
        answers = [client.post("/api/sessions", json={"name": f"late-{i}"}) for i in range(4)]
        assert [a.status_code for a in answers] == [200] * 4
        assert int(balancer.stats()["s0"]["wredis"]) >= 1
        balancer.wait_states({"s0": "DOWN", "s1": "UP"})
        assert set(_served_by(client, 10)) == {"s1"}
        answer = client.post("/api/sessions", json={"name": "after the kill"})
        assert answer.status_code == 200
        assert answer.json()["session_id"] in _sessions(servers["s1"])

        servers["s0"].start()  # same port, same file
        balancer.wait_states({"s0": "UP", "s1": "UP"})
        assert set(_served_by(client, 10)) == {"s0", "s1"}
        assert set(created) - _sessions(servers["s1"]) <= _sessions(servers["s0"])
