"""The sample suite, with and without DataCat: same exit code, same counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.plugin.conftest import Api, plugins, run_id_of
from tests.support.server import ServerProcess

SAMPLE = Path(__file__).parents[2] / "examples" / "sample_suite"

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.mark.parametrize("seed", ["0", "3"])
def test_exit_code_and_counts_are_identical_with_and_without_datacat(
    pytester: pytest.Pytester,
    server: ServerProcess,
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    seed: str,
) -> None:
    shutil.copytree(SAMPLE, pytester.path / "sample_suite")
    monkeypatch.setenv("SAMPLE_SEED", seed)
    monkeypatch.setenv("SAMPLE_HANG", "0.3")
    target = str(pytester.path / "sample_suite")
    plain = pytester.runpytest_subprocess(*plugins(), target, "-q")
    recorded = pytester.runpytest_subprocess(
        *plugins(), target, "-q", "--datacat", f"--datacat-url={server.url}"
    )
    assert recorded.ret == plain.ret == pytest.ExitCode.TESTS_FAILED
    assert recorded.parseoutcomes() == plain.parseoutcomes()
    run = api.run(run_id_of(recorded.stdout.str()))
    ours = {k.split()[0]: v for k, v in run["counts"].items() if k != "warnings"}
    theirs = {("error" if k == "errors" else k): v for k, v in plain.parseoutcomes().items()}
    assert ours == theirs
    tests = api.tests(run["id"])
    # One result per test, besides its subtests; pytest counts failed subtests as "failed".
    assert sum(t["subtest"] is None for t in tests) == sum(
        v
        for k, v in ours.items()
        if k in {"passed", "failed", "skipped", "xfailed", "xpassed", "error"}
    ) - sum(1 for t in tests if t["subtest"] is not None and t["outcome"] == "failed")
