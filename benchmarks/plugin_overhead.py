"""The pytest plugin's overhead, measured side by side with its peers.

A generated suite of trivial tests runs, alternately, as plain pytest, with DataCat
installed but off, with ``--datacat`` against a local server, with pytest-reportlog
and with pytest-json-report. Each mode runs several times, interleaved, so that the
machine's drift hits every mode alike; the table gives median wall times, each
median's ratio to plain, and the spread (min-max). Every run loads only the plugin it
measures (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``): in a development environment that
auto-loads hypothesis or faker, their import time would swamp what is measured.

``memory`` compares the peak RSS of a 100,000-test run with and without the plugin.

    python benchmarks/plugin_overhead.py time [--tests 5000] [--runs 7]
    python benchmarks/plugin_overhead.py memory [--tests 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.server import ServerProcess  # noqa: E402

SUITE = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_trivial(i):
    pass
"""


def _write_suite(directory: Path, tests: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    (directory / "test_generated.py").write_text(SUITE.format(n=tests))
    return directory


def _modes(url: str, out: Path) -> dict[str, list[str]]:
    return {
        "plain": [],
        "datacat installed, off": ["-p", "datacat"],
        "--datacat": ["-p", "datacat", "--datacat", f"--datacat-url={url}"],
        "pytest-reportlog": ["-p", "pytest_reportlog", f"--report-log={out / 'log.jsonl'}"],
        "pytest-json-report": [
            "-p",
            "pytest_jsonreport",
            "--json-report",
            f"--json-report-file={out / 'report.json'}",
        ],
    }


def _run(suite: Path, args: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """One pytest run: wall seconds, peak RSS in KiB, and CPU seconds (user + system)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(suite)]
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command]
        if Path("/usr/bin/time").exists()
        else command,
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"pytest failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    fields = done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []
    if len(fields) == 3 and fields[0].isdigit():
        return elapsed, int(fields[0]), float(fields[1]) + float(fields[2])
    return elapsed, 0, 0.0


def _environment(spool: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATACAT_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["DATACAT_SPOOL_DIR"] = str(spool)
    return env


def measure_time(tests: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="datacat-bench-") as tmp:
        work = Path(tmp)
        suite = _write_suite(work / "suite", tests)
        env = _environment(work / "spool")
        with ServerProcess(work / "bench.duckdb") as server:
            modes = _modes(server.url, work)
            for args in modes.values():  # warm the page cache and the .pyc files
                _run(suite, args, env)
            times: dict[str, list[float]] = {name: [] for name in modes}
            cpu: dict[str, list[float]] = {name: [] for name in modes}
            for round_ in range(runs):
                order = list(modes.items())
                if round_ % 2:
                    order.reverse()  # no mode always runs right after the same one
                for name, args in order:
                    wall, _, used = _run(suite, args, env)
                    times[name].append(wall)
                    cpu[name].append(used)
    plain = statistics.median(times["plain"])
    plain_cpu = statistics.median(cpu["plain"]) or 1.0
    rows = {
        name: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "max_s": max(values),
            "ratio_to_plain": statistics.median(values) / plain,
            "cpu_median_s": statistics.median(cpu[name]),
            "cpu_ratio_to_plain": statistics.median(cpu[name]) / plain_cpu,
        }
        for name, values in times.items()
    }
    print(
        f"\n{tests} trivial tests, {runs} interleaved runs per mode; PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}, {os.cpu_count()} CPUs\n"
    )
    print(f"{'mode':26} {'median s':>9} {'min-max s':>15} {'ratio':>7} {'CPU s':>7} {'ratio':>7}")
    for name, row in rows.items():
        print(
            f"{name:26} {row['median_s']:9.2f} {row['min_s']:7.2f}-{row['max_s']:<7.2f}"
            f" {row['ratio_to_plain']:7.3f} {row['cpu_median_s']:7.2f}"
            f" {row['cpu_ratio_to_plain']:7.3f}"
        )
    print("\ntarget: --datacat <= 1.05 x plain, and no more overhead than either peer")
    return {"tests": tests, "runs": runs, "modes": rows}


def measure_memory(tests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="datacat-bench-") as tmp:
        work = Path(tmp)
        suite = _write_suite(work / "suite", tests)
        env = _environment(work / "spool")
        with ServerProcess(work / "bench.duckdb") as server:
            args = ["-p", "datacat", "--datacat", f"--datacat-url={server.url}"]
            plain = _run(suite, [], env)[1]
            recorded = _run(suite, args, env)[1]
    extra_mb = (recorded - plain) / 1024
    print(
        f"\npeak RSS, {tests} trivial tests: plain {plain / 1024:.1f} MB,"
        f" --datacat {recorded / 1024:.1f} MB, difference {extra_mb:+.1f} MB (target <= 30 MB)"
    )
    return {"tests": tests, "plain_kib": plain, "datacat_kib": recorded, "extra_mb": extra_mb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    timing = sub.add_parser("time", help="wall time of each mode, interleaved")
    timing.add_argument("--tests", type=int, default=5000)
    timing.add_argument("--runs", type=int, default=7)
    memory = sub.add_parser("memory", help="peak RSS with and without the plugin")
    memory.add_argument("--tests", type=int, default=100_000)
    for command in (timing, memory):
        command.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.command == "time":
        figures = measure_time(args.tests, args.runs)
    else:
        figures = measure_memory(args.tests)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
