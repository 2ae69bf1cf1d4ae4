"""The plugin's one line (and the step summary) says what became of the run's results."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from pytest_datacat.summary import Highlights, RunSummary

SID = "8cd6606e-1111-4222-8333-444455556666"
URL = "http://127.0.0.1:8080"


def summary(**changes: Any) -> RunSummary:
    delivered = RunSummary(
        session_id=SID,
        run_url=f"{URL}/runs/{SID}",
        status="passed",
        counts={"passed": 57},
        results=57,
        duration=3.0,
        delivered=True,
        sent=120,
        spooled=0,
        lost=0,
        spool_dir=Path("/home/me/.cache/datacat/spool"),
        refusal=None,
        failure=None,
        leftovers_sent=0,
        url=URL,
        with_token=False,
        overhead=0.21,
        errors=[],
        highlights=Highlights(),
    )
    return dataclasses.replace(delivered, **changes)


UPLOAD = f"datacat upload /home/me/.cache/datacat/spool --url {URL}"


def test_delivered() -> None:
    assert summary().line() == (
        f"datacat: run 8cd6606e · 57 results recorded · {URL}/runs/{SID} · overhead 0.21s"
    )


def test_server_unreachable_says_spooled_not_recorded() -> None:
    line = summary(delivered=False, sent=0, spooled=118, failure="server unreachable").line()
    assert line == (
        "datacat: run 8cd6606e · 57 results spooled · server unreachable, 118 records in"
        f" /home/me/.cache/datacat/spool (send them with: {UPLOAD}) · overhead 0.21s"
    )


def test_a_server_lost_on_the_way_says_part_was_recorded() -> None:
    line = summary(delivered=False, sent=40, spooled=80, failure="server unreachable").line()
    assert "57 results partly recorded, the rest spooled · server unreachable, 80 records" in line


def test_a_refusal_is_named_and_the_command_carries_the_token() -> None:
    line = summary(
        delivered=False,
        sent=0,
        spooled=118,
        refusal="HTTP 401: a token is required",
        with_token=True,
    ).line()
    assert "57 results spooled · server refused them (HTTP 401: a token is required)" in line
    assert f"(send them with: DATACAT_TOKEN=... {UPLOAD})" in line


def test_a_slow_server_is_named_as_such() -> None:
    line = summary(
        delivered=False, sent=0, spooled=118, failure="server did not answer in time"
    ).line()
    assert "57 results spooled · server did not answer in time, 118 records" in line


def test_records_lost_to_an_unwritable_spool() -> None:
    line = summary(delivered=False, sent=0, lost=118, failure="server unreachable").line()
    assert "57 results not sent (server unreachable)" in line
    assert "118 records lost (spool /home/me/.cache/datacat/spool not writable)" in line
    assert "recorded" not in line


def test_a_run_that_sent_what_earlier_runs_spooled_says_so() -> None:
    line = summary(leftovers_sent=118).line()
    assert line.startswith("datacat: run 8cd6606e · 57 results recorded · ")
    assert " · sent 118 records spooled by earlier runs · overhead 0.21s" in line
    assert "earlier" not in summary().line()


def test_plugin_errors_are_counted_with_the_first() -> None:
    line = summary(errors=["pytest_collectreport: KeyError: 'x'", "other"]).line()
    assert line.endswith("· 2 plugin errors (first: pytest_collectreport: KeyError: 'x')")


def test_the_readme_shows_lines_the_plugin_writes() -> None:
    """Each example line of the README is what the plugin writes in that case."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    examples = re.findall(r"^datacat: run .*$", readme, flags=re.MULTILINE)
    short = "8cd6606e-…"  # the README shortens the run's id in its link
    base = summary(
        session_id=short,
        run_url=f"{URL}/runs/{short}",
        results=2412,
        spool_dir=Path("/home/me/.cache/datacat/spool"),
    )
    cases = [
        base,
        dataclasses.replace(
            base, delivered=False, sent=0, spooled=4830, failure="server unreachable", overhead=0.05
        ),
        dataclasses.replace(base, leftovers_sent=4830, overhead=0.3),
        dataclasses.replace(
            base,
            classification={
                "counts": {"new": 2, "known_flaky": 1, "already_failing": 3, "fixed": 1}
            },
            overhead=0.24,
        ),
    ]
    assert examples == [case.line() for case in cases]


def test_the_step_summary_says_why_records_were_spooled() -> None:
    text = summary(delivered=False, sent=0, spooled=118, failure="server unreachable").markdown()
    assert (
        "118 records were spooled in `/home/me/.cache/datacat/spool` (server unreachable)" in text
    )
    assert UPLOAD in text


CLASSIFIED = {
    "counts": {"new": 1, "new_test": 0, "known_flaky": 1, "already_failing": 1, "fixed": 1},
    "failures": [
        {"nodeid": "t.py::test_flaky", "category": "known_flaky", "message": "timeout"},
        {
            "nodeid": "t.py::test_broken",
            "category": "already_failing",
            "exc_type": "KeyError",
            "message": "'id'",
            "since": "2026-11-30T10:20:30Z",
            "since_commit": "0123456789abcdef",
        },
        {
            "nodeid": "t.py::test_new[a|b]",
            "category": "new",
            "exc_type": "AssertionError",
            "message": "assert 1 == 2",
        },
    ],
    "fixed": ["t.py::test_fixed"],
}


def test_the_closing_line_carries_the_verdicts() -> None:
    line = summary(classification=CLASSIFIED, status="failed").line()
    assert f"{URL}/runs/{SID} · 1 new failure, 1 known flaky, 1 already failing, 1 fixed ·" in line


def test_a_server_that_is_down_makes_the_classification_unavailable_and_nothing_else() -> None:
    down: dict[str, Any] = {
        "delivered": False,
        "sent": 0,
        "spooled": 118,
        "failure": "server unreachable",
    }
    line = summary(**down, classification_error="the server has not stored this run").line()
    assert line == summary(**down).line().replace(
        " · overhead",
        " · classification unavailable (the server has not stored this run) · overhead",
    )


def test_the_step_summary_lists_new_failures_first_with_message_and_link() -> None:
    text = summary(classification=CLASSIFIED, status="failed").markdown()
    new = text.index("**New failures (1)**")
    already = text.index("**Already failing (1)**")
    flaky = text.index("**Known flaky (1)**")
    assert new < already < flaky < text.index("**Fixed (1)**")
    assert (
        f"- [`t.py::test_new[a\\|b]`]({URL}/tests?nodeid=t.py%3A%3Atest_new%5Ba%7Cb%5D):"
        " AssertionError: assert 1 == 2"
    ) in text
    assert "KeyError: 'id' (failing since 2026-11-30 10:20, commit `0123456789`)" in text
    assert "- `t.py::test_fixed`" in text.split("**Fixed (1)**")[1]
