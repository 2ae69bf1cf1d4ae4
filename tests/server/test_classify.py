"""A run's failures classified against a history whose truth the test wrote."""

from __future__ import annotations

from typing import Any

from litestar.testing import TestClient

from datacat_client import wire
from datacat_server.queries.classify import classify_run
from datacat_server.store import Store
from tests.server.records import RecordMaker

Client = TestClient  # type: ignore[type-arg]

P, F = "passed", "failed"

#: Each test's outcome in runs 1..6 of main (None: not run), then in run 7.
HISTORY: dict[str, tuple[list[str | None], str]] = {
    "t.py::stable": ([P, P, P, P, P, P], F),  # new
    "t.py::broken": ([P, P, P, F, F, F], F),  # already failing, since run 4
    "t.py::flaky": ([P, F, P, F, P, P], F),  # known flaky (flips)
    "t.py::fixed": ([P, P, P, P, P, F], P),  # fixed
    "t.py::gone_from_base": ([P, P, P, None, None, None], F),  # new: the base did not run it
    "t.py::passes": ([P, P, P, P, P, P], P),  # nothing to say
}


def _run(
    store: Store,
    outcomes: dict[str, str | None],
    *,
    branch: str = "main",
    commit: str,
    rerun: set[str] = frozenset(),  # type: ignore[assignment]
    **run: Any,
) -> str:
    maker = RecordMaker()
    records: list[Any] = [
        maker.start(product="shop"),
        maker.make(wire.RunStart, project="shop", branch=branch, commit=commit, **run),
    ]
    for nodeid, outcome in outcomes.items():
        if outcome is None:
            continue
        if nodeid in rerun:
            records.append(maker.result(nodeid, F, attempt=0, final=False, exc_type="E"))
            records.append(maker.result(nodeid, outcome, attempt=1))
        else:
            extra = {"exc_type": "AssertionError", "exc_message": f"{nodeid} broke\nmore"}
            records.append(maker.result(nodeid, outcome, **(extra if outcome == F else {})))
    store.write_sync(records)
    return maker.session_id


def _history(store: Store) -> list[str]:
    ids = []
    for i in range(6):
        outcomes = {nodeid: before[i] for nodeid, (before, _) in HISTORY.items()}
        outcomes["t.py::rerun_flaky"] = P
        ids.append(
            _run(
                store,
                outcomes,
                commit=f"c{i + 1}",
                rerun={"t.py::rerun_flaky"} if i == 4 else set(),
            )
        )
    return ids


def test_each_failure_gets_its_category(store: Store) -> None:
    history = _history(store)
    now = {nodeid: after for nodeid, (_, after) in HISTORY.items()}
    now |= {"t.py::rerun_flaky": F, "t.py::brand_new": F}
    run = _run(store, now, commit="c7")
    found = classify_run(store.reader(), run)
    assert found is not None
    assert found.base_run == history[-1]
    categories = {f.nodeid: f.category for f in found.failures}
    assert categories == {
        "t.py::stable": "new",
        "t.py::gone_from_base": "new",
        "t.py::brand_new": "new_test",
        "t.py::broken": "already_failing",
        "t.py::flaky": "known_flaky",
        "t.py::rerun_flaky": "known_flaky",
    }
    assert found.fixed == ["t.py::fixed"]
    assert found.counts == {
        "new": 2,
        "new_test": 1,
        "already_failing": 1,
        "known_flaky": 2,
        "fixed": 1,
    }
    # Most actionable first; the since of a broken test is where its streak began.
    assert [f.category for f in found.failures] == [
        "new",
        "new",
        "new_test",
        "already_failing",
        "known_flaky",
        "known_flaky",
    ]
    broken = next(f for f in found.failures if f.nodeid == "t.py::broken")
    assert (broken.since_run, broken.since_commit) == (history[3], "c4")
    flaky = {f.nodeid: f.evidence for f in found.failures if f.category == "known_flaky"}
    assert flaky == {"t.py::flaky": ["flips"], "t.py::rerun_flaky": ["rerun"]}
    stable = next(f for f in found.failures if f.nodeid == "t.py::stable")
    assert (stable.exc_type, stable.message) == ("AssertionError", "t.py::stable broke")


def test_a_pull_request_is_compared_with_its_target_on_the_merge_base(store: Store) -> None:
    history = _history(store)
    # Merge base c5: there "fixed" still passed, "broken" already failed.
    outcomes = {"t.py::fixed": F, "t.py::broken": F, "t.py::stable": P}
    run = _run(store, outcomes, branch="feature", commit="f1", base_branch="main", base_commit="c5")
    found = classify_run(store.reader(), run)
    assert found is not None
    assert (found.base_run, found.base_branch, found.base_commit) == (history[4], "main", "c5")
    assert {f.nodeid: f.category for f in found.failures} == {
        "t.py::fixed": "new",
        "t.py::broken": "already_failing",
    }


def test_a_partial_run_is_no_base_while_a_full_one_exists(store: Store) -> None:
    history = _history(store)
    _run(store, {"t.py::stable": P}, commit="c7", partial=True)
    run = _run(store, {"t.py::broken": F}, commit="c8")
    found = classify_run(store.reader(), run)
    assert found is not None
    assert found.base_run == history[-1]


def test_the_first_run_has_only_new_tests(store: Store) -> None:
    run = _run(store, {"t.py::a": F, "t.py::b": P}, commit="c1")
    found = classify_run(store.reader(), run)
    assert found is not None
    assert found.base_run is None
    assert found.counts["new_test"] == 1
    assert found.counts["new"] == 0


def test_the_api_answers_and_names_an_unknown_run(client: Client) -> None:
    store: Store = client.app.state.store
    history = _history(store)
    answer = client.get(f"/api/runs/{history[-1]}/classification")
    assert answer.status_code == 200
    assert answer.json()["counts"]["already_failing"] == 1
    missing = client.get("/api/runs/00000000-0000-0000-0000-000000000000/classification")
    assert missing.status_code == 404


def test_the_run_page_shows_each_verdict_and_what_it_rests_on(client: Client) -> None:
    store: Store = client.app.state.store
    history = _history(store)
    now = {nodeid: after for nodeid, (_, after) in HISTORY.items()}
    run = _run(store, now | {"t.py::brand_new": F}, commit="c7")
    page = client.get(f"/runs/{run}")
    assert page.status_code == 200
    section = page.text.replace("<wbr>", "").split('id="run-classification"')[1]
    section = section.split("</section>")[0]
    # The plugin's closing line, in the same words and order.
    assert ">2 new failures</span>, <span" in section
    assert ">1 new test failing</span>" in section
    assert ">1 known flaky</span>, <span" in section
    assert ">1 already failing</span>, <span" in section
    assert ">1 fixed</span>" in section
    assert f'run <a href="/runs/{history[-1]}"><code>{history[-1][:8]}</code></a>' in section
    rows = {
        row.split("nodeid=")[1].split("&")[0].replace("%3A", ":"): row.split("</span>")[0]
        for row in section.split('<tr class="verdict-row')[1:]
    }
    verdicts = {nodeid: row.rsplit(">", 1)[1] for nodeid, row in rows.items()}
    assert verdicts == {
        "t.py::stable": "new failure",
        "t.py::gone_from_base": "new failure",
        "t.py::brand_new": "new test failing",
        "t.py::broken": "already failing",
        "t.py::flaky": "known flaky",
    }
    assert f'failing since run <a href="/runs/{history[3]}">' in section
    assert "evidence: failed, passed, failed again" in section
    assert "t.py::stable broke" in section
    fixed = section.split('class="fixed-tests"')[1]
    assert "t.py::fixed" in fixed
    assert "t.py::passes" not in section


def test_a_run_without_failures_or_fixes_has_no_verdicts(client: Client) -> None:
    store: Store = client.app.state.store
    run = _run(store, {"t.py::a": P}, commit="c1")
    page = client.get(f"/runs/{run}")
    assert page.status_code == 200
    assert 'id="run-classification"' not in page.text


def test_a_run_without_branch_or_commit_says_so_in_whole_sentences(client: Client) -> None:
    store: Store = client.app.state.store
    base = _run(store, {"t.py::a": P}, branch="", commit="")
    run = _run(store, {"t.py::a": F}, branch="", commit="")
    page = client.get(f"/runs/{run}").text.replace("<wbr>", "")
    head = page.split('class="sub"')[1].split("</p>")[0]
    assert "no commit," in head
    assert "commit <code" not in head
    section = page.split('id="run-classification"')[1].split("</section>")[0]
    compared = " ".join(section.split("compared with")[1].split("</span>")[0].split())
    assert compared == f'run <a href="/runs/{base}"><code>{base[:8]}</code></a>'
    assert " of <strong></strong>" not in section
