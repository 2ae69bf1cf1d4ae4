"""Hostile input: what a broken or malicious client may send, and what it gets back.

- ``POST /api/ingest`` under hypothesis: arbitrary JSON, valid batches with mutated
  fields, arbitrary bytes. Never a 5xx; a 4xx says why and stores nothing; a 2xx stores
  what it acknowledged, readable back through the API and the dashboard.
- The seed endpoints: arbitrary JSON never a 5xx; invalid UTF-8 and duplicate keys where
  ``test_limits.py`` does not try them (it covers ``/events``, ``/state`` duplicates and
  ``/api/ingest``).
- Path traversal on ``/static``, through the test client and as raw bytes over a socket
  to a real ``datacat serve`` (so that no HTTP client normalises the path).
- Oversized headers and URLs against a real ``datacat serve``.

The deep merge of arbitrary JSON through the API is
``test_seed_api.py::test_reported_state_equals_the_reference_fold``.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeAlias

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from dashboard._mount import STATIC
from datacat_client import wire
from datacat_server.api.requests import OFF_LOOP_BYTES
from datacat_server.app import create_app
from datacat_server.queries._common import parse_session_id
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch
from tests.strategies import json_objects, json_values
from tests.support.server import ServerProcess

Client: TypeAlias = TestClient[Litestar]

_HYPOTHESIS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One app for the module: hypothesis examples share it (each uses fresh sessions)."""
    db = tmp_path_factory.mktemp("hostile") / "hostile.duckdb"
    with TestClient(app=create_app(Settings(db_path=db, soft_flush_interval=0.05))) as client:
        yield client


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``datacat serve`` (uvicorn) for raw-socket tests."""
    with ServerProcess(tmp_path_factory.mktemp("hostile-live") / "live.duckdb") as server:
        yield server


# -- what is stored ----------------------------------------------------------------------

_TABLES = (
    "sessions",
    "state_updates",
    "event_log",
    "metric_log",
    "tests",
    "results",
    "result_details",
    "runs",
)
# One UNION ALL, labelled: scalar subqueries cost DuckDB milliseconds each to plan.
_FINGERPRINT = " UNION ALL ".join(
    [
        *(f"SELECT '{table}', CAST(count(*) AS VARCHAR) FROM {table}" for table in _TABLES),
        "SELECT 'ended', CAST(count(*) AS VARCHAR) FROM sessions WHERE ended_at IS NOT NULL",
        "SELECT 'finished', CAST(count(*) AS VARCHAR) FROM runs WHERE finished_at IS NOT NULL",
        "SELECT 'states', CAST(bit_xor(hash(id, state, labels)) AS VARCHAR) FROM sessions",
    ]
)


def _fingerprint(client: Client) -> dict[str, str | None]:
    """Row counts of every table, and a hash of the sessions' states and labels: what a
    4xx must leave alone. Read by the server's own cursor: SQL answers from a snapshot
    that may be seconds old."""
    rows = client.app.state.store.reader().execute(_FINGERPRINT).fetchall()
    found: dict[str, str | None] = {str(name): value for name, value in rows}
    assert len(found) == len(_TABLES) + 3
    return found


def _assert_refusal(answer: httpx.Response) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    detail = answer.json()["detail"]
    assert isinstance(detail, str)
    assert detail


def _post_json(client: Client, path: str, body: bytes) -> httpx.Response:
    answer: httpx.Response = client.post(
        path, content=body, headers={"content-type": "application/json"}
    )
    return answer


def _post_ingest(client: Client, body: bytes) -> httpx.Response:
    return _post_json(client, "/api/ingest", body)


def _post_to_a_new_session(
    client: Client, endpoint: str, body: bytes
) -> tuple[httpx.Response, str, dict[str, str | None]]:
    """Post ``body`` to a seed ``endpoint`` (``/{sid}/state``, ...; ``""`` creates a
    session) of a new session: the answer, the session, and the store before."""
    sid: str = client.post("/api/sessions").json()["session_id"]
    before = _fingerprint(client)
    return _post_json(client, "/api/sessions" + endpoint.format(sid=sid), body), sid, before


def _new_session(client: Client) -> RecordMaker:
    maker = RecordMaker()
    assert _post_ingest(client, batch(maker.start())).status_code == 200
    return maker


# -- raw JSON text: tokens JSON does not have, spliced in after encoding --------------------


class Raw:
    """A value written into the body as raw text (``NaN``, ``1e999``, ``01``...)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text!r})"


_RAW_MARK = re.compile(rb'"@@raw(\d+)@@"')


def _encode(value: object) -> bytes:
    """JSON, with every `Raw` written as its text, unescaped."""
    raws: list[bytes] = []

    def hook(obj: object) -> object:
        if isinstance(obj, Raw):
            raws.append(obj.text.encode())
            return f"@@raw{len(raws) - 1}@@"
        raise TypeError(f"cannot encode {obj!r}")

    return _RAW_MARK.sub(lambda m: raws[int(m.group(1))], msgspec.json.encode(value, enc_hook=hook))


_RAW_TOKENS = (
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1E400",
    "123456789012345678901234567890",
    "-123456789012345678901234567890",
    "-0",
    "0.0e0",
    "01",
    "+1",
    ".5",
    "0x10",
    "nul",
    "True",
    "[1,]",
    '{"a":1,}',
    '"\\ud800"',
    '"\\u0000"',
    '"unterminated',
)


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_NOT_UUIDS = (
    "",
    "x",
    "not-a-uuid",
    "0" * 31,
    "0" * 32,
    "g" * 32,
    "00000000-0000-0000-0000-00000000000g",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-000000000000 ",
    " 00000000-0000-0000-0000-000000000000",
    "00000000-0000-0000-0000-000000000000\x00",
    "-" * 36,
    "0" * 37,
)

_hostile_values: st.SearchStrategy[Any] = st.one_of(
    json_values,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(
        [
            -1,
            0,
            2**31,
            2**53 + 1,
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
            -(2**63),
            -(2**63) - 1,
            1e308,
            -1e308,
            5e-324,
            32503680000.0,
            32503680000.5,
            1e12,
            1e12 + 1,
            True,
            False,
        ]
    ),
    st.sampled_from(_NOT_UUIDS),
    st.sampled_from([*wire.OUTCOMES, "session_start", "end", "state", "event", "metric"]),
    st.sampled_from(_RAW_TOKENS).map(Raw),
    st.integers(min_value=1, max_value=120).map(_nested),
    st.text(max_size=50),
    st.lists(st.text(max_size=5), max_size=60),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=5),
)

_FIELDS = sorted(
    {
        field
        for cls in (
            wire.SessionStart,
            wire.StateUpdate,
            wire.Event,
            wire.Metric,
            wire.Heartbeat,
            wire.TestStart,
            wire.TestResult,
            wire.RunStart,
            wire.RunFinish,
            wire.SessionEnd,
        )
        for field in cls.__struct_fields__
    }
    | {"kind", "unknown"}
)

_mutations = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40),
        st.one_of(
            st.tuples(st.just("drop"), st.sampled_from(_FIELDS), st.none()),
            st.tuples(st.just("set"), st.sampled_from(_FIELDS), _hostile_values),
            st.tuples(st.just("replace"), st.just(""), _hostile_values),
        ),
    ),
    min_size=1,
    max_size=3,
)


def _base_records(maker: RecordMaker) -> list[Any]:
    """One record of every kind, valid, for a session the batch itself starts."""
    records = [
        maker.start(name="n", product="p", labels={"k": "v"}, state={"a": {"b": 1}}),
        maker.make(wire.RunStart, project="p", workers=2),
        maker.make(wire.TestStart, nodeid="t.py::test_a"),
        maker.result("t.py::test_a", "failed", line=3, traceback="tb", rss_delta=10),
        maker.event("e", {"x": [1, 2]}),
        maker.make(wire.Metric, name="m", value=1.5, tags=["a"]),
        maker.make(wire.StateUpdate, state={"a": {"c": 2}}),
        maker.make(wire.Heartbeat, interval=1.0),
        maker.make(wire.RunFinish, exit_status=1, status="failed", counts={"failed": 1}),
        maker.make(wire.SessionEnd),
    ]
    return [msgspec.to_builtins(record) for record in records]


def _mutate(records: list[Any], mutations: list[tuple[int, tuple[str, str, Any]]]) -> None:
    for index, (action, field, value) in mutations:
        at = index % len(records)
        record = records[at]
        if action == "replace":
            records[at] = value
        elif isinstance(record, dict):
            if action == "drop":
                record.pop(field, None)
            else:
                record[field] = value


# -- 1. the batch decoder ------------------------------------------------------------------

_batchish: st.SearchStrategy[Any] = st.one_of(
    json_values,
    st.fixed_dictionaries({"records": json_values}),
    st.fixed_dictionaries(
        {
            "records": st.lists(
                st.builds(
                    lambda fields, kind: {**fields, "kind": kind},
                    json_objects,
                    st.sampled_from(
                        ["session_start", "state", "event", "metric", "heartbeat", "end", "x"]
                    ),
                ),
                max_size=4,
            )
        }
    ),
)


@_HYPOTHESIS
@given(value=_batchish)
def test_arbitrary_json_is_refused_with_a_reason_and_stores_nothing(
    app: Client, value: Any
) -> None:
    before = _fingerprint(app)
    answer = _post_ingest(app, json.dumps(value).encode())
    event(f"status {answer.status_code}")
    if answer.status_code == 200:
        # Only `{"records": []}` can pass: no generated string is a UUID.
        assert answer.json() == {"accepted": 0, "duplicates": 0}
    else:
        _assert_refusal(answer)
    assert _fingerprint(app) == before


def _check_readable(app: Client, sid: str, records: list[Any]) -> None:
    """After a 2xx, the session's events and metrics are there and its pages render."""
    answer = app.get(f"/api/sessions/{sid}")
    assert answer.status_code == 200, answer.text
    session = answer.json()
    events = [{"name": e["name"], "data": e["data"]} for e in session["events"]]
    metrics = [(m["name"], m["value"]) for m in session["metrics"]]
    for record in records:
        if parse_session_id(record["session_id"]) != sid:
            continue
        if record["kind"] == "event":
            assert {"name": record["name"], "data": record.get("data")} in events
        elif record["kind"] == "metric":
            assert (record["name"], float(record["value"])) in metrics
    for page in (f"/sessions/{sid}", f"/runs/{sid}", f"/api/runs/{sid}", f"/api/runs/{sid}/tests"):
        assert app.get(page).status_code < 500, page


@_HYPOTHESIS
@pytest.mark.slow  # 3-11 s here: out of the fast subset
@given(
    keep=st.sets(st.integers(min_value=1, max_value=9), max_size=9),
    mutations=_mutations,
)
def test_mutated_batches_are_a_4xx_that_stores_nothing_or_a_2xx_that_reads_back(
    app: Client, keep: set[int], mutations: list[tuple[int, tuple[str, str, Any]]]
) -> None:
    maker = RecordMaker()
    base = _base_records(maker)
    records: list[Any] = [base[0], *(base[i] for i in sorted(keep))]
    _mutate(records, mutations)
    body = _encode({"records": records})
    before = _fingerprint(app)
    answer = _post_ingest(app, body)
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        _assert_refusal(answer)
        assert _fingerprint(app) == before
        return
    assert answer.status_code == 200
    ack = answer.json()
    sent: list[Any] = json.loads(body)["records"]
    assert ack["accepted"] + ack["duplicates"] == len(sent)
    event(f"accepted {ack['accepted']}, duplicates {ack['duplicates']}")
    if ack["duplicates"] == 0 and any(
        r["kind"] == "session_start" and parse_session_id(r["session_id"]) == maker.session_id
        for r in sent
    ):
        _check_readable(app, maker.session_id, sent)


_INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\xc3\x28",
    b"\xc0\xaf",  # overlong "/"
    b"\xed\xa0\x80",  # a surrogate, encoded
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xe2\x82",  # truncated
    b"\x80",
)


_NEVER_STARTED = "5ca1ab1e-0000-4000-8000-00000000dead"


@st.composite
def _spliced_batches(draw: st.DrawFn) -> bytes:
    """A valid batch for a session nobody started, with bytes spliced in or cut out."""
    maker = RecordMaker(_NEVER_STARTED)
    body = batch(  # the same bytes every time: hypothesis draws positions in them
        maker.event("e", {"x": 1}, timestamp=1.0),
        maker.result("t.py::test_a", "failed", traceback="tb", timestamp=1.0),
        maker.make(wire.Metric, name="m", value=1.0, timestamp=1.0),
    )
    at = draw(st.integers(min_value=0, max_value=len(body)))
    cut = draw(st.integers(min_value=0, max_value=8))
    noise = draw(st.sampled_from(_INVALID_UTF8) | st.binary(max_size=8))
    return body[:at] + noise + body[at + cut :]


@_HYPOTHESIS
@given(body=st.binary(max_size=300) | _spliced_batches())
def test_arbitrary_bytes_are_a_4xx_and_store_nothing(app: Client, body: bytes) -> None:
    before = _fingerprint(app)
    answer = _post_ingest(app, body)
    event(f"status {answer.status_code}")
    # A spliced batch that still parses names a session nobody started: 404.
    assert answer.status_code in (400, 404), (answer.status_code, answer.text)
    _assert_refusal(answer)
    assert _fingerprint(app) == before


def test_raw_non_json_numbers_in_a_batch_are_400(app: Client) -> None:
    maker = _new_session(app)
    before = _fingerprint(app)
    for token in ("NaN", "-NaN", "Infinity", "-Infinity"):
        for record, field, value in (
            (maker.make(wire.Metric, name="m", value=1.0), "value", Raw(token)),
            (maker.event("e"), "data", [Raw(token)]),
            (maker.make(wire.StateUpdate, state={}), "state", {"x": Raw(token)}),
            (maker.result("t.py::t"), "line", Raw(token)),
            (maker.make(wire.Heartbeat), "interval", Raw(token)),
        ):
            fields = msgspec.to_builtins(record)
            fields[field] = value
            body = _encode({"records": [fields]})
            assert token.encode() in body
            assert b"@@raw" not in body
            answer = _post_ingest(app, body)
            assert answer.status_code == 400, (token, answer.text)
            assert "malformed" in answer.json()["detail"]
    assert _fingerprint(app) == before


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("test_result", "line", 2**31),
        ("test_result", "line", -(2**63)),
        ("test_result", "rss_delta", 2**63),
        ("run_start", "workers", 2**31),
        ("run_finish", "exit_status", 2**40),
    ],
)
def test_integers_past_their_column_are_400_not_503(
    app: Client, kind: str, field: str, value: int
) -> None:
    maker = _new_session(app)
    if kind == "run_finish":  # a finish updates the session's run: there must be one
        run = batch(maker.make(wire.RunStart, project="p"))
        assert _post_ingest(app, run).status_code == 200
    base = {"session_id": maker.session_id, "timestamp": time.time(), "kind": kind}
    extra: dict[str, dict[str, Any]] = {
        "test_result": {"nodeid": f"t.py::test_{uuid.uuid4().hex}", "outcome": "passed"},
        "run_start": {},
        "run_finish": {"exit_status": 0, "status": "passed"},
    }
    alongside = {**base, "kind": "event", "seq": 100, "name": "alongside"}
    record = {**base, **extra[kind], "seq": 101, field: value}
    before = _fingerprint(app)
    answer = _post_ingest(app, _encode({"records": [alongside, record]}))
    assert _fingerprint(app) == before
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"]


def test_duplicate_keys_under_an_escaped_free_form_key_are_400(app: Client) -> None:
    maker = _new_session(app)
    record = _encode({"records": [msgspec.to_builtins(maker.event("e"))]})
    body = record.replace(b'"name":"e"', b'"name":"e","d\\u0061ta":{"admin":false,"admin":true}')
    assert b'"data"' not in body
    answer = _post_ingest(app, body)
    events = app.get(f"/api/sessions/{maker.session_id}").json()["events"]
    assert events == []
    assert answer.status_code == 400
    assert "twice in one object" in answer.json()["detail"]


@pytest.mark.parametrize("columnar", [False, True], ids=["rows", "columns"])
def test_a_duplicate_key_in_a_typed_batch_is_400(app: Client, columnar: bool) -> None:
    # No free-form field anywhere: a typed field given twice is as ambiguous.
    maker = _new_session(app)
    result = maker.result("t.py::test_twice", "passed")
    body = wire.encode_columnar([result]) if columnar else wire.encode(wire.Batch([result]))
    assert b'"data"' not in body
    assert b'"state"' not in body
    twice = body.replace(b'"outcome":["passed"]', b'"outcome":["failed"],"outcome":["passed"]')
    if not columnar:
        twice = body.replace(b'"outcome":"passed"', b'"outcome":"failed","outcome":"passed"')
    assert twice != body
    before = _fingerprint(app)
    answer = app.post(
        "/api/ingest/v2" if columnar else "/api/ingest",
        content=twice,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400, answer.text
    assert "twice in one object" in answer.json()["detail"]
    assert 'key "outcome"' in answer.json()["detail"]
    assert _fingerprint(app) == before


@pytest.mark.timeout(60)
def test_a_long_run_of_escapes_is_read_in_linear_time(app: Client) -> None:
    # json.dumps writes non-ASCII text as \\u escapes: ordinary input, not an attack.
    # A backtracking key pattern took 16 s for 120 KB of them, blocking the event loop.
    maker = _new_session(app)
    result = maker.result("t.py::test_accents", "failed", stdout="PLACEHOLDER")
    body = _encode({"records": [msgspec.to_builtins(result)]})
    assert b'"data"' not in body  # no free-form field: the body is checked all the same
    body = body.replace(b"PLACEHOLDER", b"\\u00e9" * 200_000)
    answer = _post_ingest(app, body)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["accepted"] == 1


def test_a_body_big_enough_to_be_read_off_the_event_loop_is_judged_the_same(
    app: Client,
) -> None:
    maker = _new_session(app)
    records = [
        msgspec.to_builtins(maker.result(f"t.py::test_big_{i}", "passed", stdout="o" * 1000))
        for i in range(5000)
    ]
    body = _encode({"records": records})
    assert len(body) > OFF_LOOP_BYTES
    answer = _post_ingest(app, body)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["accepted"] == 5000
    before = _fingerprint(app)
    assert body.endswith(b"}]}")
    broken = body[:-3] + b',"state":{"a":1,"a":2}}]}'  # a duplicate key at the very end
    refused = _post_ingest(app, broken)
    assert refused.status_code == 400, refused.text[:300]
    assert "twice in one object" in refused.json()["detail"]
    assert _fingerprint(app) == before
    truncated = _post_ingest(app, body[: len(body) // 2])
    assert truncated.status_code == 400
    assert "malformed" in truncated.json()["detail"]


# -- 5. the seed endpoints -------------------------------------------------------------------

_seed_bodies: st.SearchStrategy[Any] = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": _hostile_values,
            "value": _hostile_values,
            "tags": _hostile_values,
            "data": _hostile_values,
            "interval": _hostile_values,
            "labels": _hostile_values,
            "state": _hostile_values,
            "id": _hostile_values,
            "heartbeat_interval": _hostile_values,
        },
    ),
)


@_HYPOTHESIS
@given(
    endpoint=st.sampled_from(
        ["", "/{sid}/state", "/{sid}/events", "/{sid}/metrics", "/{sid}/heartbeat"]
    ),
    value=_seed_bodies,
)
def test_seed_endpoints_never_answer_5xx_and_a_4xx_stores_nothing(
    app: Client, endpoint: str, value: Any
) -> None:
    answer, sid, before = _post_to_a_new_session(app, endpoint, _encode(value))
    event(f"{endpoint or '/'}: status {answer.status_code}")
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        _assert_refusal(answer)
        assert _fingerprint(app) == before
    else:
        assert answer.status_code == 200
        assert app.get(f"/sessions/{sid}").status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/{sid}/state", b'{"k\xff": 1}'),
        ("/{sid}/state", b'{"k": "\xc3\x28"}'),
        ("/{sid}/state", b'{"k": {"deep": ["\xed\xa0\x80"]}}'),
        ("/{sid}/metrics", b'{"name": "m\xff", "value": 1}'),
        ("/{sid}/metrics", b'{"name": "m", "value": 1, "tags": ["\xc0\xaf"]}'),
        ("/{sid}/heartbeat", b'{"interval": 1, "x": "\xe2\x82"}'),
        ("/{sid}/events", b'{"name": "e", "data": {"k": "\xf4\x90\x80\x80"}}'),
        ("", b'{"name": "\xff"}'),
        ("", b'{"labels": {"k": "\x80"}}'),
    ],
)
def test_invalid_utf8_on_the_seed_endpoints_is_400_and_stores_nothing(
    app: Client, path: str, body: bytes
) -> None:
    answer, _, before = _post_to_a_new_session(app, path, body)
    assert answer.status_code == 400, answer.text
    assert "not valid UTF-8" in answer.json()["detail"]
    assert _fingerprint(app) == before


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/{sid}/metrics", '{"name": "m", "value": 1, "value": 2}'),
        ("/{sid}/metrics", '{"name": "a", "name": "b", "value": 1}'),
        ("/{sid}/metrics", '{"name": "m", "value": 1, "tags": {"k": "a", "k": "b"}}'),
        ("/{sid}/heartbeat", '{"interval": 1, "interval": 1000}'),
        ("/{sid}/state", '{"a": [{"k": 1, "k": 1}]}'),
        ("/{sid}/events", '{"name": "e", "data": [[{"k": 1, "k": 2}]]}'),
        ("", '{"labels": {"k": "a", "k": "b"}}'),
        ("", '{"name": "a", "name": "b"}'),
        ("", '{"state": {"admin": false, "admin": true}}'),
    ],
)
def test_duplicate_keys_on_the_seed_endpoints_are_400_and_store_nothing(
    app: Client, path: str, text: str
) -> None:
    answer, _, before = _post_to_a_new_session(app, path, text.encode())
    assert answer.status_code == 400, answer.text
    assert "twice in one object" in answer.json()["detail"]
    assert _fingerprint(app) == before


def test_a_chosen_id_given_twice_is_400_and_creates_neither(app: Client) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    answer = _post_json(app, "/api/sessions", f'{{"id": "{first}", "id": "{second}"}}'.encode())
    assert answer.status_code == 400
    assert app.get(f"/api/sessions/{first}").status_code == 404
    assert app.get(f"/api/sessions/{second}").status_code == 404


# -- 3. path traversal on /static ------------------------------------------------------------

_TRAVERSALS = (
    "/static/../pyproject.toml",
    "/static/../../pyproject.toml",
    "/static/../../../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/etc/passwd",
    "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%2E%2E/%2E%2E/pyproject.toml",
    "/static/.%2e/.%2e/pyproject.toml",
    "/static/..%2f..%2fpyproject.toml",
    "/static/..%2F..%2Fpyproject.toml",
    "/static/%2e%2e%2fdatacat_server/app.py",
    "/static/%2e%2e%2f%2e%2e%2fdatacat_server/app.py",
    "/static/vendor/../../__init__.py",
    "/static/vendor/../../_mount.py",
    "/static/vendor/%2e%2e/%2e%2e/_mount.py",
    "/static/%252e%252e/%252e%252e/pyproject.toml",
    "/static/%252e%252e%252f%252e%252e%252fpyproject.toml",
    "/static/..\\..\\pyproject.toml",
    "/static/..%5c..%5cpyproject.toml",
    "/static/vendor\\..\\..\\_mount.py",
    "/static//etc/passwd",
    "/static///etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%2F%2Fetc%2Fpasswd",
    "/static/file:///etc/passwd",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/pyproject.toml",
    "/static/..;/..;/pyproject.toml",
    "/static/~/.bashrc",
    "/static/vendor/../../../README.md",
)

# Text of files outside dashboard/static that a traversal would reach.
_SECRETS = (
    b"root:",
    b"[project]",
    b"[build-system]",
    b"from __future__",
    b"def create_app",
    b"DashboardPlugin",
    b"# DataCat",
)


def _assert_nothing_leaked(status: int | None, body: bytes) -> None:
    assert status in (None, 400, 404), (status, body[:300])
    for secret in _SECRETS:
        assert secret not in body, (secret, body[:300])


@pytest.mark.parametrize("path", _TRAVERSALS)
def test_static_traversal_in_process_is_404(app: Client, path: str) -> None:
    answer = app.get(path)
    _assert_nothing_leaked(answer.status_code, answer.content)


# Paths that make the static handler's stat() raise something other than
# FileNotFoundError (Litestar alone would answer 500): dashboard/_static.py.
_STATIC_ODD = [
    pytest.param("/static/%00", id="nul"),
    pytest.param("/static/app.css%00.txt", id="nul-suffix"),
    pytest.param("/static/" + "a" * 300, id="name-too-long"),
    pytest.param("/static/app.css/x", id="not-a-directory"),
    pytest.param("/static/vendor/README.md/%2e%2e/%2e%2e/app.css", id="file-as-dir"),
]


@pytest.mark.parametrize("path", _STATIC_ODD)
def test_odd_static_paths_are_4xx_in_process(app: Client, path: str) -> None:
    answer = app.get(path)
    _assert_nothing_leaked(answer.status_code, answer.content)


def test_a_static_404_does_not_disclose_the_install_path(app: Client) -> None:
    answer = app.get("/static/vendor")
    assert answer.status_code == 404
    assert str(STATIC) not in answer.text


def _raw(port: int, request: bytes, timeout: float = 10.0) -> tuple[int | None, bytes]:
    """Send bytes as they are; read until the server closes (or 2 MB, or the timeout).

    Returns the status (None: closed without an answer) and the whole answer."""
    chunks: list[bytes] = []
    received = 0
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before it read everything.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        while received < 2_000_000 and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except OSError:  # a timeout, or a reset after an early answer
                break
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
    answer = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return (int(match.group(1)) if match else None), answer


def _get(path: str, *headers: bytes) -> bytes:
    return (
        b"GET "
        + path.encode("latin-1")
        + b" HTTP/1.1\r\nHost: x\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"Connection: close\r\n\r\n"
    )


def _assert_healthy(server: ServerProcess) -> None:
    assert server.proc is not None
    assert server.proc.poll() is None, server.log()
    status, answer = _raw(server.port, _get("/health"))
    assert status == 200, answer[:300]


@pytest.mark.e2e
def test_raw_static_paths_reach_the_handler_unnormalised(live: ServerProcess) -> None:
    """The control: a raw ``..`` that stays inside static/ is served, so the traversal
    tests below do reach the file system code with their ``..`` intact."""
    status, answer = _raw(live.port, _get("/static/vendor/../app.css"))
    assert status == 200
    assert b"DataCat dashboard" in answer


@pytest.mark.e2e
@pytest.mark.parametrize("path", [*_TRAVERSALS, "/../../../etc/passwd", "//etc/passwd"])
def test_static_traversal_over_a_raw_socket_is_404(live: ServerProcess, path: str) -> None:
    status, answer = _raw(live.port, _get(path))
    _assert_nothing_leaked(status, answer)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "path",
    [
        "/static/\x00",
        "/static/app.css\x00.txt",
        "/static/%00/../../pyproject.toml",
        *_STATIC_ODD,
    ],
)
def test_odd_static_paths_over_a_raw_socket_are_4xx(live: ServerProcess, path: str) -> None:
    status, answer = _raw(live.port, _get(path))
    _assert_nothing_leaked(status, answer)
    _assert_healthy(live)


# -- 4. oversized headers and URLs ---------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(_get("/health", b"X-Big: " + b"a" * 100_000), id="one-100KB-header"),
        pytest.param(
            _get("/health", *(b"X-H%d: %s" % (i, b"v" * 200) for i in range(500))),
            id="500-headers-of-200-bytes",
        ),
        pytest.param(_get("/", b"Cookie: " + b"a=b; " * 20_000), id="100KB-cookie"),
        pytest.param(
            _get("/api/sessions", b"Authorization: Bearer " + b"t" * 100_000),
            id="100KB-bearer-token",
        ),
        pytest.param(_get("/static/" + "a" * 100_000), id="100KB-url"),
        pytest.param(_get("/api/sessions/" + "a" * 100_000), id="100KB-url-api"),
        pytest.param(_get("/health?" + "a=1&" * 25_000), id="100KB-query"),
        pytest.param(_get("/" + "a/" * 50_000), id="100KB-of-segments"),
        pytest.param(_get("/health", b"X-Big: " + b"a" * 5_000_000), id="one-5MB-header"),
    ],
)
def test_a_request_head_over_64KB_is_431_and_the_server_keeps_serving(
    live: ServerProcess, request_bytes: bytes
) -> None:
    status, answer = _raw(live.port, request_bytes)
    assert status == 431, answer[:300]
    assert b"longer than 65536 bytes" in answer
    _assert_healthy(live)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(_get("/health", *(b"X-H%d: v" % i for i in range(500))), id="500-headers"),
        pytest.param(_get("/health", b"X-Big: " + b"a" * 60_000), id="one-60KB-header"),
        pytest.param(_get("/api/sessions/" + "a" * 60_000), id="60KB-url-api"),
        pytest.param(_get("/api/sessions?" + "limit=1&" * 7_000), id="60KB-repeated-param"),
    ],
)
def test_a_large_head_under_the_limit_is_answered(
    live: ServerProcess, request_bytes: bytes
) -> None:
    status, answer = _raw(live.port, request_bytes)
    assert status is not None, answer[:300]
    assert status < 500, answer[:300]
    assert status != 431
    _assert_healthy(live)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "request_bytes",
    [
        # the parser skips blank lines before a request line: they must not end the count
        pytest.param(
            b"\r\n\r\n" + _get("/health", b"X-Big: " + b"a" * 100_000), id="blank-lines-first"
        ),
        # trailers after a chunked body are buffered like headers
        pytest.param(
            b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\nX-Trailer: " + b"t" * 1_000_000 + b"\r\n\r\n",
            id="chunked-trailer",
        ),
        # a big head pipelined behind a small request
        pytest.param(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + _get("/health", b"X-Big: " + b"a" * 150_000),
            id="pipelined",
        ),
    ],
)
def test_no_way_around_the_head_limit(live: ServerProcess, request_bytes: bytes) -> None:
    _, answer = _raw(live.port, request_bytes)
    assert b"HTTP/1.1 431 " in answer, answer[:300]
    assert answer.count(b"HTTP/1.1 200 ") <= 1  # at most the small pipelined request
    _assert_healthy(live)


@pytest.mark.e2e
def test_a_head_dripped_in_small_pieces_is_counted_whole(live: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        refused = False
        for _ in range(100):  # up to 100 x 1 KB of one header, a piece at a time
            try:
                sock.sendall(b"X-Drip-%d: %s\r\n" % (_, b"d" * 1000))
            except OSError:  # the server answered and closed
                refused = True
                break
            time.sleep(0.002)
        answer = sock.recv(65536) if not refused else b""
        with contextlib.suppress(OSError):
            answer = answer or sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    _assert_healthy(live)


@pytest.mark.e2e
def test_a_big_body_behind_a_small_head_is_not_mistaken_for_a_big_head(
    live: ServerProcess,
) -> None:
    # One write holding the head and 1 MB of body: only the head counts.
    body = b'{"records": []}' + b" " * 1_000_000
    request = (
        b"POST /api/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    ) + body
    status, answer = _raw(live.port, request)
    assert status == 200, answer[:300]
    # and on a kept-alive connection, each request's head is counted afresh
    with httpx.Client(base_url=live.url, timeout=10) as client:
        for _ in range(30):
            answer_ = client.get("/health", headers={"X-Fill": "f" * 50_000})
            assert answer_.status_code == 200
