"""Runs imported from JUnit XML take part in every insight as pytest's runs do: each
failure classified against the base run, two runs compared, slowdowns found at the run
they came in, flaky tests found on the same commit."""

from __future__ import annotations

from typing import Any

from tests.server.test_junit_import import Client, post_xml

PACKAGE = "github.com/acme/shop/cart"


def go_report(
    run: int, outcomes: dict[str, str], durations: dict[str, float] | None = None
) -> bytes:
    """A ``go-junit-report`` document of one ``go test`` run, an hour after the last."""
    durations = durations or {}
    stamp = f"2026-03-{1 + run // 24:02d}T{run % 24:02d}:00:00Z"
    cases = []
    for name, outcome in outcomes.items():
        failure = (
            f'<failure message="Failed"><![CDATA[    cart_test.go:{run}: {name} broke]]></failure>'
            if outcome == "failed"
            else ""
        )
        cases.append(
            f'<testcase name="{name}" classname="{PACKAGE}"'
            f' time="{durations.get(name, 0.001):.3f}">{failure}</testcase>'
        )
    failures = sum(outcome == "failed" for outcome in outcomes.values())
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites tests="{len(cases)}"'
        f' failures="{failures}"><testsuite name="{PACKAGE}" tests="{len(cases)}"'
        f' failures="{failures}" errors="0" time="1.000" timestamp="{stamp}">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    ).encode()


def imported(client: Client, body: bytes, commit: str) -> str:
    answer = post_xml(client, body, project="go", branch="main", commit=commit)
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


def named(nodeids: list[str]) -> set[str]:
    """The Go test names of node ids (``<package>::<test>``, as the import makes them)."""
    prefix = f"{PACKAGE}::"
    assert all(nodeid.startswith(prefix) for nodeid in nodeids), nodeids
    return {nodeid.removeprefix(prefix) for nodeid in nodeids}


def nodeids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row["nodeid"]) for row in rows]


def test_an_imported_run_is_classified_and_compared_with_the_one_before(client: Client) -> None:
    base = imported(
        client,
        go_report(0, {"TestAdd": "passed", "TestTotal": "passed", "TestSync": "failed"}),
        "c0",
    )
    run = imported(
        client,
        go_report(
            1,
            {"TestAdd": "failed", "TestTotal": "passed", "TestSync": "passed", "TestNew": "failed"},
        ),
        "c1",
    )

    verdicts = client.get(f"/api/runs/{run}/classification").json()
    assert verdicts["base_run"] == base
    assert verdicts["counts"]["new"] == 1
    assert verdicts["counts"]["new_test"] == 1
    assert verdicts["counts"]["fixed"] == 1
    categories = {row["nodeid"]: row["category"] for row in verdicts["failures"]}
    assert categories == {f"{PACKAGE}::TestAdd": "new", f"{PACKAGE}::TestNew": "new_test"}
    assert named(verdicts["fixed"]) == {"TestSync"}

    compared = client.get(f"/api/runs/{run}/compare").json()
    assert compared["base"]["id"] == base
    assert named(nodeids(compared["newly_failing"])) == {"TestAdd"}
    assert named(nodeids(compared["fixed"])) == {"TestSync"}
    assert named(nodeids(compared["new_tests"])) == {"TestNew"}


def test_imported_runs_show_a_slowdown_at_its_run_and_a_flaky_test(client: Client) -> None:
    ids = []
    for run in range(12):
        outcomes = {"TestSteady": "passed", "TestSlows": "passed", "TestFlaky": "passed"}
        if run in (3, 7):  # each on a commit where the other run passed it
            outcomes["TestFlaky"] = "failed"
        slow = 0.100 if run < 6 else 0.500
        body = go_report(run, outcomes, {"TestSteady": 0.100, "TestSlows": slow})
        ids.append(imported(client, body, commit=f"c{run // 2}"))

    found = client.get("/api/regressions", params={"project": "go"}).json()
    assert named(nodeids(found)) == {"TestSlows"}
    assert found[0]["run"] == ids[6]
    assert (found[0]["before"], found[0]["after"]) == (0.1, 0.5)

    flaky = client.get("/api/flaky", params={"project": "go"}).json()
    assert named(nodeids(flaky)) == {"TestFlaky"}
    assert flaky[0]["same_commit"] == 2
