"""A small store with known contents for the page tests: runs, a partial run, a live
run, sessions, and a hung run of another project.

The node id and parameters of one test hold markup, quotes, unicode and a newline, so
every page that shows it proves it is escaped.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from datacat_client import wire
from datacat_server.store import Store
from tests.server.records import RecordMaker

#: What an attacker would like a page to run.
SCRIPT = "<script>alert(1)</script>"
EVIL_PARAM = f"{SCRIPT}-\"q\"-'s'-ünï ☃-line1\nline2"
EVIL_NODEID = f"test_evil.py::test_evil[{EVIL_PARAM}]"
PROJECT = "shop"
#: Another project, with one run that hangs: it must not show on the shop's overview.
OTHER_PROJECT = "billing"
T0 = 1_800_000_000.0
#: A pytest traceback whose explanation (the ``E`` lines) comes after many frames.
LONG_TRACEBACK = (
    "".join(f"t.py:{n}: in helper_{n}\n    return helper_{n + 1}()\n" for n in range(40))
    + "    def helper_40():\n>       assert compute() == 2\n"
    + "E       assert 1 == 2\nE        +  where 1 = compute()\n\nt.py:80: AssertionError"
)


@dataclasses.dataclass
class Filled:
    """The ids of what `fill` wrote."""

    passed_run: str
    failed_run: str
    partial_run: str
    live_run: str
    feature_run: str
    other_project_run: str
    app_session: str
    hung_session: str


def _run(
    store: Store,
    number: int,
    *,
    outcomes: dict[str, str],
    branch: str = "main",
    commit: str = "c0ffee1234567890",
    finish: bool = True,
    partial: bool = False,
    project: str = PROJECT,
) -> str:
    maker = RecordMaker()
    start = T0 + number * 3600
    records: list[Any] = [
        maker.start(product=project, name="pytest", labels={"ci": SCRIPT}),
        maker.make(
            wire.RunStart,
            project=project,
            branch=branch,
            partial=partial,
            args=["-k", "test_only_here"] if partial else [],
            commit=commit,
            ci_provider="github-actions",
            ci_url="javascript:alert(1)" if number == 1 else "https://ci.example/run/1",
            python_version="3.11.7",
            platform="Linux-x86_64",
            timestamp=start,
        ),
    ]
    for index, (nodeid, outcome) in enumerate(outcomes.items()):
        failed = outcome in ("failed", "error")
        records.append(
            maker.result(
                nodeid,
                outcome,
                param_id=EVIL_PARAM if nodeid == EVIL_NODEID else "",
                call_duration=0.01 * (index + 1) + (1.5 if nodeid.endswith("slow") else 0),
                started_at=start + index,
                stopped_at=start + index + 0.5,
                timestamp=start + index + 1,
                exc_type="AssertionError" if failed else None,
                exc_message=f"boom {SCRIPT} 42" if failed else None,
                traceback=(LONG_TRACEBACK if nodeid == "t.py::test_flaky" else _SHORT_TRACEBACK)
                if failed
                else None,
                worker="gw0",
                cpu_time=0.005 * (index + 1),
                rss_delta=1_572_864 * (index + 1),
            )
        )
    if finish:
        passed = sum(o == "passed" for o in outcomes.values())
        failed = sum(o == "failed" for o in outcomes.values())
        records.append(
            maker.make(
                wire.RunFinish,
                exit_status=1 if failed else 0,
                status="failed" if failed else "passed",
                counts={"passed": passed, "failed": failed} if failed else {"passed": passed},
                duration=12.5,
                timestamp=start + 60,
            )
        )
        records.append(maker.make(wire.SessionEnd, timestamp=start + 61))
    store.write_sync(records)
    return maker.session_id


_SHORT_TRACEBACK = f'Traceback:\n  File "t.py"\n{SCRIPT}\nAssertionError'


def fill(store: Store) -> Filled:
    """Write the test data: a hung run of another project, three finished runs, a
    partial run, one live run, two app sessions."""
    other_project_run = _run(
        store, -1, project=OTHER_PROJECT, outcomes={"b.py::test_bill": "passed"}, finish=False
    )
    store.write_sync(
        [
            RecordMaker(other_project_run, start=1000).event(
                "application_appears_hung", {"nodeid": "b.py::test_pay", "threads": []}
            )
        ]
    )
    passed_run = _run(
        store,
        0,
        outcomes={
            "t.py::test_ok": "passed",
            "t.py::test_flaky": "passed",
            "t.py::test_slow": "passed",
            EVIL_NODEID: "passed",
        },
    )
    failed_run = _run(
        store,
        1,
        outcomes={
            "t.py::test_ok": "passed",
            "t.py::test_flaky": "failed",
            "t.py::test_slow": "passed",
            EVIL_NODEID: "failed",
        },
    )
    feature_run = _run(
        store,
        2,
        branch="feature-x",
        commit="feedbeef00000000",
        outcomes={"t.py::test_ok": "passed", "t.py::test_flaky": "passed"},
    )
    # `-k test_only_here`: one test, failed. Plotted like a whole run, a 0 % cliff.
    partial_run = _run(store, 3, partial=True, outcomes={"t.py::test_only_here": "failed"})
    live = RecordMaker()
    live_run = _run(store, 4, outcomes={"t.py::test_ok": "passed"}, finish=False)
    live.session_id = live_run
    live.seq = 1000
    store.write_sync(
        [
            live.make(wire.TestStart, nodeid="t.py::test_stuck", worker="gw1"),
            live.event(
                "application_appears_hung",
                {
                    "nodeid": "t.py::test_stuck",
                    "seconds_since_heartbeat": 61.5,
                    "timeout": 60,
                    "worker": "gw1",
                    "threads": [{"name": "MainThread", "stack": ['  File "stuck.py"\n', SCRIPT]}],
                },
            ),
        ]
    )

    app = RecordMaker()
    now = time.time()
    store.write_sync(
        [
            app.start(
                name="editor",
                product="EditorApp",
                version="1.2",
                labels={"channel": "beta", "evil": SCRIPT},
                state={"window": {"open": ["Main"], "title": SCRIPT}, SCRIPT: "key"},
            ),
            app.make(wire.StateUpdate, state={"window": {"open": ["Main", "Inspector"]}}),
            app.make(wire.StateUpdate, state={"theme": "dark", "note": "two\nlines\n"}),
            app.event("window_opened", {"window": "Inspector", "note": SCRIPT}),
            app.event(
                "exception",
                {
                    "type": "ValueError",
                    "message": f"bad value {SCRIPT}",
                    "traceback": [
                        "Traceback (most recent call last):\n",
                        f"ValueError: {SCRIPT}\n",
                    ],
                    "cycle": 3,
                },
            ),
            app.make(wire.Metric, name="fps", value=59.5, tags=["gpu"], timestamp=now - 3),
            app.make(wire.Metric, name="fps", value=30.0, tags=["gpu"], timestamp=now - 2),
            app.make(wire.Metric, name="memory_mb", value=120.0, timestamp=now - 1),
            app.make(wire.Metric, name="latency", value=250.0, unit="ms", timestamp=now - 1),
            app.make(wire.SessionEnd),
        ]
    )
    hung = RecordMaker()
    store.write_sync(
        [
            hung.start(name="stuck", product="Worker"),
            hung.event("application_appears_hung", {"seconds_since_heartbeat": 90}),
        ]
    )
    return Filled(
        passed_run=passed_run,
        failed_run=failed_run,
        partial_run=partial_run,
        live_run=live_run,
        feature_run=feature_run,
        other_project_run=other_project_run,
        app_session=app.session_id,
        hung_session=hung.session_id,
    )
