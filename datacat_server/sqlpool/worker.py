"""A SQL worker: ``python -m datacat_server.sqlpool.worker``, started by the server.

It runs people's SQL, one statement at a time, on a read-only view of the data, in a
process whose limits the operating system enforces. Before it reads its first request
it moves into an empty directory and limits itself:

- ``RLIMIT_AS``: its address space (``--memory``); DuckDB's own ``memory_limit`` is
  three quarters of it, but some DuckDB functions ignore that limit, and the kernel
  does not;
- ``RLIMIT_FSIZE`` 0 and ``RLIMIT_CORE`` 0: it cannot write a byte to any file;
- ``RLIMIT_NOFILE``: a few open files;
- ``RLIMIT_CPU``: before each query, the soft limit is set to the CPU time used so far
  plus the query's budget (the limit counts the process's whole life);
- it dies with the server (``PR_SET_PDEATHSIG``) and runs at a lower priority.

DuckDB is opened read-only with external access off, no temporary directory (nothing
spills to disk), autoloading off, few threads, and its configuration locked. The
server kills a worker that overruns its deadline or breaks a limit and starts another.
Requests and replies are framed msgpack (`datacat_server.sqlpool.protocol`) on
stdin and on the stdout the worker had when it started; anything else written to
stdout goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import signal
import sys

import duckdb

from datacat_server.errors import StoreError
from datacat_server.queries.sql import SqlRefused, run_readonly
from datacat_server.sqlpool import protocol

__all__ = ["main"]

#: Open files a worker may hold: its pipes, the view's file, and DuckDB's few.
MAX_FILES = 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datacat_server.sqlpool.worker")
    parser.add_argument("--memory", type=int, required=True, help="address space, in bytes")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--home", required=True, help="an empty directory to run in")
    args = parser.parse_args(argv)

    import pyarrow.parquet  # noqa: F401 - imported before the limits, like the rest

    channel = _Channel()
    _die_with_parent()
    os.chdir(args.home)
    with contextlib.suppress(OSError):
        os.nice(5)
    _limit(args.memory)
    channel.send(protocol.Ready(pid=os.getpid()))
    view = _View(args.memory, args.threads)
    while True:
        request = channel.receive()
        if request is None:
            return 0
        if isinstance(request, protocol.Open):
            channel.send(view.open(request))
        else:
            channel.send(view.run(request))
            if view.retire:
                return 0


class _Channel:
    def __init__(self) -> None:
        self.read_fd = 0
        # Keep the real stdout for replies; anything printed goes to stderr instead.
        self.write_fd = os.dup(1)
        os.dup2(2, 1)

    def _read(self, size: int) -> bytes | None:
        chunks: list[bytes] = []
        while size:
            chunk = os.read(self.read_fd, min(size, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def receive(self) -> protocol.Request | None:
        header = self._read(protocol.HEADER)
        if header is None:
            return None  # the server closed the pipe: time to go
        payload = self._read(protocol.parse_header(header))
        return None if payload is None else protocol.decode_request(payload)

    def send(self, reply: protocol.Reply) -> None:
        data = memoryview(protocol.frame(reply))
        while data:
            data = data[os.write(self.write_fd, data) :]


class _View:
    """The open view of the data, and the queries run on it."""

    def __init__(self, memory: int, threads: int) -> None:
        # DuckDB's own limit leaves room for Python, the answer being built, and what
        # DuckDB allocates outside its buffer manager (the kernel's limit catches that).
        self.duckdb_memory = memory * 3 // 4
        self.threads = threads
        self.con: duckdb.DuckDBPyConnection | None = None
        # A worker that grew past half its address space is replaced after answering.
        self.memory_cap = memory // 2
        self.retire = False
        #: The database a cursor must USE first (a lake: a cursor starts in memory).
        self.use: str | None = None

    def open(self, request: protocol.Open) -> protocol.Opened | protocol.Failed:
        if self.con is not None:
            self.con.close()
            self.con = None
        if request.kind not in ("duckdb", "ducklake"):
            return protocol.Failed(f"cannot open a view of kind {request.kind!r}", "error")
        _allow_cpu(30.0)
        try:
            if request.kind == "ducklake":
                # A lake, attached read-only; its settings are applied once it is.
                from datacat_server.store.lake.store import open_lake_view

                self.con, self.use = open_lake_view(request.target, self._config())
            else:
                self.con = duckdb.connect(request.target, read_only=True, config=self._config())
                self.use = None
            _verify(self.con, self._config())
        except (duckdb.Error, StoreError) as exc:
            return protocol.Failed(f"cannot open the data: {exc}", "error")
        return protocol.Opened()

    def _config(self) -> dict[str, str | bool | int | float | list[str]]:
        # In this order: DuckDB 2.0 refuses temp_directory when it comes first.
        return {
            "enable_external_access": False,
            "temp_directory": "",
            "threads": self.threads,
            "memory_limit": f"{self.duckdb_memory // 2**20}MiB",
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "allow_community_extensions": False,
            "lock_configuration": True,
        }

    def run(self, query: protocol.Query) -> protocol.Answer | protocol.Failed:
        if self.con is None:
            return protocol.Failed("no data is open", "error")
        _allow_cpu(query.cpu_seconds)
        cursor = self.con.cursor()
        try:
            if self.use is not None:
                cursor.execute(f"USE {self.use}")
            result = run_readonly(
                cursor,
                query.sql,
                fmt=query.fmt,
                max_rows=query.max_rows,
                max_bytes=query.max_bytes,
                timeout=query.timeout,
            )
        except SqlRefused as exc:
            return protocol.Failed(str(exc))
        except MemoryError:
            self.retire = True  # Python ran out of address space: start afresh
            return protocol.Failed(
                "the query needed more memory than a query may use here", retire=True
            )
        except Exception as exc:  # a bug of ours, not the query's: say so and start afresh
            self.retire = True
            return protocol.Failed(
                f"the answer could not be made ({type(exc).__name__})", retire=True
            )
        finally:
            cursor.close()
        self.retire = _resident_bytes() > self.memory_cap
        return protocol.Answer(
            columns=result.columns,
            types=result.types,
            body=result.body,
            row_count=result.row_count,
            truncated_by=result.truncated_by,
            seconds=result.seconds,
            retire=self.retire,
        )


def _verify(
    con: duckdb.DuckDBPyConnection, config: dict[str, str | bool | int | float | list[str]]
) -> None:
    """Refuse to run anything unless DuckDB took every setting as asked."""
    wanted = {k: v for k, v in config.items() if k != "memory_limit"}
    rows = con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ?", [list(wanted)]
    ).fetchall()
    found = {str(name): str(value) for name, value in rows}
    for name, value in wanted.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if found.get(name) != text:
            raise duckdb.InvalidInputException(f"the setting {name} is {found.get(name)!r}")


def _limit(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_FILES, MAX_FILES))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    _allow_cpu(30.0)


def _allow_cpu(seconds: float) -> None:
    """Let the process use ``seconds`` more CPU time from now on (SIGXCPU after that)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the server's thread that started it
    ends (a server killed with SIGKILL leaves no worker behind)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the server died before prctl took effect
        raise SystemExit(0)


if __name__ == "__main__":
    raise SystemExit(main())
