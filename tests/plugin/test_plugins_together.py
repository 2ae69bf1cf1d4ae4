"""pytest-xdist, pytest-rerunfailures and subtests: totals equal pytest's, nothing lost."""

from __future__ import annotations

import pytest

from tests.plugin.conftest import Api, plugins, run_id_of
from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


def _counts_match(result: pytest.RunResult, counts: dict[str, int]) -> None:
    # pytester reads "3 subtests passed" as {"subtests": 3}, and "2 errors" as "errors".
    expected = {("error" if k == "errors" else k): v for k, v in result.parseoutcomes().items()}
    ours = {k.split()[0]: v for k, v in counts.items() if k != "warnings"}
    assert ours == expected


@pytest.mark.slow  # starting xdist workers takes seconds
def test_xdist_controller_sends_and_each_result_names_its_worker(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(20))\n"
        "def test_many(i):\n    assert i % 7 != 3\n"
    )
    result = pytester.runpytest_subprocess(
        *plugins("xdist"), "-n", "2", "--datacat", f"--datacat-url={server.url}"
    )
    run_id = run_id_of(result.stdout.str())
    tests = api.tests(run_id)
    assert len(tests) == 20
    assert {t["worker"] for t in tests} == {"gw0", "gw1"}
    assert sum(t["outcome"] == "failed" for t in tests) == 3
    run = api.run(run_id)
    _counts_match(result, run["counts"])
    assert run["workers"] == 2


@pytest.mark.slow  # starting xdist workers takes seconds
def test_a_crashed_xdist_worker_is_recorded_as_a_crash_of_its_test(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile("import os\ndef test_ok(): pass\ndef test_dies(): os._exit(3)\n")
    result = pytester.runpytest_subprocess(
        *plugins("xdist"), "-n", "1", "--datacat", f"--datacat-url={server.url}"
    )
    tests = {t["nodeid"].split("::")[-1]: t for t in api.tests(run_id_of(result.stdout.str()))}
    dies = tests["test_dies"]
    assert dies["outcome"] == "failed"
    assert dies["phase"] == "???"
    assert dies["exc_type"] == "WorkerCrashed"
    assert "crashed" in dies["traceback"]
    assert tests["test_ok"]["outcome"] == "passed"


def test_reruns_record_every_attempt_and_the_flake(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(
        "import pathlib\n"
        "def test_flaky(tmp_path_factory):\n"
        "    mark = pathlib.Path(__file__).with_name('tried')\n"
        "    if not mark.exists():\n"
        "        mark.touch()\n"
        "        assert False, 'first try fails'\n"
        "def test_always_fails():\n    assert 0\n"
    )
    result = pytester.runpytest_subprocess(
        *plugins("rerunfailures"), "--reruns", "2", "--datacat", f"--datacat-url={server.url}"
    )
    run_id = run_id_of(result.stdout.str())
    attempts = [
        (t["nodeid"].split("::")[-1], t["attempt"], t["outcome"], t["final"])
        for t in api.tests(run_id)
    ]
    assert sorted(attempts) == [
        ("test_always_fails", 0, "failed", False),
        ("test_always_fails", 1, "failed", False),
        ("test_always_fails", 2, "failed", True),
        ("test_flaky", 0, "failed", False),
        ("test_flaky", 1, "passed", True),
    ]
    _counts_match(result, api.run(run_id)["counts"])


SUBTESTS = """
import unittest

def test_fixture_subtests(subtests):
    for i in range(3):
        with subtests.test(msg="loop", i=i):
            assert i != 1, "one is bad"

class Case(unittest.TestCase):
    def test_unittest_subtests(self):
        for i in range(2):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)
"""


def test_subtests_have_their_own_results_counted_as_pytest_counts_them(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(test_sub=SUBTESTS)
    # pytest counts passed subtests apart ("3 subtests passed") in its quiet mode only.
    result = pytester.runpytest_subprocess(
        *plugins(), "-q", "--datacat", f"--datacat-url={server.url}"
    )
    run_id = run_id_of(result.stdout.str())
    rows = sorted(
        (t["nodeid"].split("::")[-1], t["subtest"] or "", t["outcome"]) for t in api.tests(run_id)
    )
    assert rows == [
        ("test_fixture_subtests", "", "failed"),
        ("test_fixture_subtests", "loop (i=0)", "passed"),
        ("test_fixture_subtests", "loop (i=1)", "failed"),
        ("test_fixture_subtests", "loop (i=2)", "passed"),
        ("test_unittest_subtests", "", "passed"),
        ("test_unittest_subtests", "i=0", "passed"),
        ("test_unittest_subtests", "i=1", "failed"),
    ]
    failed_subtest = next(t for t in api.tests(run_id) if t["subtest"] == "loop (i=1)")
    assert "one is bad" in failed_subtest["exc_message"]
    _counts_match(result, api.run(run_id)["counts"])
    assert api.run(run_id)["counts"]["subtests passed"] == 3


@pytest.mark.slow
def test_twenty_thousand_subtests_lose_none(
    pytester: pytest.Pytester, server: ServerProcess, api: Api
) -> None:
    pytester.makepyfile(
        "def test_big(subtests):\n"
        "    for i in range(20_000):\n"
        "        with subtests.test(i=i):\n"
        "            assert i % 1000 != 999\n"
    )
    result = pytester.runpytest_subprocess(
        *plugins(),
        "--datacat",
        f"--datacat-url={server.url}",
        "--datacat-flush-timeout=60",
        timeout=300,
    )
    run_id = run_id_of(result.stdout.str())
    tests = api.tests(run_id)
    subtests = [t for t in tests if t["subtest"] is not None]
    assert len(subtests) == 20_000
    assert len({t["subtest"] for t in subtests}) == 20_000
    assert sum(t["outcome"] == "failed" for t in subtests) == 20
    _counts_match(result, api.run(run_id)["counts"])
