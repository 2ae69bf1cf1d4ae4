"""`HttpTransport` against a real HTTP server on 127.0.0.1, and `raise_for_status`."""

from __future__ import annotations

import email.utils
import json
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacat_client import (
    APIError,
    DatacatClient,
    HttpTransport,
    NotFound,
    RateLimited,
    Transport,
    TransportError,
    wire,
)
from datacat_client._transport import Request, parse_retry_after, raise_for_status

from .fakes import CapturingServer, Reply, answer, closed_port, event, wait_for

ACK = {"accepted": 2, "duplicates": 0}


def _batch() -> Request:
    return Request("POST", "/api/ingest", wire.encode(wire.Batch(records=[event(1), event(2)])))


def test_it_is_a_transport() -> None:
    transport = HttpTransport("http://127.0.0.1:1")
    assert isinstance(transport, Transport)
    transport.close()


def test_a_request_carries_token_json_path_and_query(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK))
    transport = HttpTransport(server.url + "/prefix/", token="s3cret")
    try:
        response = transport.handle_request(
            Request("POST", "/api/ingest", b"{}", {"limit": 10, "q": "a b"})
        )
    finally:
        transport.close()
    assert (response.status, response.header("Content-Type")) == (200, "application/json")
    assert json.loads(response.content) == ACK
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/prefix/api/ingest?limit=10&q=a+b")
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == b"{}"


def test_no_token_no_authorization_header_and_no_body_no_content_type(
    server: CapturingServer,
) -> None:
    transport = HttpTransport(server.url)
    try:
        transport.handle_request(Request("GET", "/api/sessions/x"))
    finally:
        transport.close()
    (request,) = server.requests
    assert "Authorization" not in request.headers
    assert "Content-Type" not in request.headers


def test_batches_and_rest_calls_share_one_kept_alive_connection(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK), Reply(200, {"session_id": "x"}), Reply(200, ACK))
    with DatacatClient(server.url) as client:
        client.send_batch([event(1), event(2)])
        client.register_session()
        client.send_batch([event(3)])
    assert [r.path for r in server.requests] == [
        "/api/ingest/v2",
        "/api/sessions",
        "/api/ingest/v2",
    ]
    assert len({r.peer for r in server.requests}) == 1


def test_a_connection_the_server_dropped_while_idle_is_replaced(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK, drop=True), Reply(200, ACK))
    transport = HttpTransport(server.url)
    try:
        assert transport.handle_request(_batch()).status == 200
        assert wait_for(lambda: len(server.requests) == 1)
        assert transport.handle_request(_batch()).status == 200  # no error surfaces
    finally:
        transport.close()
    assert len({r.peer for r in server.requests}) == 2


def test_a_closed_port_is_unreachable() -> None:
    transport = HttpTransport(f"http://127.0.0.1:{closed_port()}")
    try:
        with pytest.raises(TransportError) as caught:
            transport.handle_request(_batch())
    finally:
        transport.close()
    assert caught.value.unreachable is True


def test_a_read_timeout_is_a_transport_error_within_the_timeout(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK, delay=10.0))
    transport = HttpTransport(server.url)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError) as caught:
            transport.handle_request(Request("POST", "/api/ingest", b"{}", timeout=0.2))
    finally:
        transport.close()
    assert time.monotonic() - started < 5.0  # the request's 0.2 s, not the server's 10 s
    assert caught.value.unreachable is False  # it is there, just slow


def test_not_an_http_url_is_refused_at_once() -> None:
    with pytest.raises(TransportError, match="not an http"):
        HttpTransport("localhost:8080")


def test_a_closed_transport_raises_transport_error(server: CapturingServer) -> None:
    transport = HttpTransport(server.url)
    transport.close()
    with pytest.raises(TransportError, match="closed"):
        transport.handle_request(_batch())


def test_closing_ends_a_request_that_waits_on_a_silent_server() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    transport = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}")
    errors: list[Exception] = []

    def post() -> None:
        try:
            transport.handle_request(Request("POST", "/api/ingest", b"{}", timeout=30.0))
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    conn, _ = listener.accept()
    try:
        assert conn.recv(65536).startswith(b"POST /api/ingest")  # it now waits for an answer
        started = time.monotonic()
        transport.close()
        thread.join(10)
    finally:
        conn.close()
        listener.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 5.0  # not the request's 30 s
    assert len(errors) == 1
    assert isinstance(errors[0], TransportError)


# -- statuses become our exceptions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"RateLimit-Limit": "100", "RateLimit-Reset": "7"}, 7.0),  # Litestar's limiter
        ({}, None),
    ],
)
def test_429_is_rate_limited_with_retry_after(
    headers: dict[str, str], expected: float | None
) -> None:
    with pytest.raises(RateLimited) as caught:
        raise_for_status(answer(429, "slow down", headers))
    assert caught.value.retry_after == expected
    assert (caught.value.status_code, caught.value.detail) == (429, "slow down")


def test_429_with_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    with pytest.raises(RateLimited) as caught:
        raise_for_status(answer(429, {}, {"Retry-After": when}))
    assert caught.value.retry_after is not None
    assert 27 <= caught.value.retry_after <= 31


def test_503_carries_its_retry_after() -> None:
    with pytest.raises(APIError) as caught:
        raise_for_status(answer(503, "writer busy", {"Retry-After": "2"}))
    assert (caught.value.status_code, caught.value.retry_after) == (503, 2.0)


def test_404_is_not_found() -> None:
    with pytest.raises(NotFound, match="no such thing"):
        raise_for_status(answer(404, "no such thing"))


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (400, {"status_code": 400, "detail": "records[0].seq: Expected `int` >= 0"}, "records"),
        (401, "a bearer token is required", "bearer token"),
        (500, "Internal Server Error", "Internal Server Error"),
        (502, b"bad gateway from the proxy", "bad gateway from the proxy"),
    ],
)
def test_other_errors_are_api_errors_with_the_detail(
    server: CapturingServer, status: int, body: object, detail: str
) -> None:
    if isinstance(body, str):
        body = {"detail": body}
    server.reply(Reply(status, body))
    with DatacatClient(server.url) as client, pytest.raises(APIError) as caught:
        client.send_batch([event(1)])
    assert type(caught.value) is APIError
    assert caught.value.status_code == status
    assert detail in caught.value.detail


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_raises_nothing(status: int) -> None:
    assert raise_for_status(answer(status)) is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize("status", [199, 300, 302, 400])
def test_anything_else_raises(status: int) -> None:
    with pytest.raises(APIError) as caught:
        raise_for_status(answer(status, "no"))
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 1.5 ", 1.5), ("-1", None), ("soon", None), ("nan", None), (None, None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_parse_retry_after_reads_back_any_seconds(seconds: float) -> None:
    assert parse_retry_after(repr(seconds)) == seconds


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value)
    assert result is None or result >= 0
