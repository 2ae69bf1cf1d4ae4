"""The seed service's REST API: paths, shapes and behaviour kept exactly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from tests.server.test_merge import reference_merge
from tests.strategies import json_objects

Client = TestClient  # type: ignore[type-arg]


def _new_session(client: Client, **body: Any) -> str:
    answer = client.post("/api/sessions", json=body) if body else client.post("/api/sessions")
    assert answer.status_code == 200, answer.text
    session_id: str = answer.json()["session_id"]
    return session_id


@pytest.mark.parametrize("body", [None, b"", b"{}", b"null"])
def test_create_session_with_no_or_empty_body(client: Client, body: bytes | None) -> None:
    answer = (
        client.post("/api/sessions") if body is None else client.post("/api/sessions", content=body)
    )
    assert answer.status_code == 200
    assert set(answer.json()) == {"session_id"}
    assert uuid.UUID(answer.json()["session_id"])


def test_session_shape_and_order(client: Client) -> None:
    sid = _new_session(client, name="app", product="shop", version="1.2", labels={"env": "ci"})
    for i in range(5):
        assert client.post(
            f"/api/sessions/{sid}/events", json={"name": f"e{i}", "data": {"i": i}}
        ).json() == {"status": "ok"}
        assert client.post(
            f"/api/sessions/{sid}/metrics", json={"name": "m", "value": i, "tags": ["t"]}
        ).json() == {"status": "ok"}
    session = client.get(f"/api/sessions/{sid}").json()
    for key in (
        "id",
        "created_at",
        "updated_at",
        "ended_at",
        "active",
        "status",
        "state",
        "events",
        "metrics",
    ):
        assert key in session
    assert session["id"] == sid
    assert (session["name"], session["product"], session["version"]) == ("app", "shop", "1.2")
    assert session["labels"] == {"env": "ci"}
    assert session["active"] is True
    assert session["status"] == "running"
    assert session["ended_at"] is None
    assert [e["name"] for e in session["events"]] == [f"e{i}" for i in range(5)]
    assert [e["data"] for e in session["events"]] == [{"i": i} for i in range(5)]
    assert [m["value"] for m in session["metrics"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(m["tags"] == ["t"] for m in session["metrics"])
    assert session["created_at"].endswith("Z")


def test_state_deep_merges(client: Client) -> None:
    sid = _new_session(client)
    client.post(
        f"/api/sessions/{sid}/state",
        json={"window": {"open": ["a"], "active": None}, "theme": "dark"},
    )
    client.post(f"/api/sessions/{sid}/state", json={"window": {"open": ["a", "b"]}})
    client.post(
        f"/api/sessions/{sid}/state", json={"window": {"active": "b"}, "theme": {"name": "light"}}
    )
    state = client.get(f"/api/sessions/{sid}").json()["state"]
    assert state == {"window": {"open": ["a", "b"], "active": "b"}, "theme": {"name": "light"}}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(patches=st.lists(json_objects, min_size=1, max_size=5))
def test_reported_state_equals_the_reference_fold(
    client: Client, patches: list[dict[str, Any]]
) -> None:
    sid = _new_session(client)
    expected: dict[str, Any] = {}
    for patch in patches:
        assert client.post(f"/api/sessions/{sid}/state", json=patch).status_code == 200
        expected = reference_merge(expected, patch)
    assert client.get(f"/api/sessions/{sid}").json()["state"] == expected


def test_records_after_end_are_stored_and_the_session_stays_ended(client: Client) -> None:
    sid = _new_session(client)
    assert client.post(f"/api/sessions/{sid}/end").json() == {"status": "ok"}
    client.post(f"/api/sessions/{sid}/events", json={"name": "session_ended"})
    client.post(f"/api/sessions/{sid}/metrics", json={"name": "late", "value": 1})
    session = client.get(f"/api/sessions/{sid}").json()
    assert session["active"] is False
    assert session["status"] == "ended"
    assert session["ended_at"] is not None
    assert [e["name"] for e in session["events"]] == ["session_ended"]
    assert [m["name"] for m in session["metrics"]] == ["late"]
    # Ending again changes nothing.
    ended_at = session["ended_at"]
    client.post(f"/api/sessions/{sid}/end")
    assert client.get(f"/api/sessions/{sid}").json()["ended_at"] == ended_at


def test_metric_tags_as_a_mapping_become_key_value_strings(client: Client) -> None:
    sid = _new_session(client)
    client.post(
        f"/api/sessions/{sid}/metrics", json={"name": "m", "value": 2, "tags": {"host": "a"}}
    )
    assert client.get(f"/api/sessions/{sid}").json()["metrics"][0]["tags"] == ["host=a"]


def test_list_all_sessions_with_limit_and_offset(client: Client) -> None:
    ids = [_new_session(client, name=f"s{i}") for i in range(5)]
    client.post(f"/api/sessions/{ids[1]}/events", json={"name": "x"})
    everything = client.get("/api/data/sessions").json()
    assert [s["id"] for s in everything] == ids
    assert [e["name"] for e in everything[1]["events"]] == ["x"]
    page = client.get("/api/data/sessions", params={"limit": 2, "offset": 1}).json()
    assert [s["id"] for s in page] == ids[1:3]
    assert client.get("/api/data/sessions", params={"limit": 0}).json() == []
    assert client.get("/api/data/sessions", params={"offset": 99}).json() == []


def test_the_original_clients_grafana_path_answers_as_the_data_path(client: Client) -> None:
    """The original Python and Go clients read every session from /api/grafana/sessions."""
    ids = [_new_session(client, name=f"s{i}") for i in range(3)]
    client.post(f"/api/sessions/{ids[0]}/state", json={"window": {"open": True}})
    client.post(f"/api/sessions/{ids[1]}/events", json={"name": "x", "data": {"n": 1}})
    client.post(f"/api/sessions/{ids[2]}/metrics", json={"name": "m", "value": 2, "tags": ["t"]})
    client.post(f"/api/sessions/{ids[2]}/end")
    for params in ({}, {"limit": 2, "offset": 1}):
        data = client.get("/api/data/sessions", params=params)
        grafana = client.get("/api/grafana/sessions", params=params)
        assert grafana.status_code == data.status_code == 200
        assert grafana.headers["content-type"] == data.headers["content-type"]
        assert grafana.content == data.content
    assert [s["id"] for s in client.get("/api/grafana/sessions").json()] == ids
    assert client.get("/api/grafana/sessions", params={"limit": -1}).status_code == 400


def _session_snapshot(client: Client, sid: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = client.get(f"/api/sessions/{sid}").json()
    snapshot.pop("updated_at")
    return snapshot


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("events", b"{not json", "malformed"),
        ("events", b'{"data": {}}', "name"),
        ("events", b'{"name": ""}', "name"),
        ("events", b'{"name": 5}', "Expected `str`"),
        ("metrics", b'{"name": "m"}', "value"),
        ("metrics", b'{"name": "m", "value": "high"}', "Expected `float`"),
        ("metrics", b'{"name": "m", "value": 1e999}', "out of range"),
        ("metrics", b'{"name": "m", "value": NaN}', "malformed"),
        ("metrics", b'{"name": "m", "value": 1, "tags": [1]}', "Expected"),
        ("state", b"[1, 2]", "Expected `object`"),
        ("state", b'"text"', "Expected `object`"),
    ],
)
def test_bad_input_is_a_400_that_says_what_is_wrong_and_changes_nothing(
    client: Client, path: str, body: bytes, needle: str
) -> None:
    sid = _new_session(client)
    client.post(f"/api/sessions/{sid}/state", json={"kept": True})
    client.post(f"/api/sessions/{sid}/events", json={"name": "kept"})
    before = _session_snapshot(client, sid)
    answer = client.post(
        f"/api/sessions/{sid}/{path}", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    text = answer.text
    assert needle.lower() in text.lower(), text
    assert answer.json()["status_code"] == 400
    assert _session_snapshot(client, sid) == before


@pytest.mark.parametrize("path", ["events", "metrics", "state", "end", "heartbeat"])
def test_unknown_session_is_404(client: Client, path: str) -> None:
    body = {"events": {"name": "e"}, "metrics": {"name": "m", "value": 1}, "state": {"a": 1}}.get(
        path
    )
    for sid in (str(uuid.uuid4()), "not-a-uuid"):
        answer = client.post(f"/api/sessions/{sid}/{path}", json=body)
        assert answer.status_code == 404, answer.text
        assert "unknown session" in answer.json()["detail"]
    assert client.get(f"/api/sessions/{uuid.uuid4()}").status_code == 404
    assert client.get("/api/data/sessions").json() == []


def test_create_with_a_chosen_id_is_idempotent(client: Client) -> None:
    chosen = str(uuid.uuid4())
    assert _new_session(client, id=chosen, name="first") == chosen
    assert _new_session(client, id=chosen, name="second") == chosen
    sessions = client.get("/api/data/sessions").json()
    assert [(s["id"], s["name"]) for s in sessions] == [(chosen, "first")]


def test_health_and_openapi_are_reachable(client: Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    schema = client.get("/schema/openapi.json").json()
    for path in (
        "/api/sessions",
        "/api/sessions/{session_id}",
        "/api/ingest",
        "/api/data/sessions",
    ):
        assert path in schema["paths"], sorted(schema["paths"])
