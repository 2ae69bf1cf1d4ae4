"""A small store with known contents for the page tests: runs, a live run, sessions.

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
T0 = 1_800_000_000.0


@dataclasses.dataclass
class Filled:
    """The ids of what `fill` wrote."""

    passed_run: str
    failed_run: str
    live_run: str
    feature_run: str
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
) -> str:
    maker = RecordMaker()
    start = T0 + number * 3600
    records: list[Any] = [
        maker.start(product=PROJECT, name="pytest", labels={"ci": SCRIPT}),
        maker.make(
            wire.RunStart,
            project=PROJECT,
            branch=branch,
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
                traceback=f'Traceback:\n  File "t.py"\n{SCRIPT}\nAssertionError'
                if failed
                else None,
                worker="gw0",
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


def fill(store: Store) -> Filled:
    """Write the test data: three finished runs, one live run, two app sessions."""
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
    live = RecordMaker()
    live_run = _run(store, 3, outcomes={"t.py::test_ok": "passed"}, finish=False)
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
            app.make(wire.StateUpdate, state={"theme": "dark"}),
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
        live_run=live_run,
        feature_run=feature_run,
        app_session=app.session_id,
        hung_session=hung.session_id,
    )
