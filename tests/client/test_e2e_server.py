"""The client against a real ``datacat serve``: the contract both sides rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from datacat_client import DatacatClient, NotFound, create_session, upload_spool, wire
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.e2e]  # starts a server, twice


def test_seed_calls_and_a_buffered_session_survive_a_server_restart(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with DatacatClient(live_server.url) as client:
        sid = client.register_session(product="app", version="1.0")
        assert client.update_state(sid, {"a": {"b": 1}}) == {"status": "ok"}
        assert client.log_metric(sid, "m", 2.0, {"k": "v"}) == {"status": "ok"}
        assert client.end_session(sid) == {"status": "ok"}
        seed = client.get_session(sid)
        assert (seed["status"], seed["state"]) == ("ended", {"a": {"b": 1}})
        assert seed["metrics"][0]["tags"] == ["k=v"]
        with pytest.raises(NotFound):
            client.get_session("00000000-0000-4000-8000-000000000000")

    session = create_session(live_server.url, spool_dir=spool, heartbeat_interval=None)
    try:
        session.update_state({"phase": "run"})
        session.log_event("before")
        session.record(wire.TestResult, nodeid="t.py::test_x", outcome="passed")
        assert session.flush(5.0)
        live_server.stop()
        session.log_event("while-down")
        session.update_state({"phase": "down"})
        assert session.flush(2.0) is False
        assert list(spool.glob("*.jsonl"))
        live_server.start()
        session.log_event("after")
        details = session.get_details()  # flushes: the spool goes first
        names = [e["name"] for e in details["events"] if e["name"] != "test_result"]
        assert names == ["before", "while-down", "after"]
        assert details["state"] == {"phase": "down"}
        assert not list(spool.glob("*.jsonl"))
        session.end()
    finally:
        session.close(2.0)
    assert upload_spool(spool, live_server.url).ok
