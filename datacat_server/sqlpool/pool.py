"""The pool of SQL worker processes, driven from the server's event loop.

A query waits in a bounded queue for an idle worker (`SqlBusyError` when the queue is
full or no worker frees up in time), is checked in front (`check_statement`), and is
sent to the worker with the view it should read (`ViewSource`). The server keeps a
wall-clock deadline per query: a worker that overruns it, dies, breaks one of its
limits or answers nonsense is killed (SIGKILL) and replaced, and the next query works.
No thread is held while a query runs: everything here is asyncio on the worker's pipes.
Workers start at the first query, so a server nobody queries by SQL runs none.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from datacat_server.errors import DatacatServerError
from datacat_server.queries.sql import QueryResult, SqlRefused, check_statement, scrub
from datacat_server.settings import Settings, parse_bytes
from datacat_server.sqlpool import protocol
from datacat_server.sqlpool.process import START_TIMEOUT, WorkerDied, WorkerProcess, start_worker
from datacat_server.sqlpool.source import View, ViewSource
from datacat_server.store import StoreBase

__all__ = [
    "PoolConfig",
    "SqlAnswer",
    "SqlBusyError",
    "SqlPool",
    "SqlUnavailableError",
    "open_sql_pool",
]

log = logging.getLogger("datacat.sql")

#: Seconds past a query's time limit before its worker is killed (the worker
#: interrupts the query itself at the limit; this is for queries that ignore that).
KILL_GRACE = 2.0
#: Bytes a reply may carry besides the answer's body (column names and types).
REPLY_SLACK = 1_000_000


class SqlBusyError(DatacatServerError):
    """Every SQL worker is busy and the queue is full, or no worker freed up in time."""


class SqlUnavailableError(DatacatServerError):
    """No SQL worker can run (they fail to start, or the data cannot be opened)."""


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    workers: int = 2
    #: Queries that may wait for a worker; more are refused (503).
    queue: int = 8
    #: Address space of one worker, in bytes.
    memory: int = 3 * 10**9
    threads: int = 1
    timeout: float = 10.0
    cpu_seconds: float = 10.0
    max_rows: int = 10_000
    max_bytes: int = 10_000_000


@dataclasses.dataclass(frozen=True)
class SqlAnswer:
    result: QueryResult
    #: The data the query read is as it was at this moment.
    as_of: dt.datetime


class _Killed(Exception):
    """The worker was killed from outside (SIGKILL that the pool did not send): most
    likely between two queries, so the query deserves another worker."""


class SqlPool:
    """SQL worker processes over the views a `ViewSource` hands out."""

    def __init__(self, config: PoolConfig, source: ViewSource) -> None:
        self.config = config
        self.source = source
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._waiters: collections.deque[asyncio.Future[WorkerProcess]] = collections.deque()
        self._starting = 0
        self._started = False
        self._closed = False
        self._restarts = 0
        self._failures = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._home: Path | None = None
        source.on_change(self._move_idle)

    # -- running a query -------------------------------------------------------------

    async def run(self, sql: str, *, fmt: str = "json", max_rows: int | None = None) -> SqlAnswer:
        """Run one read-only statement in a worker. Raises `SqlRefused` (400: refused,
        failed, too slow, past a limit), `SqlBusyError` or `SqlUnavailableError` (503)."""
        if self._closed:
            raise SqlUnavailableError("the server is shutting down")
        check_statement(sql)
        limit = min(max_rows or self.config.max_rows, self.config.max_rows)
        query = protocol.Query(
            sql=sql,
            fmt=fmt,
            max_rows=limit,
            max_bytes=self.config.max_bytes,
            timeout=self.config.timeout,
            cpu_seconds=self.config.cpu_seconds,
        )
        view = await self._view()
        self.source.hold(view)  # not deleted while this query waits for a worker
        try:
            reply = await self._on_a_worker(view, query)
        finally:
            self.source.release(view)
        if isinstance(reply, protocol.Failed):
            raise SqlRefused(self._scrub(reply.message))
        assert isinstance(reply, protocol.Answer)
        result = QueryResult(
            columns=reply.columns,
            types=reply.types,
            fmt=fmt,
            body=reply.body,
            row_count=reply.row_count,
            truncated_by=reply.truncated_by,
            seconds=reply.seconds,
        )
        return SqlAnswer(result, view.as_of)

    async def _view(self) -> View:
        try:
            return await self.source.current()
        except Exception as exc:
            log.error("no data for SQL: %s", exc)
            raise SqlUnavailableError(
                "the data cannot be prepared for SQL right now; try again later"
            ) from None

    async def _on_a_worker(self, view: View, query: protocol.Query) -> protocol.Reply:
        attempts = self.config.workers + 1
        for attempt in range(attempts):
            worker = await self._acquire()
            try:
                reply = await self._ask(worker, view, query)
            except _Killed:
                self._discard(worker)
                if attempt == attempts - 1:
                    raise SqlRefused(
                        "the SQL worker running the query was killed; try again"
                    ) from None
                continue
            except BaseException:
                self._discard(worker)
                raise
            if isinstance(reply, protocol.Answer | protocol.Failed) and reply.retire:
                self._discard(worker)
            else:
                self._release(worker)
            return reply
        raise AssertionError("unreachable")

    async def _ask(
        self, worker: WorkerProcess, view: View, query: protocol.Query
    ) -> protocol.Reply:
        if worker.view is None or worker.view.generation != view.generation:
            await self._open(worker, view)
        try:
            async with asyncio.timeout(query.timeout + KILL_GRACE):
                return await worker.call(query)
        except TimeoutError:
            raise SqlRefused(
                f"the query ran longer than {query.timeout:g} s and was stopped"
            ) from None
        except WorkerDied as died:
            if died.code == -signal.SIGKILL:
                raise _Killed from None
            raise SqlRefused(str(died)) from None

    async def _open(self, worker: WorkerProcess, view: View) -> None:
        old, worker.view = worker.view, None
        if old is not None:
            self.source.release(old)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                reply = await worker.call(protocol.Open(target=view.target, kind=view.kind))
        except WorkerDied as died:
            if died.code == -signal.SIGKILL:
                raise _Killed from None
            raise SqlUnavailableError("a SQL worker could not open the data") from None
        except TimeoutError:
            raise SqlUnavailableError("a SQL worker could not open the data") from None
        if not isinstance(reply, protocol.Opened):
            message = reply.message if isinstance(reply, protocol.Failed) else "no answer"
            log.error("a SQL worker could not open the data: %s", message)
            raise SqlUnavailableError("a SQL worker could not open the data")
        worker.view = view
        self.source.hold(view)

    def _move_idle(self, view: View) -> None:
        """Idle workers open a new view at once: the next query need not wait for it,
        and the old view's file can go (an idle worker would hold it for ever)."""
        for worker in [w for w in self._idle if w.view is not None and w.view != view]:
            self._idle.remove(worker)
            self._busy.add(worker)
            self._background(self._reopen(worker, view))

    async def _reopen(self, worker: WorkerProcess, view: View) -> None:
        try:
            await self._open(worker, view)
        except (_Killed, SqlUnavailableError):
            self._discard(worker)
        else:
            self._release(worker)

    def _scrub(self, message: str) -> str:
        secrets = [*self.source.secrets(), os.path.expanduser("~"), os.getcwd(), sys.prefix]
        if self._home is not None:
            secrets.append(str(self._home))
        return scrub(message, secrets)

    # -- workers -------------------------------------------------------------------

    async def _acquire(self) -> WorkerProcess:
        self._start()
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                self._busy.add(worker)
                return worker
            self._discard(worker)
        if not self._busy and not self._starting and self._failures:
            raise SqlUnavailableError("the SQL workers cannot start; try again later")
        # A worker being started will take one waiter as soon as it is ready.
        if len(self._waiters) >= self.config.queue + self._starting:
            raise SqlBusyError("every SQL worker is busy; try again in a moment")
        waiter: asyncio.Future[WorkerProcess] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.config.timeout):
                worker = await waiter
        except TimeoutError:
            self._give_back(waiter)
            raise SqlBusyError("no SQL worker freed up in time; try again in a moment") from None
        except BaseException:
            self._give_back(waiter)
            raise
        self._busy.add(worker)
        return worker

    def _give_back(self, waiter: asyncio.Future[WorkerProcess]) -> None:
        """A wait ended without its worker: pass on one handed over at the last moment."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            self._release(waiter.result())

    def _release(self, worker: WorkerProcess) -> None:
        self._busy.discard(worker)
        if self._closed or not worker.alive:
            self._discard(worker)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _discard(self, worker: WorkerProcess) -> None:
        """Kill ``worker`` (if it lives) and start another in its place."""
        self._busy.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        worker.kill()
        if worker.view is not None:
            self.source.release(worker.view)
            worker.view = None
        self._reap(worker)
        if not self._closed:
            self._restarts += 1
            self._spawn_later()

    def _reap(self, worker: WorkerProcess) -> None:
        async def wait() -> None:
            with contextlib.suppress(Exception):
                await worker.proc.wait()

        self._background(wait())

    def _start(self) -> None:
        if self._started or self._closed:
            return
        self._started = True
        for _ in range(self.config.workers):
            self._spawn_later()

    def _spawn_later(self, delay: float = 0.0) -> None:
        self._starting += 1
        self._background(self._spawn(delay))

    def _background(self, coro: collections.abc.Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _spawn(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            worker = await self._new_worker()
        except asyncio.CancelledError:
            self._starting -= 1
            raise
        except Exception as exc:
            self._starting -= 1
            self._failures += 1
            log.error("a SQL worker failed to start: %s", exc)
            self._fail_waiters()
            if not self._closed:
                self._spawn_later(min(30.0, 0.5 * 2 ** min(self._failures, 6)))
            return
        self._starting -= 1
        self._failures = 0
        self._release(worker)

    def _fail_waiters(self) -> None:
        if self._busy or self._idle or self._starting:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    SqlUnavailableError("the SQL workers cannot start; try again later")
                )

    async def _new_worker(self) -> WorkerProcess:
        worker = await start_worker(
            memory=self.config.memory,
            threads=self.config.threads,
            home=self._worker_home(),
            max_reply=self.config.max_bytes + REPLY_SLACK,
        )
        if self._closed:
            worker.kill()
            await worker.proc.wait()
            raise RuntimeError("the pool closed")
        return worker

    def _worker_home(self) -> Path:
        """An empty directory workers run in; they cannot write to it (nor anywhere)."""
        if self._home is None:
            self._home = Path(tempfile.mkdtemp(prefix="datacat-sql-"))
            self._home.chmod(0o555)
        return self._home

    # -- state ---------------------------------------------------------------------

    @property
    def home(self) -> Path | None:
        """The empty directory workers run in (None before the first worker)."""
        return self._home

    def describe(self) -> dict[str, object]:
        """The pool's state for ``/health``."""
        alive = len(self._idle) + len(self._busy)
        if not self._started:
            status = "idle"
        elif alive == 0 and self._failures:
            status = "down"
        elif alive < self.config.workers:
            status = "degraded"
        else:
            status = "ok"
        return {
            "status": status,
            "workers": alive,
            "size": self.config.workers,
            "busy": len(self._busy),
            "queued": len(self._waiters),
            "restarts": self._restarts,
            **self.source.describe(),
        }

    async def close(self) -> None:
        """Stop every worker, then the source."""
        self._closed = True
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(SqlUnavailableError("the server is shutting down"))
        self._waiters.clear()
        workers = [*self._idle, *self._busy]
        for worker in workers:
            worker.kill()
        for task in list(self._tasks):
            task.cancel()
        for worker in workers:
            with contextlib.suppress(Exception):
                await worker.proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._idle.clear()
        self._busy.clear()
        await self.source.close()
        if self._home is not None:
            self._home.chmod(0o755)
            shutil.rmtree(self._home, ignore_errors=True)


def open_sql_pool(store: StoreBase, settings: Settings) -> SqlPool:
    """The SQL pool over ``store``'s view source: snapshots of a file, or a lake attached
    read-only (no process starts until the first query)."""
    config = PoolConfig(
        workers=settings.sql_workers,
        queue=settings.sql_queue,
        memory=parse_bytes(settings.sql_worker_memory, "DATACAT_SQL_WORKER_MEMORY"),
        timeout=settings.sql_timeout,
        cpu_seconds=settings.sql_cpu_seconds,
        max_rows=settings.sql_max_rows,
        max_bytes=settings.sql_max_bytes,
    )
    return SqlPool(config, store.view_source(settings.sql_snapshot_interval))
