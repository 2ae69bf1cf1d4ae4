"""Retention: old data goes, recent data stays, and the file stops growing."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datacat_client import wire
from datacat_server.queries.sessions import get_session, list_sessions
from datacat_server.queries.window import default_project, projects
from datacat_server.store import Store
from datacat_server.store.retention import RetentionPolicy
from tests.server.records import RecordMaker

DAY = 86_400.0


class Clock:
    """The server's clock, set by the test: retention goes by when data arrived."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    opened = Store(tmp_path / "retention.duckdb", clock=clock)
    try:
        yield opened
    finally:
        opened.close()


def _session(store: Store, product: str, age_days: float, results: int = 3) -> str:
    """A session that arrived ``age_days`` ago (by the server's clock, and its own)."""
    maker = RecordMaker()
    real_now = time.time()
    ts = real_now - age_days * DAY
    store.clock.now = ts  # type: ignore[attr-defined]
    records: list[Any] = [
        maker.start(product=product, timestamp=ts, state={"a": 1}),
        maker.make(wire.RunStart, project=product, timestamp=ts),
        maker.event("e", timestamp=ts),
        maker.make(wire.Metric, name="m", value=1.0, timestamp=ts),
        maker.make(wire.StateUpdate, state={"b": 2}, timestamp=ts),
    ]
    records += [
        # Messages that do not compress away, so that the file grows with the data.
        maker.result(
            f"t.py::test_{i}",
            "failed",
            exc_type="E",
            exc_message=os.urandom(256).hex(),
            timestamp=ts,
        )
        for i in range(results)
    ]
    store.write_sync(records)
    store.clock.now = real_now  # type: ignore[attr-defined]
    return maker.session_id


def test_policy_parsing() -> None:
    assert RetentionPolicy.parse("30") == RetentionPolicy(30.0, {})
    assert RetentionPolicy.parse("30, demo=7,shop=90") == RetentionPolicy(
        30.0, {"demo": 7.0, "shop": 90.0}
    )
    assert RetentionPolicy.parse("") == RetentionPolicy()
    assert not RetentionPolicy.parse("").active
    for bad in ("soon", "shop=-1", "0", "1e20"):
        with pytest.raises(ValueError, match="retention"):
            RetentionPolicy.parse(bad)


def test_old_sessions_go_with_everything_they_logged(store: Store) -> None:
    old = _session(store, "shop", age_days=40)
    recent = _session(store, "shop", age_days=5)
    demo_old = _session(store, "demo", age_days=10)
    demo_new = _session(store, "demo", age_days=1)
    result = store.apply_retention(RetentionPolicy(days=30, projects={"demo": 7}))
    assert result.sessions == 2
    assert result.rows["results"] == 6
    assert result.rows["result_details"] == 6
    assert result.rows["event_log"] == 2
    assert result.rows["runs"] == 2
    cur = store.reader()
    assert get_session(cur, old) is None
    assert get_session(cur, demo_old) is None
    assert {s.id for s in list_sessions(cur)} == {recent, demo_new}
    for table in ("state_updates", "event_log", "metric_log", "results", "result_details", "runs"):
        leftovers = cur.execute(
            f"SELECT count(*) FROM {table} WHERE sid NOT IN (SELECT sid FROM sessions)"
        ).fetchone()
        assert leftovers == (0,), table
    # The writer forgot the deleted sessions: a late record for one is refused...
    late = RecordMaker(old, start=10**9)
    with pytest.raises(Exception, match="unknown session"):
        store.write_sync([late.event("late")])
    # ... and a kept session still takes records, without duplicating its old ones.
    again = RecordMaker(recent, start=10**9)
    assert store.write_sync([again.event("more")]).accepted == 1


def test_nothing_to_delete_changes_nothing(store: Store) -> None:
    sid = _session(store, "shop", age_days=1)
    assert store.apply_retention(RetentionPolicy(days=30)).sessions == 0
    assert get_session(store.reader(), sid) is not None


def _fill_days(path: Path, days: int, policy: RetentionPolicy | None) -> list[int]:
    """A steady load: four runs a day; after each day, retention (if any). File sizes."""
    store = Store(path, clock=Clock())
    try:
        start = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=30)
        sizes = []
        for day in range(days):
            for _ in range(4):
                _session(store, "shop", age_days=30 - day, results=2000)
            if policy is not None:
                store.apply_retention(policy, now=start + dt.timedelta(days=day))
            else:
                store.writer.maintain(
                    lambda cur: cur.execute("CHECKPOINT"), transaction=False
                ).result()
            sizes.append(path.stat().st_size)
        return sizes
    finally:
        store.close()


@pytest.mark.slow  # 3-11 s here: out of the fast subset
def test_the_file_stops_growing_under_a_steady_load_with_retention(tmp_path: Path) -> None:
    kept = _fill_days(tmp_path / "kept.duckdb", 14, RetentionPolicy(days=3))
    everything = _fill_days(tmp_path / "all.duckdb", 14, None)
    # Without retention the file grows with the data; with it, freed blocks are reused
    # and the file stops growing once retention deletes as much as arrives.
    assert everything[-1] > 1.5 * everything[4], everything
    assert max(kept[8:]) <= max(kept[3:8]) * 1.15, kept
    assert kept[-1] < 0.8 * everything[-1], (kept, everything)


def test_a_clients_clock_neither_hides_nor_expires_a_session(store: Store) -> None:
    year_3000, year_1970 = 32_503_680_000.0 - 1, 1.0
    ahead, behind, normal = RecordMaker(), RecordMaker(), RecordMaker()
    for maker, project, ts in ((ahead, "ahead", year_3000), (behind, "behind", year_1970)):
        store.write_sync(
            [
                maker.start(product=project, timestamp=ts),
                maker.make(wire.RunStart, project=project, timestamp=ts),
            ]
        )
        store.clock.now += 1  # type: ignore[attr-defined]
    store.write_sync([normal.start(product="normal"), normal.make(wire.RunStart, project="normal")])
    # A session dated 1970 is not deleted at once; the one that arrived last is the
    # "latest" project, whatever the other clients' clocks said.
    assert store.apply_retention(RetentionPolicy(days=30)).sessions == 0
    cur = store.reader()
    assert default_project(cur) == "normal"
    assert next(p for p, _ in projects(cur)) == "normal"
    # A month later (by the server's clock) all three go, the one dated year 3000 too.
    store.clock.now += 31 * DAY  # type: ignore[attr-defined]
    assert store.apply_retention(RetentionPolicy(days=30)).sessions == 3
