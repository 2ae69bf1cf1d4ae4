"""Quarantine: by hand with the quarantine scope, automatically by the flaky rule for a
project that asks, released after passes in a row; every change logged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.app import create_app
from datacat_server.auth import load_tokens
from datacat_server.settings import Settings
from datacat_server.store import Store
from datacat_server.store import quarantine as q
from tests.server.records import RecordMaker

Client = TestClient  # type: ignore[type-arg]

INGEST = "ingest-token-0123456789abcdef"
READ = "read-token-0123456789abcdef00"
TRIAGE = "triage-token-0123456789abcdef"
JSON = {"content-type": "application/json"}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def guarded(db_path: Path, tmp_path: Path) -> Iterator[Client]:
    tokens_file = tmp_path / "tokens"
    tokens_file.write_text(f"ingest {INGEST} ci\nread {READ} dashboard\nquarantine {TRIAGE} ana\n")
    tokens = load_tokens({"DATACAT_TOKENS_FILE": str(tokens_file)})
    app = create_app(Settings(db_path=db_path, quarantine_interval=0.2), tokens=tokens)
    with TestClient(app=app) as client:
        yield client


def test_by_hand_with_the_quarantine_scope_and_logged(guarded: Client) -> None:
    change = {"project": "shop", "nodeid": "t.py::test_a", "reason": "flaky on CI, #123"}
    assert guarded.post("/api/quarantine", json=change, headers=_bearer(READ)).status_code == 403
    assert guarded.post("/api/quarantine", json=change, headers=_bearer(INGEST)).status_code == 403
    added = guarded.post("/api/quarantine", json=change, headers=_bearer(TRIAGE))
    assert added.json() == {"changed": True}
    again = guarded.post("/api/quarantine", json=change, headers=_bearer(TRIAGE))
    assert again.json() == {"changed": False}
    # Read by the dashboard (read) and by the pytest plugin (ingest).
    for token in (READ, INGEST):
        listed = guarded.get("/api/quarantine?project=shop", headers=_bearer(token)).json()
        assert [(e["nodeid"], e["mode"], e["reason"], e["who"]) for e in listed] == [
            ("t.py::test_a", "manual", "flaky on CI, #123", "ana")
        ]
    gone = {**change, "reason": "fixed in #124"}
    assert guarded.post("/api/quarantine/remove", json=gone, headers=_bearer(TRIAGE)).json() == {
        "changed": True
    }
    assert guarded.get("/api/quarantine?project=shop", headers=_bearer(READ)).json() == []
    log = guarded.get("/api/quarantine/log?project=shop", headers=_bearer(READ)).json()
    assert [(c["action"], c["reason"], c["who"]) for c in log] == [
        ("remove", "fixed in #124", "ana"),
        ("add", "flaky on CI, #123", "ana"),
    ]
    assert all(c["when"] for c in log)


def _run(store: Store, outcomes: dict[str, str], commit: str) -> None:
    maker = RecordMaker()
    records: list[Any] = [
        maker.start(product="shop"),
        maker.make(wire.RunStart, project="shop", branch="main", commit=commit),
    ]
    records += [maker.result(nodeid, outcome) for nodeid, outcome in outcomes.items()]
    store.write_sync(records)


def _keep_up(store: Store) -> list[str]:
    flaky = q.flaky_of_auto_projects(store.reader())
    result: list[str] = store.writer.maintain(lambda cur: q.keep_up(cur, flaky=flaky)).result()
    return result


def test_the_flaky_rule_quarantines_and_passes_in_a_row_release(store: Store) -> None:
    for i, outcome in enumerate(["passed", "failed", "passed", "failed"]):
        _run(
            store, {"t.py::flaky": outcome, "t.py::broken": "failed", "t.py::ok": "passed"}, f"c{i}"
        )
    assert _keep_up(store) == []  # the project has not asked for it
    store.writer.maintain(
        lambda cur: q.set_policy(cur, q.Policy("shop", auto=True, release_after=3))
    ).result()
    assert _keep_up(store) == ["shop: t.py::flaky quarantined (flaky)"]
    entries = q.entries(store.reader(), "shop")
    assert [(e.nodeid, e.mode, e.who) for e in entries] == [("t.py::flaky", "auto", q.AUTOMATIC)]
    for i in range(2):
        _run(store, {"t.py::flaky": "passed"}, f"d{i}")
    assert _keep_up(store) == []  # two passes in a row: not yet
    _run(store, {"t.py::flaky": "passed"}, "d2")
    released = _keep_up(store)
    assert released == ["shop: t.py::flaky released (passed 3 times in a row (releases after 3))"]
    assert q.entries(store.reader(), "shop") == []
    # Its old failures are still in the window, so the rule still flags it; released, it
    # goes back only when it fails again.
    assert _keep_up(store) == []
    _run(store, {"t.py::flaky": "failed"}, "d3")
    assert _keep_up(store) == ["shop: t.py::flaky quarantined (flaky)"]
    assert [c.action for c in q.history(store.reader(), "shop")] == ["add", "remove", "add"]


def test_a_manual_quarantine_is_not_released_automatically(store: Store) -> None:
    store.writer.maintain(lambda cur: q.add(cur, "shop", "t.py::x", "by hand", "ana")).result()
    store.writer.maintain(
        lambda cur: q.set_policy(cur, q.Policy("shop", auto=True, release_after=1))
    ).result()
    for i in range(3):
        _run(store, {"t.py::x": "passed"}, f"c{i}")
    _keep_up(store)
    assert [e.nodeid for e in q.entries(store.reader(), "shop")] == ["t.py::x"]


def test_the_server_keeps_the_automatic_quarantine_by_itself(guarded: Client) -> None:
    store: Store = guarded.app.state.store
    for i, outcome in enumerate(["passed", "failed", "passed", "failed"]):
        _run(store, {"t.py::flaky": outcome}, f"c{i}")
    policy = {"project": "shop", "auto": True, "release_after": 30}
    assert (
        guarded.put("/api/quarantine/policy", json=policy, headers=_bearer(TRIAGE)).status_code
        == 200
    )
    deadline = time.monotonic() + 10
    listed: list[Any] = []
    while time.monotonic() < deadline and not listed:
        listed = guarded.get("/api/quarantine?project=shop", headers=_bearer(READ)).json()
        time.sleep(0.1)
    assert [e["nodeid"] for e in listed] == ["t.py::flaky"]
