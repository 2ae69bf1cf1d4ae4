"""Two runs compared, on runs whose every difference is known."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.queries.base import base_run
from datacat_server.queries.compare import compare_runs
from datacat_server.queries.runs import get_run
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.server.history import write_runs


def passed(nodeid: str, call: float = 0.05, **more: Any) -> dict[str, Any]:
    return {"nodeid": nodeid, "outcome": "passed", "call_duration": call, **more}


def failed(nodeid: str, message: str, **more: Any) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "outcome": more.pop("outcome", "failed"),
        "exc_type": "AssertionError",
        "exc_message": message,
        "call_duration": 0.05,
        **more,
    }


BASE = [
    passed("t.py::test_keeps_passing"),
    passed("t.py::test_breaks"),
    failed("t.py::test_fixed", "was broken"),
    failed("t.py::test_still", "old reason"),
    passed("t.py::test_errors_now"),
    passed("t.py::test_removed"),
    passed("t.py::test_slower", 0.1),
    passed("t.py::test_faster", 0.3),
    passed("t.py::test_slower_by_little", 0.1),
    passed("t.py::test_tiny_slower", 0.001),
    passed("t.py::test_setup_slower", 0.1, setup_duration=0.01),
    passed("t.py::test_rerun_passes"),
    passed("t.py::test_rerun_fails"),
    # failed, rerun, failed again: failing
    failed("t.py::test_rerun_was_failing", "first", final=False),
    failed("t.py::test_rerun_was_failing", "second", attempt=1),
    {"nodeid": "t.py::test_skipped", "outcome": "skipped"},
    {"nodeid": "t.py::test_unskipped", "outcome": "skipped"},
    # subtests are tests of their own, keyed by node id and subtest
    passed("t.py::test_sub", subtest="[a]"),
    failed("t.py::test_sub", "b was wrong", subtest="[b]"),
    passed("t.py::test_sub", subtest="[d]"),
    passed("t.py::test_sub"),
]
RUN = [
    passed("t.py::test_keeps_passing"),
    failed("t.py::test_breaks", "boom"),
    passed("t.py::test_fixed"),
    failed("t.py::test_still", "new reason"),
    failed("t.py::test_errors_now", "in teardown", outcome="error"),
    passed("t.py::test_new"),
    failed("t.py::test_new_failing", "new and broken"),
    passed("t.py::test_slower", 0.25),
    passed("t.py::test_faster", 0.1),
    passed("t.py::test_slower_by_little", 0.19),
    passed("t.py::test_tiny_slower", 0.005),
    passed("t.py::test_setup_slower", 0.1, setup_duration=1.0),
    # failed, then passed on a rerun: its final attempt passed
    failed("t.py::test_rerun_passes", "flake", final=False),
    passed("t.py::test_rerun_passes", attempt=1),
    failed("t.py::test_rerun_fails", "flake", final=False),
    failed("t.py::test_rerun_fails", "again", attempt=1),
    passed("t.py::test_rerun_was_failing"),
    {"nodeid": "t.py::test_skipped", "outcome": "skipped"},
    passed("t.py::test_unskipped"),
    failed("t.py::test_sub", "a broke", subtest="[a]"),
    passed("t.py::test_sub", subtest="[b]"),
    passed("t.py::test_sub", subtest="[c]"),
    passed("t.py::test_sub"),
]


@pytest.fixture
def runs(store: Store) -> list[str]:
    return write_runs(
        store,
        [(BASE, {"project": "cmp", "duration": 10.0}), (RUN, {"project": "cmp", "duration": 12.5})],
    )


def _names(changes: list[Any]) -> list[tuple[str, str | None]]:
    return [(c.nodeid, c.subtest) for c in changes]


def test_every_category_holds_exactly_its_tests(store: Store, runs: list[str]) -> None:
    c = compare_runs(store.reader(), runs[1], runs[0])
    assert c is not None
    assert (c.run.id, c.base.id) == (runs[1], runs[0])
    assert _names(c.newly_failing) == [
        ("t.py::test_breaks", None),
        ("t.py::test_errors_now", None),
        ("t.py::test_rerun_fails", None),
        ("t.py::test_sub", "[a]"),
    ]
    assert _names(c.fixed) == [
        ("t.py::test_fixed", None),
        ("t.py::test_rerun_was_failing", None),
        ("t.py::test_sub", "[b]"),
    ]
    assert _names(c.still_failing) == [("t.py::test_still", None)]
    assert _names(c.new_tests) == [
        ("t.py::test_new", None),
        ("t.py::test_new_failing", None),
        ("t.py::test_sub", "[c]"),
    ]
    assert _names(c.removed_tests) == [("t.py::test_removed", None), ("t.py::test_sub", "[d]")]
    # call times only: 0.1 -> 0.19 is not 2x, 1 ms -> 5 ms is under min_seconds, a
    # slower setup does not count
    assert _names(c.slower) == [("t.py::test_slower", None)]
    assert _names(c.faster) == [("t.py::test_faster", None)]
    assert c.sizes == {
        "new_tests": 3,
        "removed_tests": 2,
        "still_failing": 1,
        "newly_failing": 4,
        "fixed": 3,
        "slower": 1,
        "faster": 1,
    }


def test_each_change_carries_outcomes_durations_and_the_message(
    store: Store, runs: list[str]
) -> None:
    c = compare_runs(store.reader(), runs[1], runs[0])
    assert c is not None
    breaks, errors, rerun, sub = c.newly_failing
    assert (breaks.base_outcome, breaks.outcome, breaks.message) == ("passed", "failed", "boom")
    assert (errors.outcome, errors.message) == ("error", "in teardown")
    assert rerun.message == "again"  # the final attempt's
    assert sub.message == "a broke"
    fixed, was_failing, _ = c.fixed
    assert (fixed.base_outcome, fixed.outcome, fixed.message) == ("failed", "passed", "was broken")
    assert was_failing.message == "second"
    assert c.still_failing[0].message == "new reason"
    new, new_failing, _ = c.new_tests
    assert (new.base_outcome, new.outcome, new.base_duration, new.factor) == (
        None,
        "passed",
        None,
        None,
    )
    assert new_failing.message == "new and broken"
    removed = c.removed_tests[0]
    assert (removed.base_outcome, removed.outcome, removed.duration) == ("passed", None, None)
    slower, faster = c.slower[0], c.faster[0]
    assert (slower.base_duration, slower.duration) == (0.1, 0.25)
    assert slower.factor == pytest.approx(2.5)
    assert faster.factor == pytest.approx(1 / 3)


def test_durations_and_counts_and_their_differences(store: Store, runs: list[str]) -> None:
    c = compare_runs(store.reader(), runs[1], runs[0])
    assert c is not None
    assert (c.base.duration, c.run.duration, c.duration_change) == (10.0, 12.5, 2.5)
    assert c.base.counts == {"failed": 3, "passed": 12, "skipped": 2, "subtests failed": 1,
                             "subtests passed": 2}  # fmt: skip
    assert c.run.counts == {"error": 1, "failed": 4, "passed": 12, "skipped": 1,
                            "subtests failed": 1, "subtests passed": 2}  # fmt: skip
    assert c.count_changes == {
        "error": 1,
        "failed": 1,
        "passed": 0,
        "skipped": -1,
        "subtests failed": 0,
        "subtests passed": 0,
    }
    # In pytest's order of outcomes, the tests' before their subtests'.
    assert list(c.count_changes) == [
        "passed", "failed", "skipped", "error", "subtests passed", "subtests failed"
    ]  # fmt: skip
    base_time = sum(r.get("call_duration", 0) + r.get("setup_duration", 0) for r in BASE
                    if r.get("final", True) and not r.get("subtest"))  # fmt: skip
    run_time = sum(r.get("call_duration", 0) + r.get("setup_duration", 0) for r in RUN
                   if r.get("final", True) and not r.get("subtest"))  # fmt: skip
    assert c.base.test_time == pytest.approx(base_time)
    assert c.test_time_change == pytest.approx(run_time - base_time)


def test_counts_are_pytest_s_once_a_run_finished_as_the_run_list_shows_them(
    store: Store,
) -> None:
    # pytest counts a test failing through a subtest as failed; its own result passed.
    results = [
        {"nodeid": "t.py::test_a", "outcome": "passed"},
        {"nodeid": "t.py::test_a", "outcome": "failed", "subtest": "[x]"},
    ]
    reported = {"failed": 1, "subtests failed": 1}
    ids = write_runs(
        store,
        [
            (results, {"project": "p", "counts": reported}),
            (results, {"project": "p", "finish": False}),
        ],
    )
    cur = store.reader()
    finished = compare_runs(cur, ids[0], ids[1])
    assert finished is not None
    assert finished.run.counts == reported == get_run(cur, ids[0]).counts  # type: ignore[union-attr]
    # Still running: pytest has said nothing yet, so the stored results are counted.
    assert finished.base.counts == {"passed": 1, "subtests failed": 1}


def test_options_and_limits(store: Store, runs: list[str]) -> None:
    cur = store.reader()
    c = compare_runs(cur, runs[1], runs[0], factor=1.5)
    assert c is not None
    assert _names(c.slower) == [("t.py::test_slower", None), ("t.py::test_slower_by_little", None)]
    c = compare_runs(cur, runs[1], runs[0], min_seconds=0.001)
    assert c is not None
    assert _names(c.slower) == [("t.py::test_tiny_slower", None), ("t.py::test_slower", None)]
    assert c.slower[0].factor == pytest.approx(5.0)  # the biggest factor first
    c = compare_runs(cur, runs[1], runs[0], limit=1)
    assert c is not None
    assert (len(c.newly_failing), c.sizes["newly_failing"]) == (1, 4)
    # a run against itself: nothing changed, what fails still fails
    same = compare_runs(cur, runs[1], runs[1])
    assert same is not None
    assert same.newly_failing == same.fixed == same.new_tests == same.slower == []
    assert len(same.still_failing) == 6
    assert set(same.count_changes.values()) == {0}
    assert compare_runs(cur, runs[1], "not-a-run") is None
    assert compare_runs(cur, "00000000-0000-0000-0000-000000000000", runs[0]) is None


def test_the_default_base_is_the_run_before_on_the_same_branch(store: Store) -> None:
    ids = write_runs(
        store,
        [
            ([passed("t.py::a")], {"project": "p"}),
            ([passed("t.py::a")], {"project": "p", "branch": "feature"}),
            ([passed("t.py::a")], {"project": "p", "partial": True}),
            ([passed("t.py::a")], {"project": "p"}),
            ([passed("t.py::a")], {"project": "other"}),
        ],
    )
    cur = store.reader()
    assert base_run(cur, ids[3]) == ids[0]  # not the feature branch, not a partial run
    assert base_run(cur, ids[2]) == ids[0]  # a partial run may compare with any
    assert base_run(cur, ids[1]) is None
    assert base_run(cur, ids[0]) is None
    assert base_run(cur, ids[4]) is None
    assert base_run(cur, "nope") is None


# -- API and page ---------------------------------------------------------------------


@pytest.fixture
def client(db_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(app=create_app(Settings(db_path=db_path))) as test_client:
        yield test_client


def test_the_api_compares_with_the_run_before_or_the_one_named(client: TestClient[Any]) -> None:
    ids = write_runs(
        client.app.state.store,
        [(BASE, {"project": "cmp"}), (RUN, {"project": "cmp"}), (BASE, {"project": "cmp"})],
    )
    answer = client.get(f"/api/runs/{ids[1]}/compare")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["run"]["id"], body["base"]["id"]) == (ids[1], ids[0])
    assert [t["nodeid"] for t in body["slower"]] == ["t.py::test_slower"]
    assert body["sizes"]["newly_failing"] == 4
    named = client.get(f"/api/runs/{ids[1]}/compare", params={"base": ids[2], "limit": 2}).json()
    assert named["base"]["id"] == ids[2]
    assert len(named["newly_failing"]) == 2
    # the other way round: what broke is fixed
    back = client.get(f"/api/runs/{ids[2]}/compare").json()
    assert back["base"]["id"] == ids[1]
    assert [t["nodeid"] for t in back["fixed"]][:2] == [
        "t.py::test_breaks",
        "t.py::test_errors_now",
    ]


@pytest.mark.parametrize(
    ("which", "params", "status", "complaint"),
    [
        ("first", {}, 404, "has no earlier run"),
        ("unknown", {}, 404, "unknown run"),
        ("second", {"base": "not-a-run"}, 404, "unknown base run: not-a-run"),
        ("second", {"factor": "1"}, 400, "factor"),
        ("second", {"limit": "0"}, 400, "limit"),
    ],
)
def test_the_api_names_what_is_wrong(
    client: TestClient[Any], which: str, params: dict[str, str], status: int, complaint: str
) -> None:
    ids = write_runs(
        client.app.state.store, [(BASE, {"project": "cmp"}), (RUN, {"project": "cmp"})]
    )
    run = {"first": ids[0], "second": ids[1], "unknown": "f" * 8}[which]
    answer = client.get(f"/api/runs/{run}/compare", params=params)
    assert answer.status_code == status
    assert complaint in answer.text


def test_the_page_shows_each_category_and_the_run_page_links_to_it(
    client: TestClient[Any],
) -> None:
    ids = write_runs(
        client.app.state.store, [(BASE, {"project": "cmp"}), (RUN, {"project": "cmp"})]
    )
    assert f'href="/runs/{ids[1]}/compare"' in client.get(f"/runs/{ids[1]}").text
    page = client.get(f"/runs/{ids[1]}/compare")
    assert page.status_code == 200
    body = page.text.replace("<wbr>", "")  # the line break hints inside node ids
    assert f'against run <a href="/runs/{ids[0]}">' in body

    def section(name: str) -> str:
        return body.split(f'id="compare-{name}"')[1].split("</section>")[0]

    assert "t.py::test_breaks" in section("newly-failing")
    assert "boom" in section("newly-failing")
    assert "t.py::test_fixed" in section("fixed")
    assert "t.py::test_slower" in section("slower")
    assert "\N{MULTIPLICATION SIGN}2.50" in section("slower")
    assert "t.py::test_slower_by_little" not in section("slower")
    assert "did not run" in section("removed-tests")
    assert '<span class="subtest">[c]</span>' in section("new-tests")
    numbers = section("numbers")
    assert (
        '<td>error</td><td class="num">0</td><td class="num">1</td><td class="num">+1</td>'
        in numbers
    )
    assert (
        '<td>skipped</td><td class="num">2</td><td class="num">1</td><td class="num">\N{MINUS SIGN}1</td>'
        in numbers
    )
    # the first run has nothing before it: the page says so and offers the form
    first = client.get(f"/runs/{ids[0]}/compare")
    assert first.status_code == 200
    assert "has no earlier run" in first.text
    assert client.get(f"/runs/{ids[1]}/compare?base=nope").status_code == 404
    assert client.get(f"/runs/{ids[1]}/compare?factor=abc").status_code == 400


def test_the_page_escapes_what_tests_and_runs_carry(client: TestClient[Any]) -> None:
    evil = "t.py::test_x[<script>alert(1)</script>]"
    ids = write_runs(
        client.app.state.store,
        [
            ([passed(evil)], {"project": "cmp", "branch": "<b>br</b>"}),
            (
                [failed(evil, "<img src=x onerror=alert(1)>")],
                {"project": "cmp", "branch": "<b>br</b>"},
            ),
        ],
    )
    answer = client.get(f"/runs/{ids[1]}/compare", params={"base": '"><script>x</script>'})
    assert answer.status_code == 404
    assert "<script>x" not in answer.text
    body = client.get(f"/runs/{ids[1]}/compare").text.replace("<wbr>", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "<script>alert(1)" not in body
    assert "<img src=x" not in body
    assert "<b>br</b>" not in body


def test_a_pull_request_is_compared_with_the_target_branch_on_its_merge_base(
    store: Store,
) -> None:
    ids = write_runs(
        store,
        [
            ([passed("t.py::a")], {"project": "p", "commit": "m1"}),
            ([passed("t.py::a")], {"project": "p", "commit": "m2"}),
            ([passed("t.py::a")], {"project": "p", "branch": "feature", "commit": "f1"}),
            (
                [passed("t.py::a")],
                {
                    "project": "p",
                    "branch": "feature",
                    "commit": "f2",
                    "base_branch": "main",
                    "base_commit": "m1",
                },
            ),
        ],
    )
    cur = store.reader()
    assert base_run(cur, ids[3]) == ids[0]  # main on the merge base, not feature's f1
    assert base_run(cur, ids[2]) is None  # a feature run that names no target
