"""Failure clusters: one root cause is one cluster, across tests, runs and machines.

Messages carry what pytest and Python put in them: a test's ``tmp_path`` (with its
name and pytest's run number), ``tempfile`` names, Windows paths (escaped in a repr or
not), relative paths, line numbers, object reprs. Every cluster of a generated history
is checked exactly: its signature, its tests, its count and its trend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar.testing import TestClient

from datacat_server.app import create_app
from datacat_server.queries import failures as failures_module
from datacat_server.queries.failures import failure_clusters, normalize_message_sql
from datacat_server.queries.window import recent_runs
from datacat_server.settings import Settings
from datacat_server.store import Store
from tests.server.history import write_runs


@pytest.fixture(scope="module")
def sql() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    yield con
    con.close()


def normalized(con: duckdb.DuckDBPyConnection, message: str) -> str:
    row = con.execute(f"SELECT {normalize_message_sql('?')}", [message]).fetchone()
    assert row is not None
    return str(row[0])


@pytest.mark.parametrize(
    ("message", "signature"),
    [
        # pytest's tmp_path, on Linux, macOS and Windows (a repr's escaped backslashes,
        # and a str's single ones), as a str and as a Path's repr
        (
            "No such file: '/tmp/pytest-of-root/pytest-12/test_upload0/data.json'",
            "No such file: '<tmp>/data.json'",
        ),
        (
            "No such file: '/private/var/folders/x_/k2j3/T/pytest-of-me/pytest-4/test_b1/data.json'",
            "No such file: '<tmp>/data.json'",
        ),
        (
            r"No such file: 'C:\\Users\\ci\\AppData\\Local\\Temp\\pytest-of-ci\\pytest-3\\test_c0\\data.json'",
            "No such file: '<tmp>/data.json'",
        ),
        (
            r"No such file: C:\Users\ci\AppData\Local\Temp\pytest-of-ci\pytest-3\test_c0\sub\data.json",
            "No such file: <tmp>/data.json",
        ),
        ("PosixPath('/tmp/pytest-of-runner/pytest-0/test_q0')", "PosixPath('<tmp>')"),
        (
            "WindowsPath('C:/Users/ci/AppData/Local/Temp/pytest-of-ci/pytest-7/test_w0/x.db')",
            "WindowsPath('<tmp>/x.db')",
        ),
        ("basetemp /tmp/pytest-of-root/pytest-current is full", "basetemp <tmp> is full"),
        # tempfile.mkdtemp() / mkstemp(): whole, not cut into <n> pieces
        ("cannot remove /tmp/tmpab12_cd3", "cannot remove <tmp>"),
        ("cannot remove /tmp/tmpxk_9pq2a/", "cannot remove <tmp>/"),
        ("wrote '/var/tmp/tmp0a9b_c8d.json'", "wrote '<tmp>.json'"),
        (r"cannot remove C:\Users\ci\AppData\Local\Temp\tmpq1w2e3r4", "cannot remove <tmp>"),
        # other paths keep their last part only: the file says which failure it is
        ("open /home/ci/work/proj/conf/settings.toml", "open <path>/settings.toml"),
        ("open ~/proj/conf/settings.toml", "open <path>/settings.toml"),
        ("open ./conf/settings.toml", "open <path>/settings.toml"),
        ("open ../../proj/conf/settings.toml", "open <path>/settings.toml"),
        ("open proj/conf/settings.toml", "open <path>/settings.toml"),
        ("open conf/settings.toml", "open <path>/settings.toml"),
        (r"open C:\proj\conf\settings.toml", "open <path>/settings.toml"),
        (r"open \\fileserver\share\conf\settings.toml", "open <path>/settings.toml"),
        ("path=/srv/app/settings.toml", "path=<path>/settings.toml"),
        ("directory:/srv/app/settings.toml", "directory:<path>/settings.toml"),
        (
            "<module 'shop' from '/usr/lib/python3.11/site-packages/shop/__init__.py'>",
            "<module 'shop' from '<path>/__init__.py'>",
        ),
        # not paths
        ("use and/or, 1/2, km/h, TCP/IP", "use and/or, <n>/<n>, km/h, TCP/IP"),
        (
            "request to http://10.0.0.5:8080/health timed out after 3s",
            "request to http://<n>.<n>.<n>.<n>:<n>/health timed out after <n>s",
        ),
        # line numbers, object reprs, addresses, ids, digests
        ('File "conf.py", line 42, in load', 'File "conf.py", line <n>, in load'),
        (
            "<Foo object at 0x7f3a2b1c4d50> != <Bar object at 0x55d0>",
            "<Foo object> != <Bar object>",
        ),
        ("<function check at 0x7f00> failed", "<function check> failed"),
        ("segfault at 0xdeadbeef", "segfault at <hex>"),
        ("session 3f2a1b4c-1234-4abc-9def-0123456789ab not found", "session <uuid> not found"),
        ("blob 0123456789abcdef0123456789abcdef01234567 missing", "blob <hex> missing"),
        ("KeyError: 'user_17'", "KeyError: 'user_<n>'"),
        ("", ""),
    ],
)
def test_messages_are_normalised(
    sql: duckdb.DuckDBPyConnection, message: str, signature: str
) -> None:
    assert normalized(sql, message) == signature


def test_a_signature_is_cut_at_300_characters(sql: duckdb.DuckDBPyConnection) -> None:
    assert len(normalized(sql, "x" * 1000)) == 300
    assert normalized(sql, None) == ""  # type: ignore[arg-type]


# -- a history with known clusters ------------------------------------------------------

#: Six tests that fail on the same missing file in their own tmp_path, in the shapes it
#: takes on each machine; the run number goes into pytest's base temp.
MISSING = "[Errno 2] No such file or directory: '{}'"
TMP_PATHS = [
    "/tmp/pytest-of-root/pytest-{run}/test_a0/data.json",
    "/tmp/pytest-of-runner/pytest-{run}/test_b0/data.json",
    "/private/var/folders/x_/k2j3l4/T/pytest-of-me/pytest-{run}/test_c0/data.json",
    r"C:\\Users\\ci\\AppData\\Local\\Temp\\pytest-of-ci\\pytest-{run}\\test_d0\\data.json",
    "/tmp/tmpab{run}_cd3/data.json",
    "/tmp/pytest-of-root/pytest-{run}/test_f0/sub/data.json",
]


def _failures(run: int) -> list[dict[str, Any]]:
    def failed(nodeid: str, exc_type: str, message: str) -> dict[str, Any]:
        return {
            "nodeid": nodeid,
            "outcome": "failed",
            "exc_type": exc_type,
            "exc_message": message,
            "call_duration": 0.01,  # one after the other: the latest is the last stored
        }

    out = [{"nodeid": "t.py::test_ok", "outcome": "passed"}]
    if run in (1, 3):
        out += [
            failed(
                f"t.py::test_{'abcdef'[i]}",
                "FileNotFoundError",
                MISSING.format(p.format(run=run + 10)),
            )
            for i, p in enumerate(TMP_PATHS)
        ]
        # the same exception on another file: another root cause
        out.append(
            failed(
                "t.py::test_other_file",
                "FileNotFoundError",
                MISSING.format(
                    f"/tmp/pytest-of-root/pytest-{run + 10}/test_other_file0/other.json"
                ),
            )
        )
    # one bad config seen from everywhere: relative and absolute, its line, its object
    config = [
        ("./conf/settings.toml", 42, "0x7f3a2b1c4d50"),
        ("conf/settings.toml", 7, "0x55d0e1"),
        ("/home/ci/work/shop/conf/settings.toml", 42, "0x7f00aa"),
        (r"C:\work\shop\conf\settings.toml", 3, "0x1f"),
    ]
    path, line, address = config[run % 4]
    out.append(
        failed(
            "t.py::test_config",
            "ValueError",
            f"{path} line {line} is invalid: <Config object at {address}>",
        )
    )
    if run == 2:
        out.append(failed("t.py::test_user", "KeyError", f"'user_{run}'"))
        out.append(failed("t.py::test_user_2", "KeyError", "'user_99'"))
        out.append(failed("t.py::test_db", "ConnectionError", "connection refused"))
    return out


@pytest.fixture
def history(store: Store) -> list[str]:
    return write_runs(store, [(_failures(n), {"project": "clusters"}) for n in range(5)])


def test_each_root_cause_is_one_cluster(store: Store, history: list[str]) -> None:
    cur = store.reader()
    clusters = failure_clusters(cur, recent_runs(cur, "clusters", None, 10))
    found = {(c.exc_type, c.signature): (c.count, c.test_count, c.tests) for c in clusters}
    assert found == {
        ("FileNotFoundError", "[Errno <n>] No such file or directory: '<tmp>/data.json'"): (
            12,
            6,
            [f"t.py::test_{x}" for x in "abcdef"],
        ),
        ("FileNotFoundError", "[Errno <n>] No such file or directory: '<tmp>/other.json'"): (
            2,
            1,
            ["t.py::test_other_file"],
        ),
        ("ValueError", "<path>/settings.toml line <n> is invalid: <Config object>"): (
            5,
            1,
            ["t.py::test_config"],
        ),
        ("KeyError", "'user_<n>'"): (2, 2, ["t.py::test_user", "t.py::test_user_2"]),
        ("ConnectionError", "connection refused"): (1, 1, ["t.py::test_db"]),
    }
    # biggest first
    assert [c.count for c in clusters] == [12, 5, 2, 2, 1]


def test_a_cluster_has_its_first_and_last_occurrence_and_trend(
    store: Store, history: list[str]
) -> None:
    cur = store.reader()
    clusters = failure_clusters(cur, recent_runs(cur, "clusters", None, 10))
    missing = clusters[0]
    assert (missing.first_run, missing.example_run) == (history[1], history[3])
    assert missing.first_seen is not None
    assert missing.last_seen is not None
    assert missing.first_seen < missing.last_seen
    assert missing.last_seen.startswith("2027-01-15T11:")  # run 3: T0 + 3 h
    assert missing.example.endswith("test_f0/sub/data.json'")  # the latest real message
    assert (missing.trend, missing.trend_runs) == ([0, 6, 0, 6, 0], 1)  # oldest run first
    config = clusters[1]
    assert config.trend == [1, 1, 1, 1, 1]
    assert (config.first_run, config.example_run) == (history[0], history[4])
    # a smaller window: its runs only
    recent = failure_clusters(cur, recent_runs(cur, "clusters", None, 2))
    assert [(c.signature, c.trend) for c in recent] == [
        ("[Errno <n>] No such file or directory: '<tmp>/data.json'", [6, 0]),
        ("<path>/settings.toml line <n> is invalid: <Config object>", [1, 1]),
        ("[Errno <n>] No such file or directory: '<tmp>/other.json'", [1, 0]),
    ]


def test_a_long_window_groups_its_runs_in_the_trend(
    store: Store, history: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(failures_module, "TREND_POINTS", 2)
    cur = store.reader()
    clusters = failure_clusters(cur, recent_runs(cur, "clusters", None, 10))
    # 5 runs in groups of 3: runs 0-2 and 3-4
    assert [(c.trend, c.trend_runs) for c in clusters[:2]] == [([6, 6], 3), ([3, 2], 3)]


def test_a_long_trend_is_drawn_in_groups_of_runs(db_path: Path) -> None:
    """90 runs draw as 30 characters of 3 runs each; the label keeps every run."""
    plans = [
        (
            [{"nodeid": "t.py::a", "outcome": "failed", "exc_type": "E", "exc_message": "m"}]
            if n in (0, 1, 2, 88)
            else [{"nodeid": "t.py::a", "outcome": "passed"}],
            {"project": "long"},
        )
        for n in range(90)
    ]
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        write_runs(client.app.state.store, plans)
        page = client.get("/failures", params={"project": "long", "runs": 90}).text
        assert ">" + "█" + "▁" * 28 + "▄</span>" in page  # 3 of 3, then 1 of 3
        assert "failures per run: 1, 1, 1, 0," in page


def test_the_api_answers_clusters_with_their_trend(db_path: Path) -> None:
    with TestClient(app=create_app(Settings(db_path=db_path))) as client:
        runs = write_runs(
            client.app.state.store, [(_failures(n), {"project": "clusters"}) for n in range(5)]
        )
        answer = client.get("/api/failures", params={"project": "clusters", "limit": 1})
        assert answer.status_code == 200
        [body] = answer.json()
        assert body["signature"] == "[Errno <n>] No such file or directory: '<tmp>/data.json'"
        assert (body["count"], body["trend"], body["trend_runs"]) == (12, [0, 6, 0, 6, 0], 1)
        assert (body["first_run"], body["example_run"]) == (runs[1], runs[3])
        # the page draws the trend (as text: no script, no SVG) and links the first run
        page = client.get("/failures", params={"project": "clusters"}).text
        row = page.split("&lt;tmp&gt;/data.json")[1].split("</tr>")[0]
        assert 'aria-label="failures per run: 0, 6, 0, 6, 0"' in row
        assert ">▁█▁█▁</span>" in row
        assert f'href="/runs/{runs[1]}"' in row
        # the config cluster: one failure in each of the 5 runs
        config = page.split("&lt;Config object&gt;")[1].split("</tr>")[0]
        assert ">█████</span>" in config
