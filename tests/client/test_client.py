"""`DatacatClient`: each seed call's method, path and body, against a real HTTP server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from datacat_client import APIError, DatacatClient, DatacatError, NotFound, wire

from .fakes import BASE_URL, SESSION_ID, CapturingServer, FakeServer, Reply, event

ACK = {"accepted": 1, "duplicates": 0}

SID = "3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b"


@pytest.fixture
def client(server: CapturingServer) -> Iterator[DatacatClient]:
    with DatacatClient(server.url, token="tok") as client:
        yield client


def test_register_session_without_arguments_sends_no_body(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(200, {"session_id": SID}))
    assert client.register_session() == SID
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("POST", "/api/sessions", b"")
    assert request.headers["Authorization"] == "Bearer tok"


def test_register_session_sends_what_is_given(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(200, {"session_id": SID}))
    sid = client.register_session(
        name="run", product="app", version="1.0", labels={"env": "ci"}, state={"a": 1}
    )
    assert sid == SID
    assert server.requests[0].json() == {
        "name": "run",
        "product": "app",
        "version": "1.0",
        "labels": {"env": "ci"},
        "state": {"a": 1},
    }


def test_register_session_without_an_id_in_the_answer_raises(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(200, {"id": SID}))
    with pytest.raises(DatacatError, match="session_id"):
        client.register_session()


WRITES: list[tuple[Callable[[DatacatClient], object], str, object]] = [
    (lambda c: c.update_state(SID, {"a": {"b": 2}}), "/state", {"a": {"b": 2}}),
    (
        lambda c: c.log_event(SID, "clicked", {"x": 1}),
        "/events",
        {"name": "clicked", "data": {"x": 1}},
    ),
    (lambda c: c.log_event(SID, "bare"), "/events", {"name": "bare", "data": None}),
    (
        lambda c: c.log_metric(SID, "fps", 59.5, ["scene:1"]),
        "/metrics",
        {"name": "fps", "value": 59.5, "tags": ["scene:1"]},
    ),
    (
        lambda c: c.log_metric(SID, "fps", 60, {"scene": 1, "gpu": "x"}),
        "/metrics",
        {"name": "fps", "value": 60.0, "tags": ["scene=1", "gpu=x"]},
    ),
    (lambda c: c.log_metric(SID, "fps", 1), "/metrics", {"name": "fps", "value": 1.0, "tags": []}),
    (lambda c: c.heartbeat(SID, 15.0), "/heartbeat", {"interval": 15.0}),
    (lambda c: c.heartbeat(SID), "/heartbeat", {"interval": None}),
]


@pytest.mark.parametrize(("call", "tail", "body"), WRITES)
def test_write_calls_post_json_and_answer_ok(
    server: CapturingServer,
    client: DatacatClient,
    call: Callable[[DatacatClient], object],
    tail: str,
    body: object,
) -> None:
    assert call(client) == {"status": "ok"}
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", f"/api/sessions/{SID}{tail}")
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == body


def test_end_session_posts_without_a_body(server: CapturingServer, client: DatacatClient) -> None:
    assert client.end_session(SID) == {"status": "ok"}
    (request,) = server.requests
    assert (request.method, request.path, request.body) == ("POST", f"/api/sessions/{SID}/end", b"")


def test_get_session_returns_the_answer(server: CapturingServer, client: DatacatClient) -> None:
    session = {"id": SID, "state": {"a": 1}, "events": [], "metrics": [], "active": True}
    server.reply(Reply(200, session))
    assert client.get_session(SID) == session
    assert (server.requests[0].method, server.requests[0].path) == ("GET", f"/api/sessions/{SID}")


def test_get_session_unknown_raises_not_found(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(404, {"status_code": 404, "detail": f"no session {SID}"}))
    with pytest.raises(NotFound) as caught:
        client.get_session(SID)
    assert SID in caught.value.detail


def test_get_all_sessions_with_and_without_paging(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(200, [{"id": SID}]), Reply(200, []))
    assert client.get_all_sessions() == [{"id": SID}]
    assert client.get_all_sessions(limit=10, offset=20) == []
    assert server.requests[0].path == "/api/data/sessions"
    assert server.requests[1].path == "/api/data/sessions?limit=10&offset=20"


def test_bad_request_surfaces_the_detail(server: CapturingServer, client: DatacatClient) -> None:
    server.reply(Reply(400, {"status_code": 400, "detail": "name: Expected `str` of length >= 1"}))
    with pytest.raises(APIError) as caught:
        client.log_event(SID, "")
    assert caught.value.status_code == 400
    assert "length >= 1" in caught.value.detail


def _fail() -> None:
    raise KeyError("missing")


def test_log_exception_sends_an_exception_event(
    server: CapturingServer, client: DatacatClient
) -> None:
    try:
        _fail()
    except KeyError:
        client.log_exception(SID, extra_data={"where": "checkout"})
    body = server.requests[0].json()
    assert server.requests[0].path == f"/api/sessions/{SID}/events"
    assert body["name"] == "exception"
    assert body["data"]["type"] == "KeyError"
    assert body["data"]["message"] == "'missing'"
    assert body["data"]["where"] == "checkout"
    assert any("_fail" in line for line in body["data"]["traceback"])


def test_send_batch_posts_records_and_returns_the_ack(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(200, {"accepted": 1, "duplicates": 1}))
    ack = client.send_batch([event(1), event(1)])
    assert ack == wire.BatchAck(accepted=1, duplicates=1)
    sent = json.loads(server.requests[0].body)
    assert [r["session_id"] for r in sent["records"]] == [SESSION_ID, SESSION_ID]
    assert server.requests[0].path == "/api/ingest/v2"


def test_results_go_as_columns(server: CapturingServer, client: DatacatClient) -> None:
    server.reply(Reply(200, {"accepted": 3, "duplicates": 0}))
    results = [
        wire.TestResult(
            session_id=SESSION_ID, seq=i, timestamp=1.0, nodeid=f"t::{i}", outcome="passed"
        )
        for i in range(3)
    ]
    client.send_batch(results)
    sent = json.loads(server.requests[0].body)
    assert sent["results"][0]["nodeid"] == ["t::0", "t::1", "t::2"]
    assert "records" not in sent


def test_an_older_server_gets_format_1_from_then_on(
    server: CapturingServer, client: DatacatClient
) -> None:
    """A server that predates format 2 answers its path with its router's 404."""
    not_found = Reply(404, {"status_code": 404, "detail": "Not Found"})
    server.reply(not_found, Reply(200, ACK), Reply(200, ACK))
    assert client.send_batch([event(1)]) == wire.BatchAck(accepted=1, duplicates=0)
    client.send_batch([event(2)])
    assert [r.path for r in server.requests] == ["/api/ingest/v2", "/api/ingest", "/api/ingest"]
    assert json.loads(server.requests[1].body)["records"][0]["seq"] == 1


def test_an_unknown_session_is_not_taken_for_an_older_server(
    server: CapturingServer, client: DatacatClient
) -> None:
    server.reply(Reply(404, {"status_code": 404, "detail": f"unknown session: {SESSION_ID}"}))
    with pytest.raises(NotFound):
        client.send_batch([event(1)])
    assert [r.path for r in server.requests] == ["/api/ingest/v2"]
    assert client.columnar


def test_non_json_answer_is_a_datacat_error(server: CapturingServer, client: DatacatClient) -> None:
    server.reply(Reply(200, b"<html>proxy login</html>"))
    with pytest.raises(DatacatError, match="not JSON"):
        client.get_session(SID)


def test_context_manager_closes_the_transport(server: CapturingServer) -> None:
    with DatacatClient(server.url) as client:
        client.end_session(SID)
    with pytest.raises(DatacatError):
        client.end_session(SID)


def test_every_call_goes_through_the_given_transport(fake: FakeServer) -> None:
    with DatacatClient(BASE_URL, transport=fake) as client:
        client.register_session(name="run")
        client.update_state(SID, {"a": 1})
        client.log_event(SID, "e")
        client.log_metric(SID, "m", 1.0)
        client.heartbeat(SID)
        client.end_session(SID)
        client.get_session(SID)
        client.send_batch([event(1)])
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", "/api/sessions"),
        ("POST", f"/api/sessions/{SID}/state"),
        ("POST", f"/api/sessions/{SID}/events"),
        ("POST", f"/api/sessions/{SID}/metrics"),
        ("POST", f"/api/sessions/{SID}/heartbeat"),
        ("POST", f"/api/sessions/{SID}/end"),
        ("GET", f"/api/sessions/{SID}"),
        ("POST", "/api/ingest/v2"),
    ]
    assert fake.closed
