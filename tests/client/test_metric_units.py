"""``log_metric(..., unit=, kind=)``: both clients send them when given, and a call
without them is on the wire exactly what it was before (old servers keep working)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from datacat_client import DatacatClient, Session, wire

from .fakes import INGEST_PATHS, CapturingServer, FakeServer

MakeSession = Callable[..., Session]
SID = "3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b"


def _batch_bodies(fake: FakeServer) -> bytes:
    return b"".join(r.body or b"" for r in fake.requests if r.path in INGEST_PATHS)


def test_a_session_sends_unit_and_kind(make_session: MakeSession, fake: FakeServer) -> None:
    session = make_session()
    session.log_metric("served", 10, unit="requests", kind="counter")
    session.log_metric("latency", 12.5, ["route=/"], unit="ms")
    assert session.flush(5.0)
    metrics = {m.name: m for m in fake.of_kind(wire.Metric)}
    assert (metrics["served"].unit, metrics["served"].kind) == ("requests", "counter")
    assert (metrics["latency"].unit, metrics["latency"].kind) == ("ms", "gauge")
    assert metrics["latency"].tags == ["route=/"]
    assert b'"metric_kind":"counter"' in _batch_bodies(fake)


def test_without_unit_and_kind_the_wire_is_as_before(
    make_session: MakeSession, fake: FakeServer
) -> None:
    session = make_session()
    session.log_metric("fps", 59.5, ["scene:1"])
    assert session.flush(5.0)
    body = _batch_bodies(fake)
    assert b"fps" in body
    assert b"unit" not in body
    assert b"metric_kind" not in body


def test_an_unknown_kind_drops_the_value_with_one_warning(
    make_session: MakeSession, fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    session = make_session()
    with caplog.at_level(logging.WARNING, logger="datacat"):
        session.log_metric("served", 1, kind="histogram")  # type: ignore[arg-type]
        session.log_metric("served", 2, kind="Counter")  # type: ignore[arg-type]
        session.log_metric("served", 3, kind="counter")
    assert session.flush(5.0)
    # one bad record would have made the server refuse the whole batch
    assert [(m.value, m.kind) for m in fake.of_kind(wire.Metric)] == [(3.0, "counter")]
    assert session.stats.dropped == 2
    (message,) = [r.getMessage() for r in caplog.records if r.name == "datacat"]
    assert "kind must be 'gauge' or 'counter', got 'histogram'" in message


@pytest.fixture
def client(server: CapturingServer) -> Iterator[DatacatClient]:
    with DatacatClient(server.url) as client:
        yield client


def test_the_plain_client_sends_them_only_when_given(
    server: CapturingServer, client: DatacatClient
) -> None:
    client.log_metric(SID, "fps", 60)
    client.log_metric(SID, "served", 30, unit="requests", kind="counter")
    client.log_metric(SID, "latency", 4, unit="ms")
    bodies = [request.json() for request in server.requests]
    assert bodies == [
        {"name": "fps", "value": 60.0, "tags": []},  # the seed's request, as before
        {"name": "served", "value": 30.0, "tags": [], "unit": "requests", "kind": "counter"},
        {"name": "latency", "value": 4.0, "tags": [], "unit": "ms"},
    ]
