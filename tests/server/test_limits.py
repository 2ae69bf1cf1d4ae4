"""Every limit: its default, its setting, and what a request past it gets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch

JSON_HEADERS = {"content-type": "application/json"}

Client = TestClient  # type: ignore[type-arg]


def _client(db_path: Path, **settings: Any) -> Iterator[Client]:
    with TestClient(app=create_app(Settings(db_path=db_path, **settings))) as client:
        yield client


@pytest.fixture
def small(db_path: Path) -> Iterator[Client]:
    """Limits set low, to test each one cheaply."""
    yield from _client(
        db_path,
        max_body_size=20_000,
        max_name_length=20,
        max_nodeid_length=40,
        max_text_length=200,
        max_depth=5,
        max_data_bytes=500,
        max_tags=3,
    )


@pytest.fixture
def default(db_path: Path) -> Iterator[Client]:
    """The default limits."""
    yield from _client(db_path)


def _session(client: Client) -> tuple[RecordMaker, str]:
    maker = RecordMaker()
    assert client.post("/api/ingest", content=batch(maker.start())).status_code == 200
    return maker, maker.session_id


def _stored(client: Client, session_id: str) -> Any:
    session = client.get(f"/api/sessions/{session_id}").json()
    return session["events"], session["metrics"], session["state"]


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _post_json(client: Client, path: str, text: str | bytes) -> Any:
    body = text.encode() if isinstance(text, str) else text
    return client.post(path, content=body, headers={"content-type": "application/json"})


def test_defaults_match_the_documented_values() -> None:
    limits = Settings().limits
    assert (limits.max_name_length, limits.max_nodeid_length, limits.max_text_length) == (
        1000,
        4000,
        100_000,
    )
    assert (limits.max_depth, limits.max_data_bytes, limits.max_tags) == (32, 1_000_000, 50)
    assert limits.max_labels == 100
    assert Settings().max_body_size == 50_000_000
    assert Settings().max_batch_records == 20_000


def test_every_limit_reads_its_environment_variable() -> None:
    env = {
        "DATACAT_MAX_NAME_LENGTH": "7",
        "DATACAT_MAX_NODEID_LENGTH": "8",
        "DATACAT_MAX_TEXT_LENGTH": "9",
        "DATACAT_MAX_DEPTH": "10",
        "DATACAT_MAX_DATA_BYTES": "11",
        "DATACAT_MAX_TAGS": "12",
        "DATACAT_MAX_BODY_SIZE": "13",
        "DATACAT_MAX_BATCH_RECORDS": "14",
        "DATACAT_MAX_LABELS": "15",
        "DATACAT_RATE_LIMIT": "16",
        "DATACAT_RATE_BURST": "17",
        "DATACAT_SQL_MAX_ROWS": "18",
        "DATACAT_SQL_TIMEOUT": "19",
        "DATACAT_MAX_HEAD_BYTES": "20000",
    }
    settings = Settings.from_env(env)
    assert settings.limits.max_name_length == 7
    assert settings.limits.max_nodeid_length == 8
    assert settings.limits.max_text_length == 9
    assert settings.limits.max_depth == 10
    assert settings.limits.max_data_bytes == 11
    assert settings.limits.max_tags == 12
    assert (settings.max_body_size, settings.max_batch_records) == (13, 14)
    assert settings.limits.max_labels == 15
    assert (settings.rate_limit, settings.rate_burst) == (16, 17)
    assert (settings.sql_max_rows, settings.sql_timeout) == (18, 19)
    assert settings.max_head_bytes == 20_000
    with pytest.raises(ValueError, match="DATACAT_MAX_DEPTH must be an integer"):
        Settings.from_env({"DATACAT_MAX_DEPTH": "deep"})


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("DATACAT_MAX_HEAD_BYTES", "0", "at least 1"),
        ("DATACAT_MAX_HEAD_BYTES", "1000", "at least 4096"),
        ("DATACAT_MAX_BODY_SIZE", "-5", "at least 1"),
        ("DATACAT_SQL_MAX_ROWS", "0", "at least 1"),
    ],
)
def test_a_limit_that_would_refuse_everything_is_refused_at_start(
    name: str, value: str, needle: str
) -> None:
    with pytest.raises(ValueError, match=f"{name} must be {needle}"):
        Settings.from_env({name: value})


def test_a_body_over_the_size_limit_is_413(small: Client) -> None:
    maker, sid = _session(small)
    answer = small.post(
        "/api/ingest", content=batch(*(maker.event("e", {"pad": "x" * 100}) for _ in range(200)))
    )
    assert answer.status_code == 413
    assert _stored(small, sid)[0] == []


@pytest.mark.parametrize(("limits", "depth"), [("default", 10_000), ("default", 33), ("small", 6)])
def test_json_nested_past_the_limit_is_400_everywhere(
    request: pytest.FixtureRequest, limits: str, depth: int
) -> None:
    small: Client = request.getfixturevalue(limits)
    maker, sid = _session(small)
    deep = _nested(depth)
    for path, body in (
        (f"/api/sessions/{sid}/state", deep),
        (f"/api/sessions/{sid}/events", '{"name": "e", "data": ' + deep + "}"),
        (
            "/api/ingest",
            batch(maker.event("e")).decode().replace('"name":"e"', '"name":"e","data":' + deep),
        ),
    ):
        answer = _post_json(small, path, body)
        assert answer.status_code == 400, (path, answer.text)
        assert "nested" in answer.json()["detail"]
    assert _stored(small, sid) == ([], [], {})


def test_json_at_the_depth_limit_is_stored(small: Client) -> None:
    _, sid = _session(small)
    assert _post_json(small, f"/api/sessions/{sid}/state", _nested(4)).status_code == 200


def test_data_over_the_size_limit_is_400(small: Client) -> None:
    maker, sid = _session(small)
    answer = small.post("/api/ingest", content=batch(maker.event("e", {"blob": "x" * 600})))
    assert answer.status_code == 400
    assert "at most 500" in answer.json()["detail"]
    answer = small.post(f"/api/sessions/{sid}/state", json={"blob": "x" * 600})
    assert answer.status_code == 400
    assert _stored(small, sid) == ([], [], {})


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("events", {"name": "e" * 21}, "(event): the name is 21 characters long; at most 20"),
        ("metrics", {"name": "m" * 21, "value": 1}, "(metric): the name is 21"),
        ("metrics", {"name": "m", "value": 1, "tags": ["a", "b", "c", "d"]}, "4 tags; at most 3"),
        ("metrics", {"name": "m", "value": 1, "tags": ["t" * 21]}, "one of the tags"),
    ],
)
def test_names_and_tags_past_their_limits_are_refused(
    small: Client, path: str, body: dict[str, Any], needle: str
) -> None:
    _, sid = _session(small)
    answer = small.post(f"/api/sessions/{sid}/{path}", json=body)
    assert answer.status_code == 400
    assert needle in answer.json()["detail"]
    assert _stored(small, sid)[:2] == ([], [])


def test_a_too_long_nodeid_is_refused_and_long_text_is_cut(small: Client) -> None:
    maker, sid = _session(small)
    answer = small.post("/api/ingest", content=batch(maker.result("t.py::" + "x" * 40)))
    assert answer.status_code == 400
    assert "the nodeid is 46 characters long; at most 40" in answer.json()["detail"]
    long = "line\n" * 100
    answer = small.post(
        "/api/ingest",
        content=batch(
            maker.result(
                "t.py::test_a", "failed", exc_type="E", traceback=long, exc_message="m" * 500
            )
        ),
    )
    assert answer.status_code == 200
    stored = small.get(f"/api/runs/{sid}/tests").status_code  # not a run: no RunStart
    assert stored == 404
    event = next(
        e for e in small.get(f"/api/sessions/{sid}").json()["events"] if e["name"] == "exception"
    )
    text = "\n".join(event["data"]["traceback"])
    assert "[cut by the DataCat server: " in text
    assert len(text) < 300
    assert text.startswith("line")
    assert "[cut by the DataCat server" in event["data"]["message"]


def test_labels_past_their_limits_are_refused(small: Client) -> None:
    answer = small.post("/api/sessions", json={"labels": {"k": "v" * 21}})
    assert answer.status_code == 400
    assert "a value of labels is 21 characters long" in answer.json()["detail"]
    assert small.get("/api/data/sessions").json() == []


def test_invalid_utf8_and_duplicate_keys_are_400_and_store_nothing(small: Client) -> None:
    maker, sid = _session(small)
    for path, body in (
        (f"/api/sessions/{sid}/events", b'{"name": "\xff\xfe"}'),
        ("/api/ingest", batch(maker.event("e", {"x": 1})).replace(b'"x"', b'"\xc3\x28"')),
    ):
        answer = _post_json(small, path, body)
        assert answer.status_code == 400, answer.text
        assert "not valid UTF-8" in answer.json()["detail"]
    for path, text in (
        (f"/api/sessions/{sid}/events", '{"name": "a", "name": "b"}'),
        (f"/api/sessions/{sid}/state", '{"admin": false, "admin": true}'),
        (f"/api/sessions/{sid}/events", '{"name": "a", "data": {"k": 1, "k": 2}}'),
        ("/api/ingest", batch(maker.event("e", {"k": 1})).decode().replace('"k":1', '"k":1,"k":2')),
    ):
        answer = _post_json(small, path, text)
        assert answer.status_code == 400, (path, answer.text)
        assert "twice in one object" in answer.json()["detail"]
    assert _stored(small, sid) == ([], [], {})


def test_non_finite_numbers_are_refused(small: Client) -> None:
    maker, sid = _session(small)
    for text in (
        '{"name": "m", "value": 1e999}',
        '{"name": "m", "value": -1e999}',
        '{"name": "m", "value": NaN}',
    ):
        assert _post_json(small, f"/api/sessions/{sid}/metrics", text).status_code == 400
    record = batch(maker.make(wire.Metric, name="m", value=1.0)).replace(
        b'"value":1.0', b'"value":1e999'
    )
    assert _post_json(small, "/api/ingest", record).status_code == 400
    assert _stored(small, sid)[1] == []


@pytest.mark.parametrize(
    ("kind", "fields", "needle"),
    [
        ("run_start", {"python_version": "3" * 5_000_000}, "the python_version is 5000000"),
        ("run_start", {"pytest_version": "9" * 2_000}, "the pytest_version is 2000"),
        ("run_start", {"plugins": ["p" * 2_000]}, "one of the plugins is 2000"),
        ("run_start", {"args": ["a" * 5_000]}, "one of the args is 5000"),
        ("run_finish", {"status": "s" * 2_000, "exit_status": 1}, "the status is 2000"),
        (
            "run_finish",
            {"counts": {"k" * 2_000: 1}, "exit_status": 1, "status": "x"},
            "a key of counts",
        ),
        ("test_start", {"nodeid": "t::a", "worker": "w" * 2_000}, "the worker is 2000"),
    ],
)
def test_every_field_of_a_run_is_bounded(
    default: Client, kind: str, fields: dict[str, Any], needle: str
) -> None:
    """One huge value (5 MB of python_version) once made every runs page 13 MB."""
    _maker, sid = _session(default)
    record = {"kind": kind, "session_id": sid, "seq": 10**6, "timestamp": 1.0, **fields}
    answer = default.post(
        "/api/ingest", content=msgspec.json.encode({"records": [record]}), headers=JSON_HEADERS
    )
    assert answer.status_code == 400, answer.text[:200]
    assert needle in answer.json()["detail"]
