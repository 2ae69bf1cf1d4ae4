#!/usr/bin/env python
"""Ingest benchmarks for DataCat, measured side by side in one run.

Sub-commands (``python benchmarks/ingest.py all`` runs everything):

``http``
    End-to-end ingest: pre-encoded batches of 1,000 ``wire.TestResult`` records posted
    to ``POST /api/ingest`` of a real ``datacat serve`` on a fresh DuckDB file; the
    answer comes after commit. One sender, then four concurrent senders (threads, each
    with its own ``httpx.Client`` and its own session); ``--senders`` picks others.
``raw``
    The ceiling: the same rows appended in this process to a fresh DuckDB file with the
    same schema, one ``BEGIN; INSERT results; INSERT result_details; COMMIT`` per
    1,000-record batch, from Arrow tables built before the timer.
``caller``
    What the client costs its caller: ``Session.log_event``, ``log_metric`` and
    ``update_state``, timed call by call, against the synchronous one-request-per-record
    ``DatacatClient.log_event``.

With ``all`` (or ``http`` and ``raw`` together), the repetitions of the HTTP and raw
benchmarks are interleaved, so that the ratios compare figures taken under the same
machine conditions. A table is printed at the end; ``--json PATH`` saves the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import httpx  # noqa: E402
import msgspec  # noqa: E402

from datacat_client import DatacatClient, create_session, wire  # noqa: E402
from datacat_server.store.build import result_tables, test_table  # noqa: E402
from datacat_server.store.migrations import apply_migrations  # noqa: E402
from datacat_server.store.staging import ResultBlock  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

# -- what is measured ------------------------------------------------------------------

BATCH = 1_000  # records per batch
PROJECT = "bench"
N_MODULES = 50
N_FUNCS = 40  # per module
N_PARAMS = 5  # per function: 50 x 40 x 5 = 10,000 distinct tests
N_TESTS = N_MODULES * N_FUNCS * N_PARAMS
FAIL_RATE = 0.02

TARGET_HTTP = 100_000.0  # records/s
TARGET_RATIO = 0.30  # end-to-end / raw
TARGET_CALL_US = 5.0  # µs per buffered call
TARGET_SPEEDUP = 100.0  # sync call / buffered call

MAX_BATCHES_PER_REP = 2_000  # bound: 2M records per repetition at most
MIN_BATCHES_PER_REP = 20

_TRACEBACK = """\
Traceback (most recent call last):
  File "/src/app/tests/test_mod_{m}.py", line {line}, in test_func_{f}
    result = compute(fixture_value, param={p})
  File "/src/app/app/core.py", line 412, in compute
    return _reduce(items, key=key, strict=strict)
  File "/src/app/app/core.py", line 388, in _reduce
    assert total == expected, f"totals differ: {{total}} != {{expected}}"
AssertionError: totals differ: {got} != {want}
assert {got} == {want}
 +  where {got} = sum([{got_items}])
"""


def nodeid_of(k: int) -> str:
    """The k-th test of the benchmark suite (k < N_TESTS)."""
    m, rest = divmod(k, N_FUNCS * N_PARAMS)
    f, p = divmod(rest, N_PARAMS)
    return f"tests/test_mod_{m}.py::test_func_{m * N_FUNCS + f}[param-{p}]"


_NODEIDS = [nodeid_of(k) for k in range(N_TESTS)]
_MARKERS: list[list[str]] = [[], [], [], ["slow"], ["parametrize"], ["slow", "network"]]


def make_results(
    session_id: str, *, first_seq: int, first_test: int, n: int, t0: float, rng: random.Random
) -> list[wire.TestResult]:
    """``n`` realistic results of one session: 2 % failures carrying text.

    File, function and parameter id are left out: the server reads them off the node id.
    """
    out: list[wire.TestResult] = []
    now = t0
    for i in range(n):
        k = (first_test + i) % N_TESTS
        setup = rng.expovariate(2000.0)
        call = rng.expovariate(200.0)
        teardown = rng.expovariate(5000.0)
        started = now
        now += setup + call + teardown
        failed = rng.random() < FAIL_RATE
        m, rest = divmod(k, N_FUNCS * N_PARAMS)
        f, p = divmod(rest, N_PARAMS)
        line = 10 + (rest // N_PARAMS) * 12
        if failed:
            got, want = rng.randrange(1000), rng.randrange(1000, 2000)
            exc_type: str | None = "AssertionError"
            exc_message: str | None = f"totals differ: {got} != {want}"
            traceback: str | None = _TRACEBACK.format(
                m=m,
                f=m * N_FUNCS + f,
                p=p,
                line=line + 3,
                got=got,
                want=want,
                got_items=", ".join(str(rng.randrange(100)) for _ in range(8)),
            )
        else:
            exc_type = exc_message = traceback = None
        out.append(
            wire.TestResult(
                session_id=session_id,
                seq=first_seq + i,
                timestamp=now,
                nodeid=_NODEIDS[k],
                outcome="failed" if failed else "passed",
                line=line,
                markers=_MARKERS[k % len(_MARKERS)],
                started_at=started,
                stopped_at=now,
                setup_duration=setup,
                call_duration=call,
                teardown_duration=teardown,
                exc_type=exc_type,
                exc_message=exc_message,
                traceback=traceback,
                cpu_time=call * 0.9,
                rss_delta=rng.randrange(-4096, 65536),
            )
        )
    return out


# -- small helpers -----------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


#: Set by Ctrl-C. DuckDB checks for signals while it runs a statement and may swallow
#: the KeyboardInterrupt (seen here: the run went on), so loops also check this flag.
INTERRUPTED = threading.Event()


def _on_sigint(signum: int, frame: object) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


def check_interrupt() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


@dataclasses.dataclass
class Series:
    """Repeated measurements of one figure."""

    name: str
    unit: str
    values: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    records: list[int] = dataclasses.field(default_factory=list)
    #: Per repetition: CPU use (cores), and for the raw benchmark the per-batch steps.
    cpu: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    steps_ms: list[dict[str, float]] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    def as_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values, default=math.nan),
            "max": max(self.values, default=math.nan),
            "values": self.values,
            "seconds": self.seconds,
            "records": self.records,
            "cpu": self.cpu,
            "steps_ms": self.steps_ms,
        }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    """Read-only git queries, for the record of what code was measured."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
            # git status must not even refresh the index: this benchmark writes nothing.
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_facts() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 0
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "loadavg_at_start": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "duckdb": duckdb.__version__,
        "litestar": _version("litestar"),
        "uvicorn": _version("uvicorn"),
        "httpx": _version("httpx"),
        "msgspec": _version("msgspec"),
        "pyarrow": _version("pyarrow"),
        "uvloop": _version("uvloop") if importlib.util.find_spec("uvloop") else "not installed",
        "httptools": (
            _version("httptools") if importlib.util.find_spec("httptools") else "not installed"
        ),
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "(unset)"),
        "git_head": _git("rev-parse", "--short", "HEAD"),
        "git_modified": [
            line[3:]
            for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()
            if line[3:].startswith(("datacat_server/", "datacat_client/"))
        ],
    }


@contextmanager
def py_spy(pid: int, path: Path | None) -> Iterator[None]:
    """Record a raw py-spy profile of ``pid`` while the block runs (if ``path``)."""
    if path is None:
        yield
        return
    exe = Path(sys.executable).with_name("py-spy")
    # Only samples of the thread holding the GIL, without pausing the server: where the
    # server's Python time goes (DuckDB releases the GIL while it works).
    cmd = [str(exe), "record", "-p", str(pid), "-f", "raw", "-o", str(path)]
    cmd += ["--threads", "--gil", "--nonblocking", "--rate", "250"]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        time.sleep(0.5)  # let it attach
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if path.exists():
                log(f"py-spy profile of the server (pid {pid}) written to {path}")
            else:
                err.seek(0)
                log(f"py-spy wrote no profile: {err.read().decode(errors='replace')[-500:]}")


# -- CPU accounting (Linux /proc): who was busy during a repetition -------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclasses.dataclass
class CpuSample:
    wall: float
    machine: tuple[int, int, int]  # busy, idle (with iowait), steal: in ticks
    threads: dict[int, int]  # server thread id -> CPU ticks
    client: float  # CPU seconds of this process


def _machine_ticks() -> tuple[int, int, int]:
    try:
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
    except OSError:
        return (0, 0, 0)
    v += [0] * (8 - len(v))
    return (v[0] + v[1] + v[2] + v[5] + v[6], v[3] + v[4], v[7])


def _thread_ticks(pid: int) -> dict[int, int]:
    out: dict[int, int] = {}
    if pid <= 0:
        return out
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(tid)] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


def cpu_sample(pid: int) -> CpuSample:
    t = os.times()
    return CpuSample(time.perf_counter(), _machine_ticks(), _thread_ticks(pid), t.user + t.system)


def cpu_delta(a: CpuSample, b: CpuSample, pid: int) -> dict[str, Any]:
    """Cores used between two samples: server (main thread, other threads), client."""
    wall = max(b.wall - a.wall, 1e-9)
    per = {tid: (b.threads[tid] - a.threads.get(tid, 0)) / _TICK / wall for tid in b.threads}
    others = sorted((v for tid, v in per.items() if tid != pid), reverse=True)
    busy, idle, steal = (y - x for x, y in zip(a.machine, b.machine, strict=True))
    total = max(busy + idle + steal, 1)
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    server = sum(per.values())
    client = (b.client - a.client) / wall
    return {
        "server_cores": server,
        "server_main_thread_cores": per.get(pid, 0.0),
        "server_other_threads_cores": others[:3],
        "client_cores": client,
        "machine_busy": busy / total,
        "machine_steal": steal / total,
        # What the rest of the machine (other programs) used meanwhile.
        "other_processes_cores": max(0.0, busy / total * ncpu - server - client),
    }


def wait_quiet(limit: float) -> float:
    """Wait for 2 s with the machine under 25 % busy, at most ``limit`` seconds.

    Returns how busy the last 2 s were (this box is shared: say so in the report).
    """
    deadline = time.monotonic() + limit
    busy = 1.0
    while True:
        a = _machine_ticks()
        time.sleep(2.0)
        b = _machine_ticks()
        total = max(sum(b) - sum(a), 1)
        busy = (b[0] - a[0] + b[2] - a[2]) / total
        if busy < 0.25 or time.monotonic() >= deadline:
            log(f"machine {busy * 100:.0f} % busy before the start")
            return busy


# -- 1. end-to-end over HTTP -----------------------------------------------------------


@dataclasses.dataclass
class _SenderPlan:
    session_id: str
    first: bytes  # SessionStart + 999 results: sent before the timer
    batches: list[bytes]  # timed
    end: bytes  # SessionEnd: sent after the timer


def encode_batch(records: Sequence[wire.Record], fmt: int) -> bytes:
    """A batch in wire format 1 (records) or 2 (results as columns)."""
    if fmt == 2:
        return wire.encode_columnar(records)
    return wire.encode(wire.Batch(records=list(records)))


def _plan_sender(n_batches: int, rng: random.Random, first_test: int, fmt: int) -> _SenderPlan:
    sid = str(uuid.uuid4())
    t0 = time.time() - 3600.0
    start = wire.SessionStart(
        session_id=sid, seq=0, timestamp=t0, name="ingest-benchmark", product=PROJECT
    )
    first_records: list[wire.Record] = [
        start,
        *make_results(sid, first_seq=1, first_test=first_test, n=BATCH - 1, t0=t0, rng=rng),
    ]
    seq = BATCH
    test = first_test + BATCH - 1
    batches = []
    for _ in range(n_batches):
        check_interrupt()
        records = make_results(
            sid, first_seq=seq, first_test=test, n=BATCH, t0=t0 + seq * 0.01, rng=rng
        )
        batches.append(encode_batch(records, fmt))
        seq += BATCH
        test += BATCH
    end = wire.SessionEnd(session_id=sid, seq=seq, timestamp=t0 + seq * 0.01)
    return _SenderPlan(
        session_id=sid,
        first=wire.encode(wire.Batch(records=first_records)),
        batches=batches,
        end=wire.encode(wire.Batch(records=[end])),
    )


_ack_decoder = msgspec.json.Decoder(wire.BatchAck)
_JSON_HEADERS = {"Content-Type": "application/json"}
#: Where each wire format is posted.
INGEST_PATHS = {1: "/api/ingest", 2: "/api/ingest/v2"}


def _post(client: httpx.Client, body: bytes, path: str = "/api/ingest") -> int:
    response = client.post(path, content=body, headers=_JSON_HEADERS)
    if response.status_code != 200:
        raise BenchError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return _ack_decoder.decode(response.content).accepted


def http_repetition(
    url: str, pid: int, senders: int, batches_per_sender: int, seed: int, *, fmt: int = 2
) -> tuple[float, int, dict[str, Any]]:
    """One timed repetition; returns (seconds, records acknowledged, CPU use)."""
    rng = random.Random(seed)
    plans = [
        _plan_sender(batches_per_sender, rng, first_test=i * (N_TESTS // senders), fmt=fmt)
        for i in range(senders)
    ]
    path = INGEST_PATHS[fmt]
    clients = [httpx.Client(base_url=url, timeout=60.0) for _ in range(senders)]
    barrier = threading.Barrier(senders + 1, timeout=60.0)
    accepted = [0] * senders
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            _post(clients[i], plans[i].first)  # the session's start, before the timer
            barrier.wait()
            count = 0
            for body in plans[i].batches:
                if INTERRUPTED.is_set():
                    return
                count += _post(clients[i], body, path)
            accepted[i] = count
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=run, args=(i,), name=f"bench-sender-{i}", daemon=True)
        for i in range(senders)
    ]
    try:
        gc.collect()
        for thread in threads:
            thread.start()
        with suppress(threading.BrokenBarrierError):
            barrier.wait()
        started = time.perf_counter()
        before = cpu_sample(pid)
        for thread in threads:
            thread.join(timeout=600.0)
        elapsed = time.perf_counter() - started
        cpu = cpu_delta(before, cpu_sample(pid), pid)
        check_interrupt()
        if any(thread.is_alive() for thread in threads):
            raise BenchError("a sender did not finish within 600 s")
        if errors:
            raise BenchError(f"a sender failed: {errors[0]!r}") from errors[0]
        for client, plan in zip(clients, plans, strict=True):
            _post(client, plan.end)  # after the timer: leave no session open
    finally:
        for client in clients:
            client.close()
    expected = senders * batches_per_sender * BATCH
    if sum(accepted) != expected:
        raise BenchError(f"the server accepted {sum(accepted)} of {expected} records")
    # CPU time per 1,000 records: less disturbed by other programs than the rate is.
    per_batch = elapsed * 1e3 / (expected / BATCH)
    cpu["server_cpu_ms_per_batch"] = cpu["server_cores"] * per_batch
    cpu["server_main_thread_cpu_ms_per_batch"] = cpu["server_main_thread_cores"] * per_batch
    top = cpu["server_other_threads_cores"]
    cpu["server_busiest_other_thread_cpu_ms_per_batch"] = (top[0] if top else 0.0) * per_batch
    cpu["client_cpu_ms_per_batch"] = cpu["client_cores"] * per_batch
    return elapsed, expected, cpu


# -- 2. raw DuckDB ---------------------------------------------------------------------


@dataclasses.dataclass
class RawBatches:
    """Arrow tables for the raw benchmark, and what building them cost (untimed there)."""

    tables: list[tuple[Any, Any | None]]
    #: Seconds per batch: msgspec decode of the encoded batch, and the Arrow build
    #: (`result_tables`): the server's two Python steps before DuckDB.
    decode: list[float]
    build: list[float]


def _block(sid: int, records: Sequence[wire.TestResult]) -> ResultBlock:
    """Results as the writer holds them: columns of one session."""
    columns = {
        name: [getattr(r, name) for r in records]
        for name in ("timestamp", "nodeid", "outcome", *wire.RESULT_DEFAULTS)
    }
    return ResultBlock(sid, PROJECT, [r.seq for r in records], columns)


class RawStore:
    """A fresh DuckDB file with DataCat's schema and the benchmark's tests registered."""

    def __init__(self, path: Path) -> None:
        self.con = duckdb.connect(str(path))
        apply_migrations(self.con)
        rng = random.Random(0)
        sid = str(uuid.uuid4())
        protos = make_results(sid, first_seq=0, first_test=0, n=N_TESTS, t0=time.time(), rng=rng)
        block = _block(0, protos)
        new_tests = {(PROJECT, r.nodeid): (i + 1, block, i) for i, r in enumerate(protos)}
        self.test_ids = {key: test_id for key, (test_id, _, _) in new_tests.items()}
        now_us = time.time_ns() // 1000
        self._append("INSERT INTO tests SELECT * FROM batch", test_table(new_tests, now_us))
        self.next_sid = 1

    def _append(self, sql: str, batch: Any) -> None:
        # DuckDB finds the Arrow table through the local name ``batch`` (a replacement
        # scan), as the server's writer does.
        self.con.execute(sql)

    def prepare(self, n_batches: int, seed: int) -> RawBatches:
        """Arrow tables for ``n_batches`` batches of one new session, built untimed.

        Each batch goes the server's way: encoded, decoded, then built into Arrow; the
        decode and the build are timed for the breakdown.
        """
        rng = random.Random(seed)
        sid_text = str(uuid.uuid4())
        sid = self.next_sid
        self.next_sid += 1
        t0 = time.time() - 3600.0
        out = RawBatches([], [], [])
        clock = time.perf_counter
        for b in range(n_batches):
            check_interrupt()
            seq = (b + 1) * BATCH
            records = make_results(
                sid_text,
                first_seq=seq,
                first_test=b * BATCH,
                n=BATCH,
                t0=t0 + seq * 0.01,
                rng=rng,
            )
            body = wire.encode_columnar(records)
            c0 = clock()
            decoded = wire.columnar_decoder.decode(body).results[0]
            c1 = clock()
            columns = {
                name: value
                for name in decoded.__struct_fields__
                if name not in ("session_id", "seq") and (value := getattr(decoded, name))
            }
            blocks = [ResultBlock(sid, PROJECT, decoded.seq, columns)]
            out.tables.append(result_tables(blocks, self.test_ids, time.time_ns() // 1000))
            c2 = clock()
            out.decode.append(c1 - c0)
            out.build.append(c2 - c1)
        return out

    def run(self, tables: Sequence[tuple[Any, Any | None]]) -> tuple[float, dict[str, float]]:
        """Append the batches, one transaction each; returns the seconds taken and the
        median milliseconds per batch of each statement."""
        execute = self.con.execute
        append = self._append
        clock = time.perf_counter
        n = len(tables)
        begin, results_ins, details_ins, commit = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        gc.collect()
        started = clock()
        for i, (results, details) in enumerate(tables):
            if INTERRUPTED.is_set():
                raise KeyboardInterrupt
            c0 = clock()
            execute("BEGIN TRANSACTION")
            c1 = clock()
            append("INSERT INTO results SELECT * FROM batch", results)
            c2 = clock()
            if details is not None:
                append("INSERT INTO result_details SELECT * FROM batch", details)
            c3 = clock()
            execute("COMMIT")
            c4 = clock()
            begin[i], results_ins[i], details_ins[i], commit[i] = c1 - c0, c2 - c1, c3 - c2, c4 - c3
        elapsed = clock() - started
        ms = {
            "begin": statistics.median(begin) * 1e3,
            "insert_results": statistics.median(results_ins) * 1e3,
            "insert_details": statistics.median(details_ins) * 1e3,
            "commit": statistics.median(commit) * 1e3,
        }
        return elapsed, ms

    def close(self) -> None:
        self.con.close()


# -- 3. caller cost ----------------------------------------------------------------------


def _timed_calls(call: Callable[[int], object], n: int) -> list[int]:
    """Nanoseconds of each of ``n`` calls, one ``perf_counter_ns`` pair around each."""
    clock = time.perf_counter_ns
    out = [0] * n
    for chunk in range(0, n, 1000):
        check_interrupt()
        for i in range(chunk, min(n, chunk + 1000)):
            t0 = clock()
            call(i)
            out[i] = clock() - t0
    return out


def _summary_us(ns: list[int]) -> dict[str, float]:
    ordered = sorted(ns)
    n = len(ordered)
    return {
        "calls": n,
        "median_us": statistics.median(ordered) / 1000.0,
        "p90_us": ordered[min(n - 1, int(n * 0.90))] / 1000.0,
        "p99_us": ordered[min(n - 1, int(n * 0.99))] / 1000.0,
        "max_us": ordered[-1] / 1000.0,
        "mean_us": sum(ordered) / n / 1000.0,
    }


METHODS = ("Session.log_event", "Session.log_metric", "Session.update_state")
SYNC = "DatacatClient.log_event (sync)"
BIG_QUEUE = 200_000


def _caller_session(
    url: str, spool_dir: Path, sender_options: dict[str, Any] | None
) -> tuple[Any, dict[str, Callable[[int], object]]]:
    session = create_session(
        url,
        name="caller-benchmark",
        product=PROJECT,
        spool_dir=spool_dir,
        flush_timeout=60.0,
        sender_options=sender_options,
    )
    data = {"step": 0, "phase": "train", "ok": True}
    tags = ["gpu=0"]
    methods: dict[str, Callable[[int], object]] = {
        "Session.log_event": lambda i: session.log_event("step", data),
        "Session.log_metric": lambda i: session.log_metric("loss", 0.5 + i * 1e-6, tags),
        "Session.update_state": lambda i: session.update_state({"progress": {"step": i}}),
    }
    return session, methods


def _measure_session(
    session: Any, methods: dict[str, Callable[[int], object]], calls: int, label: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not session.flush(30.0):
        raise BenchError("the caller session's start was not acknowledged")
    for name, call in methods.items():
        before = session.stats
        gc.collect()
        stats: dict[str, Any] = dict(_summary_us(_timed_calls(call, calls)))
        drained = session.flush(120.0)
        after = session.stats
        stats.update(
            sent=after.sent - before.sent,
            spooled=after.spooled - before.spooled,
            dropped=after.dropped - before.dropped,
            drained=drained,
        )
        out[name] = stats
        log(
            f"  {label} {name}: median {stats['median_us']:.2f} µs, p99"
            f" {stats['p99_us']:.2f} µs ({stats['sent']:,} sent, {stats['spooled']:,} spooled)"
        )
    return out


def _sync_calls(client: DatacatClient, session_id: str, n: int) -> dict[str, float]:
    """The seed's style: one synchronous request (and one commit) per record."""
    client.log_event(session_id, "warm-up", None)  # connection set-up, untimed
    return _summary_us(_timed_calls(lambda i: client.log_event(session_id, "step", {"i": i}), n))


def caller_benchmark(url: str, tmp: Path, calls: int, sync_calls: int) -> dict[str, Any]:
    """Buffered calls with the default sender, then with a queue that never overflows,
    then the synchronous one-request-per-record call. Every session is ended and closed."""
    clock_overhead = _summary_us(_timed_calls(lambda i: None, 100_000))["median_us"]
    out: dict[str, Any] = {
        "clock_overhead_us": clock_overhead,
        "calls_per_method": calls,
        "big_queue_size": BIG_QUEUE,
    }
    for label, options in (("default", None), ("big_queue", {"max_queue": BIG_QUEUE})):
        spool = tmp / f"spool-{label}"
        session, methods = _caller_session(url, spool, options)
        client = DatacatClient(url)
        try:
            out[label] = _measure_session(session, methods, calls, label)
            if label == "default":
                sync = _sync_calls(client, session.session_id, sync_calls)
                out[SYNC] = sync
                log(f"  {SYNC}: median {sync['median_us']:.1f} µs")
            session.end()
            out[label]["flushed_at_end"] = session.flush(60.0)
        finally:
            session.close(30.0)
            client.close()
        out[label]["spool_left"] = sorted(p.name for p in spool.rglob("*") if p.is_file())
    return out


# -- driver ------------------------------------------------------------------------------


@dataclasses.dataclass
class Results:
    facts: dict[str, Any]
    config: dict[str, Any]
    series: dict[str, Series] = dataclasses.field(default_factory=dict)
    caller: dict[str, Any] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "config": self.config,
            "series": {k: s.as_json() for k, s in self.series.items()},
            "caller": self.caller,
            "ratios": ratios(self),
            "notes": self.notes,
        }


def _http_key(key: str) -> tuple[int, int]:
    """``http4f2`` → (4 senders, format 2)."""
    senders, _, fmt = key[4:].partition("f")
    return int(senders), int(fmt)


def _batches_for(rate: float, seconds: float, senders: int) -> int:
    """Batches per sender so that one repetition lasts about ``seconds``."""
    total = rate * seconds / BATCH
    total = min(MAX_BATCHES_PER_REP, max(MIN_BATCHES_PER_REP, math.ceil(total)))
    return max(1, math.ceil(total / senders))


def run_throughput(
    res: Results,
    *,
    http: bool,
    raw: bool,
    url: str | None,
    pid: int,
    tmp: Path,
    reps: int,
    seconds: float,
    sender_counts: Sequence[int] = (1, 4),
    formats: Sequence[int] = (2,),
) -> None:
    """Calibrate, then interleave the repetitions of the HTTP and raw benchmarks."""
    target = seconds * 1.25  # aim above the minimum: the rate varies between runs
    plan: dict[str, int] = {}
    raw_store = RawStore(tmp / "raw.duckdb") if raw else None

    def measure(key: str, count: int, seed: int) -> tuple[str, float, int, Any, Any]:
        if key.startswith("http") and url is not None:
            senders, fmt = _http_key(key)
            name = f"HTTP ingest, {senders} sender{'s' if senders > 1 else ''}"
            if len(formats) > 1:
                name += f" (format {fmt})"
            elapsed, n, cpu = http_repetition(url, pid, senders, count, seed, fmt=fmt)
            return name, elapsed, n, cpu, None
        assert raw_store is not None
        batches = raw_store.prepare(count, seed)
        before = cpu_sample(0)
        elapsed, steps = raw_store.run(batches.tables)
        cpu = cpu_delta(before, cpu_sample(0), 0)
        steps = {
            "decode": statistics.median(batches.decode) * 1e3,
            "arrow_build": statistics.median(batches.build) * 1e3,
            **steps,
        }
        return "Raw DuckDB append", elapsed, count * BATCH, cpu, steps

    try:
        # Warm-up (not reported): registers the suite's 10,000 tests in the server and
        # opens connections. Then a short calibration sizes the repetitions.
        if http and url is not None:
            http_repetition(url, pid, 1, N_TESTS // BATCH, seed=1, fmt=formats[0])
            for fmt in formats:
                for senders in sender_counts:
                    elapsed, n, _ = http_repetition(
                        url, pid, senders, 16 // senders, seed=senders, fmt=fmt
                    )
                    plan[f"http{senders}f{fmt}"] = _batches_for(n / elapsed, target, senders)
                    log(f"calibration http x{senders}, format {fmt}: {n / elapsed:,.0f} records/s")
        if raw_store is not None:
            elapsed, _ = raw_store.run(raw_store.prepare(20, seed=99).tables)
            plan["raw"] = _batches_for(20 * BATCH / elapsed, target, 1)
            log(f"calibration raw: {20 * BATCH / elapsed:,.0f} rows/s")
        res.config["batches_per_sender_at_start"] = dict(plan)

        for rep in range(reps):
            seed = 1000 + rep
            for key in list(plan):
                for attempt in range(2):
                    check_interrupt()
                    count = plan[key]
                    name, elapsed, n, cpu, steps = measure(key, count, seed + 100 * attempt)
                    log(
                        f"rep {rep + 1}/{reps} {name}: {n / elapsed:,.0f} records/s"
                        f" ({elapsed:.2f} s)"
                    )
                    if elapsed >= seconds or attempt == 1:
                        break
                    # Too short: lengthen it (bounded), measure this repetition again.
                    senders = _http_key(key)[0] if key.startswith("http") else 1
                    plan[key] = min(
                        math.ceil(MAX_BATCHES_PER_REP / senders),
                        math.ceil(count * target / elapsed),
                    )
                    res.notes.append(
                        f"{name}: repetition {rep + 1} lasted {elapsed:.2f} s (< {seconds} s):"
                        f" discarded, measured again with {plan[key]} batches per sender"
                    )
                s = res.series.setdefault(name, Series(name, "records/s"))
                s.values.append(n / elapsed)
                s.seconds.append(elapsed)
                s.records.append(n)
                s.cpu.append(cpu)
                if steps is not None:
                    s.steps_ms.append(steps)
    finally:
        if raw_store is not None:
            raw_store.close()


def ratios(res: Results) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    raw = res.series.get("Raw DuckDB append")
    if raw is None:
        return out
    for name, s in res.series.items():
        if not name.startswith("HTTP"):
            continue
        paired = [a / b for a, b in zip(s.values, raw.values, strict=False)]
        out[f"{name} / raw"] = {
            "of_medians": s.median / raw.median,
            "min": min(paired, default=math.nan),
            "max": max(paired, default=math.nan),
        }
    return out


def _verdict(ok: bool, shortfall: str) -> str:
    return "met" if ok else f"NOT met ({shortfall})"


def _med(dicts: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(float(d[key]) for d in dicts) if dicts else math.nan


def print_cpu_and_steps(res: Results) -> None:
    cores = res.facts["cpus_usable"]
    print()
    print(f"CPU in the timed part (medians over repetitions; cores used, of {cores}):")
    for name, s in res.series.items():
        if not s.cpu:
            continue
        machine = (
            f"machine busy {_med(s.cpu, 'machine_busy') * 100:.0f} %,"
            f" steal {_med(s.cpu, 'machine_steal') * 100:.0f} %,"
            f" other processes {_med(s.cpu, 'other_processes_cores'):.2f}"
        )
        if name.startswith("HTTP"):
            top = [
                statistics.median(
                    (d["server_other_threads_cores"] + [0.0, 0.0, 0.0])[i] for d in s.cpu
                )
                for i in range(3)
            ]
            print(
                f"  {name}: server {_med(s.cpu, 'server_cores'):.2f} (event-loop thread"
                f" {_med(s.cpu, 'server_main_thread_cores'):.2f}, busiest other threads"
                f" {' / '.join(f'{x:.2f}' for x in top)}),"
                f" client {_med(s.cpu, 'client_cores'):.2f}; {machine}"
            )
            print(
                f"    CPU ms per 1,000 records: server {_med(s.cpu, 'server_cpu_ms_per_batch'):.1f}"
                f" (event loop {_med(s.cpu, 'server_main_thread_cpu_ms_per_batch'):.1f},"
                " busiest other thread"
                f" {_med(s.cpu, 'server_busiest_other_thread_cpu_ms_per_batch'):.1f}),"
                f" client {_med(s.cpu, 'client_cpu_ms_per_batch'):.1f}"
            )
        else:
            print(f"  {name}: this process {_med(s.cpu, 'client_cores'):.2f}; {machine}")
    raw = res.series.get("Raw DuckDB append")
    if raw is not None and raw.steps_ms:
        st = raw.steps_ms
        print()
        print("Per 1,000-record batch (medians, ms), as the server would do them:")
        print(
            f"  before DuckDB, not in the raw figure: msgspec decode {_med(st, 'decode'):.2f},"
            f" Arrow build (result_tables) {_med(st, 'arrow_build'):.2f}"
        )
        print(
            f"  the raw figure: BEGIN {_med(st, 'begin'):.2f}, INSERT results"
            f" {_med(st, 'insert_results'):.2f}, INSERT result_details"
            f" {_med(st, 'insert_details'):.2f}, COMMIT {_med(st, 'commit'):.2f}"
        )


def _caller_rows(c: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for label in ("default", "big_queue"):
        for name in METHODS:
            st = c[label][name]
            if label == "default":
                ok = st["median_us"] <= TARGET_CALL_US
                short = f"{(st['median_us'] / TARGET_CALL_US - 1) * 100:.0f} % over"
                title, target, verdict = name, "≤ 5 µs", _verdict(ok, short)
            else:
                title = f"{name} (max_queue={c['big_queue_size']:,})"
                target, verdict = "(diagnostic)", ""
            rows.append(
                (
                    title,
                    f"{st['median_us']:.2f} µs/call",
                    f"p90 {st['p90_us']:.1f}, p99 {st['p99_us']:.1f} µs",
                    target,
                    verdict,
                )
            )
    sync = c[SYNC]
    rows.append(
        (
            SYNC,
            f"{sync['median_us']:,.0f} µs/call",
            f"p90 {sync['p90_us']:,.0f}, p99 {sync['p99_us']:,.0f} µs",
            "",
            "",
        )
    )
    speedup = sync["median_us"] / c["default"]["Session.log_event"]["median_us"]
    rows.append(
        (
            "sync / Session.log_event",
            f"{speedup:,.0f}x",
            "",
            "≥ 100x",
            _verdict(speedup >= TARGET_SPEEDUP, f"{speedup / TARGET_SPEEDUP:.2f} of it"),
        )
    )
    return rows


def print_report(res: Results) -> None:
    f = res.facts
    print()
    print("Machine")
    print(f"  date (UTC)            {f['date']}")
    print(f"  platform              {f['platform']}")
    print(f"  CPUs                  {f['cpu_count']} ({f['cpus_usable']} usable)")
    print(f"  load average at start {f['loadavg_at_start']}")
    if "quiet_before_start" in f:
        print(f"  busy before the start {f['quiet_before_start'] * 100:.0f} % (--wait-quiet)")
    print(f"  Python                {f['python']} ({f['python_implementation']})")
    print(f"  duckdb / litestar     {f['duckdb']} / {f['litestar']}")
    print(f"  uvicorn / httpx       {f['uvicorn']} / {f['httpx']}")
    print(f"  msgspec / pyarrow     {f['msgspec']} / {f['pyarrow']}")
    print(f"  uvloop / httptools    {f['uvloop']} / {f['httptools']}")
    print(f"  PYTHONDONTWRITEBYTECODE {f['PYTHONDONTWRITEBYTECODE']}")
    modified = ", ".join(f["git_modified"]) or "none"
    print(f"  code                  {f['git_head']} (uncommitted in server/client: {modified})")
    print()
    rows: list[tuple[str, str, str, str, str]] = []
    for name, s in res.series.items():
        spread = f"{min(s.values):,.0f} - {max(s.values):,.0f}"
        if name.startswith("HTTP"):
            ok = s.median >= TARGET_HTTP
            short = f"{(1 - s.median / TARGET_HTTP) * 100:.0f} % short"
            rows.append(
                (name, f"{s.median:,.0f} rec/s", spread, "≥ 100,000 rec/s", _verdict(ok, short))
            )
        else:
            rows.append((name, f"{s.median:,.0f} rows/s", spread, "(ceiling)", ""))
    for name, ratio in ratios(res).items():
        ok = ratio["of_medians"] >= TARGET_RATIO
        short = f"{(TARGET_RATIO - ratio['of_medians']) * 100:.0f} points short"
        rows.append(
            (
                name,
                f"{ratio['of_medians'] * 100:.0f} %",
                f"{ratio['min'] * 100:.0f} - {ratio['max'] * 100:.0f} % (paired reps)",
                "≥ 30 %",
                _verdict(ok, short),
            )
        )
    c = res.caller
    if c is not None:
        rows += _caller_rows(c)
    header = ("benchmark", "median", "spread (min - max)", "target", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    print("Results (medians of repetitions measured in this run)")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    print_cpu_and_steps(res)
    if c is not None:
        print()
        print(
            f"Caller: {c['calls_per_method']:,} calls per method in a tight loop, each timed"
            " with a perf_counter_ns pair (its own cost, not subtracted:"
            f" {c['clock_overhead_us']:.2f} µs); then flushed."
        )
        for label in ("default", "big_queue"):
            for name in METHODS:
                st = c[label][name]
                print(
                    f"  {label:9} {name}: mean {st['mean_us']:.2f} µs, max {st['max_us']:,.0f}"
                    f" µs; sent {st['sent']:,}, spooled {st['spooled']:,},"
                    f" dropped {st['dropped']:,}, drained {st['drained']}"
                )
            if c[label]["spool_left"]:
                print(f"  {label}: spool files left: {c[label]['spool_left']}")
    for note in res.notes:
        print(f"note: {note}")


def _sender_counts(text: str) -> tuple[int, ...]:
    counts = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    if not counts or not all(1 <= c <= 64 for c in counts):
        raise argparse.ArgumentTypeError("sender counts must be within 1..64")
    return counts


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    common.add_argument(
        "--seconds", type=float, default=2.0, help="least seconds per repetition (default 2)"
    )
    common.add_argument("--calls", type=int, default=100_000, help="buffered calls per method")
    common.add_argument("--sync-calls", type=int, default=1_000, help="synchronous calls")
    common.add_argument("--json", type=Path, default=None, metavar="PATH", help="save figures")
    common.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait (at most this long) for 2 s in which the machine is under 25 %% busy",
    )
    common.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="PATH",
        help="record a py-spy profile (raw format, GIL-holding samples) of the server"
        " during the HTTP benchmark; it perturbs the figures a little",
    )
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("all", "every benchmark, side by side"),
        ("http", "end-to-end ingest through HTTP (with the raw ceiling unless --no-raw)"),
        ("raw", "raw DuckDB append rate"),
        ("caller", "caller cost of the client"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        if name == "http":
            p.add_argument("--no-raw", action="store_true", help="skip the raw ceiling")
            p.add_argument(
                "--senders",
                type=_sender_counts,
                default=(1, 4),
                help="concurrent senders to measure, comma-separated (default 1,4)",
            )
            p.add_argument(
                "--formats",
                type=_sender_counts,
                default=(2,),
                help="wire formats to measure side by side: 2 (results as columns, what"
                " the client sends) and/or 1 (records one by one), e.g. 2,1 (default 2)",
            )
        else:
            p.set_defaults(senders=(1, 4), formats=(2,))
    args = parser.parse_args(argv)
    if not 1 <= args.reps <= 50:
        parser.error("--reps must be within 1..50")
    if not 1 <= args.calls <= 10_000_000 or not 1 <= args.sync_calls <= 100_000:
        parser.error("--calls or --sync-calls out of range")
    if not 0.1 <= args.seconds <= 60:
        parser.error("--seconds must be within 0.1..60")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    signal.signal(signal.SIGINT, _on_sigint)
    do_http = args.command in ("all", "http")
    do_raw = args.command in ("all", "raw") or (args.command == "http" and not args.no_raw)
    do_caller = args.command in ("all", "caller")
    res = Results(
        facts=machine_facts(),
        config={
            "command": args.command,
            "reps": args.reps,
            "min_seconds_per_rep": args.seconds,
            "batch_records": BATCH,
            "distinct_tests": N_TESTS,
            "failure_rate": FAIL_RATE,
        },
    )
    if args.wait_quiet > 0:
        res.facts["quiet_before_start"] = wait_quiet(min(args.wait_quiet, 3600.0))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="datacat-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server: ServerProcess | None = None
        try:
            if do_http or do_caller:
                server = ServerProcess(tmp / "server.duckdb").start()
                log(f"server pid {server.proc.pid if server.proc else '?'} at {server.url}")
            url = server.url if server is not None else None
            pid = server.proc.pid if server is not None and server.proc else 0
            if do_http or do_raw:
                with py_spy(pid, args.profile if do_http else None):
                    run_throughput(
                        res,
                        http=do_http,
                        raw=do_raw,
                        url=url,
                        pid=pid,
                        tmp=tmp,
                        reps=args.reps,
                        seconds=args.seconds,
                        sender_counts=args.senders,
                        formats=args.formats,
                    )
            if do_caller and url is not None:
                log("caller cost:")
                res.caller = caller_benchmark(url, tmp, args.calls, args.sync_calls)
        except BaseException as exc:
            if not (INTERRUPTED.is_set() or isinstance(exc, KeyboardInterrupt)):
                raise
            INTERRUPTED.set()  # sender threads stop at their next batch
            log("interrupted; stopping the server")
            return 130
        finally:
            if server is not None:
                server.stop()
                if server.proc is not None and server.proc.returncode not in (0, None):
                    log(f"server exited with {server.proc.returncode}:\n{server.log()}")
    res.facts["benchmark_seconds"] = round(time.monotonic() - started, 1)
    print_report(res)
    print(f"(whole run: {res.facts['benchmark_seconds']} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(res.as_json(), indent=2) + "\n")
        print(f"figures saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
