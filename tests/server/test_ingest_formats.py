"""Both batch formats against one server: format 1 (records one by one, as released
clients send them) and format 2 (test results as columns) store the same rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from tests.server.records import RecordMaker, batch

Client = TestClient  # type: ignore[type-arg]

JSON = {"content-type": "application/json"}


def _results(maker: RecordMaker) -> list[wire.TestResult]:
    return [
        maker.result("t.py::test_ok", started_at=100.0, stopped_at=100.5, call_duration=0.5),
        maker.result(
            "t.py::TestA::test_bad[x-1]",
            "failed",
            exc_type="AssertionError",
            exc_message="1 != 2",
            traceback="E   assert 1 == 2",
            stdout="out",
            markers=["slow"],
            line=7,
            worker="gw1",
            cpu_time=0.25,
            rss_delta=-4096,
            setup_duration=0.1,
        ),
        maker.result("t.py::test_sub", "failed", subtest="i=3", attempt=1, final=False),
        maker.result("t.py::test_skip", "skipped", reason="no db"),
    ]


def _sql(client: Client, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows read from the server's store, as committed."""
    return client.app.state.store.reader().execute(sql, params).fetchall()  # type: ignore[no-any-return]


def _stored(client: Client, session_id: str) -> list[tuple[Any, ...]]:
    """Every column of the session's results, as people query them."""
    return _sql(
        client,
        "SELECT * EXCLUDE (session_id, sid, stored_at) FROM test_results"
        " WHERE session_id = ? ORDER BY seq",
        [session_id],
    )


def test_both_formats_store_the_same_rows(client: Client) -> None:
    one, two = RecordMaker(), RecordMaker()
    for maker in (one, two):
        start = batch(maker.start(product="p"), maker.make(wire.RunStart, project="p"))
        assert client.post("/api/ingest", content=start, headers=JSON).status_code == 200
    assert client.post("/api/ingest", content=batch(*_results(one)), headers=JSON).json() == {
        "accepted": 4,
        "duplicates": 0,
    }
    body = wire.encode_columnar(_results(two))
    assert b'"results"' in body
    assert client.post("/api/ingest/v2", content=body, headers=JSON).json() == {
        "accepted": 4,
        "duplicates": 0,
    }
    first, second = _stored(client, one.session_id), _stored(client, two.session_id)
    assert len(first) == 4
    assert first == second


def test_a_retried_columnar_batch_is_stored_once(client: Client) -> None:
    maker = RecordMaker()
    client.post("/api/ingest", content=batch(maker.start(product="p")), headers=JSON)
    results = [maker.result(f"t.py::test_{i}") for i in range(10)]
    body = wire.encode_columnar(results)
    assert client.post("/api/ingest/v2", content=body, headers=JSON).json()["accepted"] == 10
    again = client.post("/api/ingest/v2", content=body, headers=JSON).json()
    assert again == {"accepted": 0, "duplicates": 10}
    # Overlapping: half old, half new; and the same numbers through format 1.
    more = [maker.result(f"t.py::test_{i}") for i in range(10, 15)]
    mixed = wire.encode_columnar(results[5:] + more)
    assert client.post("/api/ingest/v2", content=mixed, headers=JSON).json() == {
        "accepted": 5,
        "duplicates": 5,
    }
    old = client.post("/api/ingest", content=batch(*more), headers=JSON).json()
    assert old == {"accepted": 0, "duplicates": 5}
    assert len(_stored(client, maker.session_id)) == 15


def test_records_and_columns_of_one_batch_apply_together(client: Client) -> None:
    maker = RecordMaker()
    records = [maker.start(product="p"), maker.make(wire.TestStart, nodeid="t.py::a")]
    records += [maker.result("t.py::a"), maker.make(wire.TestStart, nodeid="t.py::b")]
    answer = client.post("/api/ingest/v2", content=wire.encode_columnar(records), headers=JSON)
    assert answer.json() == {"accepted": 4, "duplicates": 0}
    session = client.get(f"/api/sessions/{maker.session_id}").json()
    assert [e["data"]["nodeid"] for e in session["events"] if e["name"] == "test_result"] == [
        "t.py::a"
    ]
    # "a" finished (its result came after its start), "b" is still running.
    [(in_progress,)] = _sql(
        client, "SELECT in_progress FROM sessions WHERE id = ?", [maker.session_id]
    )
    assert list(json.loads(in_progress)) == ["t.py::b"]


def _block(maker: RecordMaker, **columns: Any) -> bytes:
    block = {"session_id": maker.session_id, "seq": [1, 2], "timestamp": [1.0, 1.0]}
    block |= {"nodeid": ["t::a", "t::b"], "outcome": ["passed", "passed"]} | columns
    return wire.encode({"results": [block]})


@pytest.mark.parametrize(
    ("columns", "needle"),
    [
        ({"outcome": ["passed"]}, "results[0].outcome holds 1 values"),
        (
            {"outcome": ["passed", "great"]},
            "Invalid enum value 'great' - at `$.results[0].outcome[1]`",
        ),
        ({"line": [1, "x"]}, "Expected `int | null`"),
        ({"nodeid": ["t::a", "t::" + "x" * 5000]}, "the nodeid is 5003 characters long"),
        ({"markers": [["m"] * 60, []]}, "60 markers; at most 50"),
        ({"seq": [1, -2]}, "Expected `int` >= 0"),
    ],
)
def test_bad_columns_are_refused_and_store_nothing(
    client: Client, columns: dict[str, Any], needle: str
) -> None:
    maker = RecordMaker(start=100)
    client.post("/api/ingest", content=batch(maker.start(product="p")), headers=JSON)
    answer = client.post("/api/ingest/v2", content=_block(maker, **columns), headers=JSON)
    assert answer.status_code == 400, answer.text
    assert needle in answer.text
    assert _stored(client, maker.session_id) == []


def test_columns_of_an_unknown_session_are_404(client: Client) -> None:
    answer = client.post("/api/ingest/v2", content=_block(RecordMaker()), headers=JSON)
    assert answer.status_code == 404
    assert "unknown session" in answer.json()["detail"]


def test_long_text_in_columns_is_cut_like_in_records(client: Client, settings: Any) -> None:
    maker = RecordMaker(start=100)
    client.post("/api/ingest", content=batch(maker.start(product="p")), headers=JSON)
    huge = "x" * (settings.max_text_length + 500)
    body = _block(maker, traceback=[huge, None])
    assert client.post("/api/ingest/v2", content=body, headers=JSON).json()["accepted"] == 2
    [(traceback,)] = _sql(client, "SELECT traceback FROM result_details")
    assert len(traceback) <= settings.max_text_length
    assert "cut by the DataCat server" in traceback


def test_a_run_finishes_once(client: Client) -> None:
    maker = RecordMaker()
    records = [maker.start(product="p"), maker.make(wire.RunStart, project="p")]
    records.append(maker.make(wire.RunFinish, exit_status=1, status="failed", counts={"failed": 2}))
    assert client.post("/api/ingest", content=batch(*records), headers=JSON).json() == {
        "accepted": 3,
        "duplicates": 0,
    }
    second = maker.make(wire.RunFinish, exit_status=0, status="passed", counts={"passed": 9})
    answer = client.post("/api/ingest", content=batch(second), headers=JSON).json()
    assert answer["accepted"] == 0
    assert answer["duplicates"] == 1
    assert "this run has finished already" in answer["notes"][0]
    run = client.get(f"/api/runs/{maker.session_id}").json()
    assert (run["outcome"], run["exit_status"], run["counts"]) == ("failed", 1, {"failed": 2})
