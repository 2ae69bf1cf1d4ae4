"""A SQL worker process, seen from the server: starting it, its pipes, its death.

`start_worker` runs ``python -m datacat_server.sqlpool.worker`` with a minimal
environment (its home is the empty directory it runs in; no token or setting of the
server's goes along) in a session of its own, and waits for it to say it is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import datacat_server
from datacat_server.sqlpool import protocol
from datacat_server.sqlpool.source import View

__all__ = ["START_TIMEOUT", "WorkerDied", "WorkerProcess", "start_worker"]

#: Seconds a worker may take to start, or to open a view.
START_TIMEOUT = 30.0

_EXITED = getattr(os, "WEXITED", 0) | getattr(os, "WNOHANG", 0) | getattr(os, "WNOWAIT", 0)


class WorkerDied(Exception):
    """The worker is gone or misbehaved; the message says what to tell the person."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        #: The worker's exit status, when it exited.
        self.code = code


class WorkerProcess:
    """A started SQL worker: its pipes, the view it has open, and how it died."""

    def __init__(self, proc: asyncio.subprocess.Process, max_reply: int) -> None:
        self.proc = proc
        self.max_reply = max_reply
        self.view: View | None = None

    @property
    def alive(self) -> bool:
        if self.proc.returncode is not None:
            return False
        # Exited but not reaped yet (asyncio reaps it soon): ask without reaping.
        try:
            return os.waitid(os.P_PID, self.proc.pid, _EXITED) is None
        except ChildProcessError:  # reaped meanwhile
            return False
        except (AttributeError, OSError):  # no waitid here
            return True

    async def call(self, request: protocol.Request) -> protocol.Reply:
        assert self.proc.stdin is not None
        self.proc.stdin.write(protocol.frame(request))
        with contextlib.suppress(ConnectionError):
            await self.proc.stdin.drain()
        return await self.receive()

    async def receive(self) -> protocol.Reply:
        assert self.proc.stdout is not None
        try:
            header = await self.proc.stdout.readexactly(protocol.HEADER)
            size = protocol.parse_header(header)
            if size > self.max_reply:
                raise WorkerDied("the answer was larger than any answer may be")
            return protocol.decode_reply(await self.proc.stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            message = await self._death()
            raise WorkerDied(message, self.proc.returncode) from None
        except (ValueError, TypeError):  # msgspec's DecodeError is a ValueError
            raise WorkerDied("the SQL worker answered nonsense") from None

    async def _death(self) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 5)
        code = self.proc.returncode
        if code == -signal.SIGXCPU:
            return "the query used more CPU time than a query may and was stopped"
        if code == -signal.SIGXFSZ:
            return "the query tried to write a file and was stopped"
        return (
            "the query broke a limit of the SQL worker (most likely memory) and was stopped"
            f" (exit status {code})"
        )

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def start_worker(*, memory: int, threads: int, home: Path, max_reply: int) -> WorkerProcess:
    """A new worker, ready for requests (it has set its limits)."""
    package_root = Path(datacat_server.__file__).resolve().parents[1]
    env = {
        "HOME": str(home),
        "PYTHONPATH": str(package_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        # Fewer malloc arenas: far less address space reserved per DuckDB thread.
        "MALLOC_ARENA_MAX": "2",
    }
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "datacat_server.sqlpool.worker",
        "--memory",
        str(memory),
        "--threads",
        str(threads),
        "--home",
        str(home),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(home),
        env=env,
        start_new_session=True,  # Ctrl-C on the server is the server's to handle
    )
    worker = WorkerProcess(proc, max_reply)
    try:
        async with asyncio.timeout(START_TIMEOUT):
            reply = await worker.receive()
        if not isinstance(reply, protocol.Ready):
            raise RuntimeError(f"the worker said {reply!r} instead of being ready")
    except BaseException:
        worker.kill()
        await proc.wait()
        raise
    return worker
