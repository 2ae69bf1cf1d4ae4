"""``datacat demo``: a fresh database with real data in it, then the server, in a minute.

It starts the server, runs the sample suite (``examples/sample_suite``) several times
through the pytest plugin — on a few commits and branches, with its deterministic flaky
tests, a test that regresses, and a test that hangs for a moment — and the client
examples (sessions with state, events, metrics, a hang), then keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datacat_server.store import StoreBase

__all__ = ["run_demo"]

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent


def _find(installed: str, in_repo: str) -> Path | None:
    for candidate in (_HERE / installed, _REPO / in_repo):
        if candidate.exists():
            return candidate
    return None


def _plan(runs: int) -> list[dict[str, str]]:
    """Each run's environment: seed, branch, commit, slowdown (reproducible)."""
    plan = []
    for i in range(runs):
        feature = i % 4 == 3
        plan.append(
            {
                "SAMPLE_SEED": str(i),
                "SAMPLE_HANG": "1.3" if i % 3 == 0 else "0.2",
                # main regressed in its later commits: one test twice as slow.
                "SAMPLE_SLOWDOWN": "2" if not feature and i >= runs // 2 else "1",
                "GITHUB_ACTIONS": "true",
                "GITHUB_REF_NAME": "feature/search" if feature else "main",
                # Two runs per commit (so that flaky tests show on the same commit).
                "GITHUB_SHA": hashlib.sha1(
                    f"demo-{i // 2}".encode(), usedforsecurity=False
                ).hexdigest(),
                "GITHUB_SERVER_URL": "https://ci.example",
                "GITHUB_REPOSITORY": "demo/shop",
                "GITHUB_RUN_ID": str(1000 + i),
            }
        )
    return plan


def _run_suite(
    suite: Path, url: str, env: dict[str, str], spool: Path
) -> subprocess.CompletedProcess[str]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATACAT_", "GITHUB_"))},
        **env,
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "DATACAT_SPOOL_DIR": str(spool),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "datacat",
            str(suite),
            "--datacat",
            f"--datacat-url={url}",
            "--datacat-project=shop",
            "--datacat-hang-timeout=1",
            "--datacat-label=demo=yes",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=full,
    )


def _run_examples(examples: Path, url: str, spool: Path) -> None:
    env = {**os.environ, "DATACAT_URL": url, "DATACAT_SPOOL_DIR": str(spool)}
    for name in ("window_tracking_example.py", "complete_example.py", "heartbeat_example.py"):
        script = examples / name
        if script.exists():
            subprocess.run(
                [sys.executable, str(script)],
                capture_output=True,
                timeout=120,
                check=False,
                env=env,
            )


def _stored_runs(store: StoreBase) -> int:
    rows = store.reader().execute("SELECT count(*) FROM runs").fetchall()
    return int(rows[0][0])


def run_demo(db: Path, *, runs: int, host: str, port: int) -> int:
    """Fill ``db`` (which must be new) and serve it until interrupted."""
    import uvicorn

    from datacat_server.app import create_app
    from datacat_server.http_head import bounded_protocol
    from datacat_server.port import PortUnavailable, check_port
    from datacat_server.settings import Settings
    from datacat_server.store import open_store

    if db.exists():
        sys.stderr.write(f"datacat demo: {db} exists; the demo fills a new database\n")
        return 2
    suite = _find("demo_suite", "examples/sample_suite")
    if suite is None:
        sys.stderr.write("datacat demo: the sample suite is not installed with this copy\n")
        return 2
    try:
        # Before the store: else the sample runs would go to whatever answers there.
        check_port(host, port)
    except PortUnavailable as exc:
        sys.stderr.write(f"datacat demo: {exc}\n")
        return 1
    settings = Settings(db_path=db, host=host, port=port)
    store = open_store(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, store=store),
            host=host,
            port=port,
            log_level="warning",
            http=bounded_protocol(settings),
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            sys.stderr.write(f"datacat demo: the server did not start on {url}\n")
            return 1
        spool = db.parent / f".{db.name}.spool"
        print(f"DataCat demo: filling {db} …", flush=True)
        started = time.monotonic()
        for i, env in enumerate(_plan(runs), 1):
            done = _run_suite(suite, url, env, spool)
            if _stored_runs(store) < i:
                sys.stderr.write(
                    f"datacat demo: test run {i} was not recorded (pytest exited with"
                    f" {done.returncode}):\n{(done.stdout + done.stderr)[-2000:]}\n"
                )
                return 1
            print(f"  test run {i}/{runs} recorded ({env['GITHUB_REF_NAME']})", flush=True)
        examples = _find("demo_examples", "examples")
        if examples is not None:
            _run_examples(examples, url, spool)
            print("  client examples recorded", flush=True)
        print(
            f"Ready in {time.monotonic() - started:.0f} s: open {url}/ (Ctrl-C stops)", flush=True
        )
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
    return 0
