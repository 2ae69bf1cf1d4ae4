"""The metrics explorer with units and kinds: a counter shows as its rate, every number
carries its unit, and a per-session aggregation is a bar per session, never a line."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.server.records import RecordMaker

Client = TestClient[Any]
T0 = 1_800_000_000.0


def _session(store: Store, name: str, metrics: list[wire.Metric], maker: RecordMaker) -> str:
    store.write_sync([maker.start(name=name), *metrics])
    return maker.session_id


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, list[str]]]:
    """Three web sessions counting requests (0, 10, 30 a second apart; one restarted),
    logging their latency in ms and their memory in bytes; the client over them."""
    store = Store(tmp_path_factory.mktemp("explore") / "explore.duckdb", soft_flush_interval=0.05)
    counts = [
        [(0, 0.0), (1, 10.0), (2, 30.0)],  # 10/s, then 20/s
        [(100, 50.0), (102, 90.0), (103, 4.0)],  # 20/s; restarted: 4/s
        [(200, 0.0), (201, 5.0)],  # 5/s
    ]
    ids = []
    for number, values in enumerate(counts):
        maker = RecordMaker()
        start = T0 + values[0][0]
        metrics = [
            maker.make(
                wire.Metric,
                name="requests_served",
                value=v,
                unit="requests",
                kind="counter",
                timestamp=T0 + t,
            )
            for t, v in values
        ]
        metrics += [
            maker.make(wire.Metric, name="latency", value=v, unit="ms", timestamp=start + i)
            for i, v in enumerate((120.0 + number, 40.0, 900.0 + number))
        ]
        metrics.append(
            maker.make(wire.Metric, name="heap", value=(number + 1) * 1_048_576.0, unit="bytes")
        )
        ids.append(_session(store, f"web-{number}", metrics, maker))
    try:
        settings = Settings(db_path=store.db.path)
        with TestClient(app=create_app(settings, store=store)) as client:
            yield client, ids
    finally:
        store.close()


def _page(client: Client, **params: str) -> str:
    response = client.get(f"/explore?{urlencode(params)}")
    assert response.status_code == 200, response.text[:300]
    return response.text


def _spec(body: str) -> dict[str, Any]:
    raw = body.split('<script type="application/json" id="metric-chart">')[1].split(
        "</script>", maxsplit=1
    )[0]
    spec: dict[str, Any] = json.loads(raw)
    return spec


def _stats(body: str) -> dict[str, str]:
    block = body.split('<dl class="stats">')[1].split("</dl>", maxsplit=1)[0]
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)", block))


def test_a_counter_is_its_rate_with_its_unit_per_second(
    sessions: tuple[Client, list[str]],
) -> None:
    client, ids = sessions
    body = _page(client, name="requests_served")
    assert "is a counter (a running total of requests), shown as its rate" in body
    assert "the increase is then the value itself" in body  # how a reset reads
    stats = _stats(body)
    assert stats["Peak"] == "20 requests/s"
    assert stats["Minimum"] == "4 requests/s"
    # 30 + 44 + 5 requests over 2 + 3 + 1 seconds
    assert stats["Average"] == f"{(30 + 44 + 5) / 6:.4g} requests/s"
    assert stats["Points"].strip() == "5"
    spec = _spec(body)
    assert spec["y"]["title"] == "requests_served rate (requests/s)"
    assert spec["y"]["unit"] == "requests/s"
    first = next(d for d in spec["datasets"] if d["label"] == f"session {ids[0][:8]}")
    assert [p["y"] for p in first["points"]] == [10.0, 20.0]
    assert first["showLine"] is True  # a line within one session
    assert len(spec["datasets"]) == 3  # one series per session: none joins two
    assert '<th class="num">requests_served rate (requests/s)</th>' in body
    assert '<td class="num">20 requests/s</td>' in body


def test_a_per_session_aggregation_is_a_bar_per_session(
    sessions: tuple[Client, list[str]],
) -> None:
    client, ids = sessions
    for aggregation, heights in (
        ("peak", [20.0, 20.0, 5.0]),
        ("min", [10.0, 4.0, 5.0]),
        ("average", [15.0, 44 / 3, 5.0]),
    ):
        spec = _spec(_page(client, name="requests_served", aggregation=aggregation))
        assert spec["type"] == "bar", aggregation
        assert spec["x"]["labels"] == [i[:8] for i in ids]  # oldest session first
        assert spec["x"]["title"] == "Sessions, oldest first"
        (bars,) = spec["datasets"]
        assert bars["values"] == pytest.approx(heights), aggregation
        assert bars["links"] == [f"/sessions/{i}" for i in ids]
        assert "points" not in bars
        assert "showLine" not in bars
    body = _page(client, name="latency", aggregation="peak")
    spec = _spec(body)
    assert spec["type"] == "bar"
    assert spec["y"]["title"] == "latency (ms)"
    assert spec["datasets"][0]["label"] == "peak per session"
    assert spec["datasets"][0]["values"] == [900.0, 901.0, 902.0]
    assert _stats(body)["Peak"] == "902 ms"
    assert "<th>First value</th>" in body


def test_statistics_and_axes_are_in_the_stored_unit(sessions: tuple[Client, list[str]]) -> None:
    client, _ = sessions
    latency = _page(client, name="latency")
    assert _stats(latency)["Peak"] == "902 ms"
    assert _stats(latency)["Minimum"] == "40 ms"
    assert _spec(latency)["y"]["title"] == "latency (ms)"
    assert "is a counter" not in latency
    heap = _page(client, name="heap", aggregation="peak")
    assert _stats(heap)["Peak"] == "3.0 MiB"
    spec = _spec(heap)
    assert spec["y"]["title"] == "heap (MiB)"
    assert spec["datasets"][0]["values"] == [1.0, 2.0, 3.0]


def test_the_api_says_the_kind_and_the_unit_of_the_values(
    sessions: tuple[Client, list[str]],
) -> None:
    client, _ = sessions
    answer = client.get("/api/metrics/series", params={"name": "requests_served"}).json()
    assert (answer["kind"], answer["unit"], answer["value_unit"]) == (
        "counter",
        "requests",
        "requests/s",
    )
    assert [p["value"] for p in answer["points"]] == [10.0, 20.0, 20.0, 4.0, 5.0]
    gauge = client.get("/api/metrics/series", params={"name": "latency"}).json()
    assert (gauge["kind"], gauge["value_unit"]) == ("gauge", "ms")


def test_a_counter_without_two_values_says_why_there_is_no_rate(tmp_path: Path) -> None:
    store = Store(tmp_path / "one.duckdb", soft_flush_interval=0.05)
    try:
        maker = RecordMaker()
        _session(
            store,
            "once",
            [maker.make(wire.Metric, name="jobs", value=3.0, kind="counter")],
            maker,
        )
        with TestClient(app=create_app(Settings(db_path=store.db.path), store=store)) as client:
            body = _page(client, name="jobs")
    finally:
        store.close()
    assert "a rate needs two values of one session" in html.unescape(body)
    assert "is a counter (a running total), shown as its rate" in body
    assert _stats(body)["Peak"] == "\N{EM DASH}"
