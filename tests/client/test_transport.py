"""`HttpTransport` against a real HTTP server on 127.0.0.1: headers, status codes."""

from __future__ import annotations

import email.utils
import socket
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datacat_client import APIError, HttpTransport, NotFound, RateLimited, TransportError, wire
from datacat_client._transport import parse_retry_after

from .fakes import CapturingServer, Reply, event

ACK = {"accepted": 2, "duplicates": 0}


def _body() -> bytes:
    return wire.encode(wire.Batch(records=[event(1), event(2)]))


def test_post_batch_sends_token_json_to_ingest_and_decodes_the_ack(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK))
    transport = HttpTransport(server.url + "/", token="s3cret")
    try:
        ack = transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert ack == wire.BatchAck(accepted=2, duplicates=0)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/api/ingest")
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert wire.batch_decoder.decode(request.body).records == [event(1), event(2)]


def test_no_token_no_authorization_header(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK))
    transport = HttpTransport(server.url)
    try:
        transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert "Authorization" not in server.requests[0].headers


def test_connections_are_kept_alive(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK), Reply(200, ACK), Reply(200, ACK))
    transport = HttpTransport(server.url)
    try:
        for _ in range(3):
            transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert len(server.requests) == 3
    assert len({r.peer for r in server.requests}) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"RateLimit-Limit": "100", "RateLimit-Reset": "7"}, 7.0),  # Litestar's limiter
        ({}, None),
    ],
)
def test_429_is_rate_limited_with_retry_after(
    server: CapturingServer, header: dict[str, str], expected: float | None
) -> None:
    server.reply(Reply(429, {"detail": "slow down"}, header))
    transport = HttpTransport(server.url)
    try:
        with pytest.raises(RateLimited) as caught:
            transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert caught.value.retry_after == expected
    assert caught.value.status_code == 429
    assert caught.value.detail == "slow down"


def test_429_with_an_http_date(server: CapturingServer) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.reply(Reply(429, {}, {"Retry-After": when}))
    transport = HttpTransport(server.url)
    try:
        with pytest.raises(RateLimited) as caught:
            transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert caught.value.retry_after is not None
    assert 27 <= caught.value.retry_after <= 31


def test_404_is_not_found(server: CapturingServer) -> None:
    server.reply(Reply(404, {"detail": "no such thing"}))
    transport = HttpTransport(server.url)
    try:
        with pytest.raises(NotFound, match="no such thing"):
            transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (
            400,
            {"status_code": 400, "detail": "records[0].seq: Expected `int` >= 0"},
            "records[0].seq",
        ),
        (401, {"detail": "a bearer token is required"}, "bearer token"),
        (500, {"detail": "Internal Server Error"}, "Internal Server Error"),
        (502, b"bad gateway from the proxy", "bad gateway from the proxy"),
    ],
)
def test_other_errors_are_api_errors_with_the_detail(
    server: CapturingServer, status: int, body: object, detail: str
) -> None:
    server.reply(Reply(status, body))
    transport = HttpTransport(server.url)
    try:
        with pytest.raises(APIError) as caught:
            transport.post_batch(_body(), timeout=5)
    finally:
        transport.close()
    assert type(caught.value) is APIError
    assert caught.value.status_code == status
    assert detail in caught.value.detail


def test_unreachable_server_is_a_transport_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = HttpTransport(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TransportError):
            transport.post_batch(_body(), timeout=2)
    finally:
        transport.close()


def test_read_timeout_is_a_transport_error_and_honours_the_timeout(server: CapturingServer) -> None:
    server.reply(Reply(200, ACK, delay=1.0))
    transport = HttpTransport(server.url)
    started = time.monotonic()
    try:
        with pytest.raises(TransportError):
            transport.post_batch(_body(), timeout=0.2)
    finally:
        transport.close()
    assert time.monotonic() - started < 0.9


def test_closed_transport_raises_transport_error(server: CapturingServer) -> None:
    transport = HttpTransport(server.url)
    transport.close()
    with pytest.raises(TransportError):
        transport.post_batch(_body(), timeout=1)


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


def test_closing_ends_a_post_that_waits_on_a_silent_server() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    transport = HttpTransport(f"http://127.0.0.1:{listener.getsockname()[1]}")
    errors: list[Exception] = []

    def post() -> None:
        try:
            transport.post_batch(wire.encode(wire.Batch([event(1)])), timeout=30.0)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.3)  # the post is now waiting for an answer that never comes
    started = time.monotonic()
    transport.close()
    thread.join(5)
    listener.close()
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert len(errors) == 1
    assert isinstance(errors[0], TransportError)
