"""`BackgroundSender`: the queue between a program and the server.

The habits of sentry-python's ``BackgroundWorker``: `submit` appends to a bounded deque
and returns; a daemon thread takes batches off it and hands them to its `Delivery`
(which posts them as the `DeliveryPolicy` says, or spools them). Nothing here raises
into the program, and nothing is dropped without being counted.

The thread takes up to ``batch_size`` records, waiting at most ``linger`` seconds after
the first one (a full batch, or a flush, wakes it at once). `flush` waits until what was
submitted before it is acknowledged or spooled; `close` flushes with a deadline, spools
what is left, and never blocks much past its timeout. This module also holds the
package's one fork hook: a forked child starts every sender afresh.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from . import wire
from ._client import DatacatClient
from ._delivery import Delivery, SenderStats
from ._policy import DeliveryPolicy
from ._spool import SpoolWriter

__all__ = ["BackgroundSender", "SenderStats"]

logger = logging.getLogger("datacat")

_JOIN_MARGIN = 0.1  # seconds close() may wait past its timeout for the thread to stop


class _FlushMarker:
    """Queued by `flush`: resolved when the thread reaches it."""

    __slots__ = ("baseline", "deadline", "done", "ok")

    def __init__(self, baseline: tuple[int, int], deadline: float) -> None:
        #: Records lost and spool files refused so far: more of either is a failure.
        self.baseline = baseline
        self.deadline = deadline
        self.done = threading.Event()
        self.ok = False


_Item = wire.Record | _FlushMarker

_all_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()
_live_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()


class BackgroundSender:
    """Sends one session's records in batches from a daemon thread; spools what fails.

    ``client`` provides the transport and base url; ``spool_dir`` the spool directory.
    ``heartbeat`` builds the liveness record submitted every ``heartbeat_interval``
    seconds (None: no heartbeats). ``max_attempts`` to ``offline_cap`` tune the
    `DeliveryPolicy`. ``on_fork`` is called in a forked child, after the sender reset.
    """

    def __init__(
        self,
        client: DatacatClient,
        *,
        session_id: str,
        spool_dir: Path | str,
        # Big enough for a burst of 100,000 calls in a tight loop to stay in memory
        # (a few tens of MB at most); past it, records are written to the spool.
        max_queue: int = 100_000,
        batch_size: int = 1000,
        linger: float = 0.05,
        heartbeat: Callable[[], wire.Record] | None = None,
        heartbeat_interval: float | None = 15.0,
        flush_timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.1,
        backoff_cap: float = 2.0,
        max_retry_wait: float = 5.0,
        offline_for: float = 1.0,
        offline_cap: float = 60.0,
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self.session_id = session_id
        self.flush_timeout = flush_timeout
        self._max_queue = max_queue
        self._batch_size = max(1, batch_size)
        self._linger = linger
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._new_policy = functools.partial(
            DeliveryPolicy,
            max_attempts=max_attempts,
            backoff=backoff,
            backoff_cap=backoff_cap,
            max_retry_wait=max_retry_wait,
            offline_for=offline_for,
            offline_cap=offline_cap,
        )
        self._on_fork = on_fork
        self._spool = SpoolWriter(spool_dir, session_id, client.base_url)
        self._closed = False
        self._close_ok = True
        self._reset()
        _all_senders.add(self)

    def _reset(self) -> None:
        """The state a fresh thread starts from (at creation, and in a forked child)."""
        self._queue: collections.deque[_Item] = collections.deque()
        self._pending = threading.Event()  # the queue is not empty
        self._full = threading.Event()  # a batch is full, or a flush waits: no linger
        self._wake = threading.Event()  # a flush or close came: look at the deadlines again
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # the counters, and the deadlines below
        self._waiting: list[float] = []  # deadlines of the flushes waiting
        self._close_deadline: float | None = None
        self._stats = SenderStats()
        self._live = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._inflight: list[wire.Record] | None = None
        self._delivery = Delivery(
            self._client,
            self._spool,
            self._new_policy(),
            self._stats,
            self._lock,
            batch_size=self._batch_size,
            deadlines=self._deadlines,
            wake=self._wake,
        )
        self._next_heartbeat = (
            time.monotonic() + self._heartbeat_interval if self._heartbeat_interval else 0.0
        )

    # -- the caller's side ----------------------------------------------------------------

    @property
    def stats(self) -> SenderStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def client(self) -> DatacatClient:
        """The client whose transport this sender posts through."""
        return self._client

    @property
    def spool(self) -> SpoolWriter:
        """This sender's spool writer."""
        return self._spool

    @property
    def policy(self) -> DeliveryPolicy:
        """The delivery policy (its state: online, backing off, offline)."""
        return self._delivery.policy

    def submit(self, record: wire.Record) -> None:
        """Queue a record; never blocks on the network, never raises.

        When the queue is full, the record is written to the spool file right away.
        """
        self._stats.submitted += 1
        queue = self._queue
        if self._live and len(queue) < self._max_queue:
            queue.append(record)
            if not self._pending.is_set():
                self._pending.set()
            if len(queue) >= self._batch_size and not self._full.is_set():
                self._full.set()
            return
        self._submit_slow(record)

    def _submit_slow(self, record: wire.Record) -> None:
        try:
            if not self._live and not self._closed and self._start():
                self._queue.append(record)
                self._pending.set()
            else:
                self._delivery.spool([record])
        except Exception:
            logger.exception("datacat: could not queue a record")
            self._stats.lost += 1

    def _start(self) -> bool:
        with self._start_lock:
            if self._live:
                return True
            if self._closed:
                return False
            thread = threading.Thread(target=self._run, name="datacat-sender", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is shutting down
                return False
            self._thread = thread
            self._live = True
            _live_senders.add(self)
            return True

    def drop(self) -> None:
        """Count a record that was refused before it could be submitted (invalid)."""
        with self._lock:
            self._stats.dropped += 1

    def stop_heartbeats(self) -> None:
        """Submit no more heartbeats (the session ended)."""
        self._heartbeat_interval = None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is acknowledged or spooled.

        True only if all of it was acknowledged (and no spool file is left to send).
        """
        timeout = self.flush_timeout if timeout is None else timeout
        if self._thread is threading.current_thread():
            return False
        if self._closed and not self._live:
            return self._close_ok and not self._queue
        if not self._start():
            return not self._queue and not self._spool.has_pending
        marker = _FlushMarker(self._failures(), time.monotonic() + timeout)
        with self._lock:
            self._waiting.append(marker.deadline)
        self._queue.append(marker)
        self._pending.set()
        self._full.set()
        self._wake.set()
        return marker.done.wait(max(0.0, timeout)) and marker.ok

    def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` seconds, spool what is left, stop the thread."""
        timeout = self.flush_timeout if timeout is None else timeout
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._close_deadline = deadline
        self._wake.set()
        ok = True
        thread = self._thread
        if self._live and thread is not None:
            ok = self.flush(timeout)
            self._live = False  # from now on, submit() writes to the spool
            self._stopping = True
            self._pending.set()
            self._full.set()
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()) + _JOIN_MARGIN)
        # What is still queued, or in flight in a thread that hangs, goes to the spool.
        # If the hung post succeeds after all, the server drops the second copy.
        leftovers: list[wire.Record] = []
        inflight = self._inflight
        if inflight and thread is not None and thread.is_alive():
            leftovers.extend(inflight)
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                item.done.set()
            else:
                leftovers.append(item)
        if leftovers:
            self._delivery.spool(leftovers)
        self._close_ok = ok and not leftovers
        self._spool.close()
        _live_senders.discard(self)

    # -- the thread -----------------------------------------------------------------------

    def _failures(self) -> tuple[int, int]:
        return self._stats.lost, self._spool.abandoned

    def _deadlines(self) -> tuple[float | None, float | None]:
        with self._lock:
            return (min(self._waiting) if self._waiting else None), self._close_deadline

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:
                logger.exception("datacat: error in the sender thread (it keeps running)")
                time.sleep(0.05)

    def _step(self) -> bool:
        queue, delivery = self._queue, self._delivery
        if not queue:
            if self._stopping:
                return False
            if delivery.has_leftovers and delivery.may_send():
                delivery.send_leftovers(one=True)  # idle: a file that an earlier run left
            else:
                self._pending.clear()
                if not queue and not self._stopping:
                    self._pending.wait(self._idle_wait())
            self._heartbeat_due()
            return True
        if len(queue) < self._batch_size and not self._waiting and not self._stopping:
            self._full.wait(self._linger)
        self._full.clear()
        batch, marker = self._take()
        try:
            if batch:
                delivery.send(batch)
        finally:
            self._inflight = None
        if marker is not None:
            try:
                delivery.settle()
            finally:
                # Records spooled on the way but sent again since count as delivered.
                marker.ok = self._failures() == marker.baseline and not self._spool.has_pending
                with self._lock:
                    self._waiting.remove(marker.deadline)
                marker.done.set()
        self._heartbeat_due()
        return True

    def _idle_wait(self) -> float | None:
        if not self._heartbeat_interval or self._heartbeat is None:
            return None
        return max(0.0, self._next_heartbeat - time.monotonic())

    def _heartbeat_due(self) -> None:
        interval = self._heartbeat_interval
        if not interval or self._heartbeat is None or self._close_deadline is not None:
            return
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + interval
            self.submit(self._heartbeat())

    def _take(self) -> tuple[list[wire.Record], _FlushMarker | None]:
        batch: list[wire.Record] = []
        self._inflight = batch  # visible to close() while we work on it
        queue = self._queue
        while len(batch) < self._batch_size:
            try:
                item = queue.popleft()
            except IndexError:
                break
            if isinstance(item, _FlushMarker):
                return batch, item
            batch.append(item)
        return batch, None

    # -- process events -------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._spool.after_fork_in_child()
        self._reset()
        if self._on_fork is not None:
            self._on_fork()


def _close_all() -> None:
    """At exit: close every live sender, all within the longest flush timeout."""
    senders = list(_live_senders)
    if not senders:
        return
    deadline = time.monotonic() + max(sender.flush_timeout for sender in senders)
    for sender in senders:
        try:
            sender.close(min(sender.flush_timeout, max(0.0, deadline - time.monotonic())))
        except Exception:  # pragma: no cover - close() catches what it can
            logger.exception("datacat: could not close a sender at exit")


def _after_fork_in_child() -> None:
    """The package's one fork hook. A child has only the forking thread: every sender
    gets a fresh queue, thread, policy and spool file (the parent's stay the parent's),
    and its ``on_fork`` (a `Session` starts a new range of sequence numbers). Transports
    notice a fork by themselves, at their next request."""
    for sender in list(_all_senders):
        sender._after_fork_in_child()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
