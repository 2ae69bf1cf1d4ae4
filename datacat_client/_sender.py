"""`BackgroundSender`: the queue between a program and the server.

The habits of sentry-python's ``BackgroundWorker``: `submit` appends to a bounded deque
and returns; a daemon thread batches, posts, retries, and on failure writes to the spool.
Nothing here raises into the program, and nothing is dropped without being counted.

The thread takes up to ``batch_size`` records, waiting at most ``linger`` seconds after
the first one (a full batch wakes it at once). A failed post is retried with exponential
backoff, honouring ``Retry-After``; after ``max_attempts`` (or when the server refuses a
batch with a 4xx) the batch is spooled and the sender is *offline until t*: batches go
straight to the spool without touching the network, then one probe is sent. When the
server takes a batch again, the sender re-sends its own spool files, and, once per
process, uploads the files that earlier runs left for the same server.

`flush` waits until what was submitted before it is acknowledged or spooled; `close`
flushes with a deadline, spools what is left, and never blocks much past its timeout.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from . import wire
from ._client import DatacatClient
from ._errors import APIError, RateLimited
from ._spool import SpoolWriter, _LineCount, iter_spool, read_header, upload_spool

__all__ = ["BackgroundSender", "SenderStats"]

logger = logging.getLogger("datacat")

_JOIN_MARGIN = 0.1  # seconds close() may wait past its timeout for the thread to stop


@dataclasses.dataclass
class SenderStats:
    """Counters of a `BackgroundSender` (a snapshot)."""

    #: Records given to `BackgroundSender.submit`.
    submitted: int = 0
    #: Records the server stored, and records it already had (a retry's second copy).
    sent: int = 0
    duplicates: int = 0
    #: Records written to the spool file, and records that could not be written there.
    spooled: int = 0
    lost: int = 0
    #: Records refused at the call, being invalid (a NaN metric, an event without name).
    dropped: int = 0
    #: Batches acknowledged, and posts that were retries.
    batches: int = 0
    retries: int = 0
    #: Seconds spent in posts.
    send_seconds: float = 0.0
    #: Why the server last refused a batch (``HTTP 403: ...``), if it did.
    last_refusal: str | None = None


class _FlushMarker:
    """Queued by `flush`: resolved when the thread reaches it."""

    __slots__ = ("baseline", "deadline", "done", "ok")

    def __init__(self, baseline: int, deadline: float) -> None:
        self.baseline = baseline
        self.deadline = deadline
        self.done = threading.Event()
        self.ok = False


class _Refused(Exception):
    """The server refused a batch with a 4xx (but 429): sending it again will not help."""


_Item = wire.Record | _FlushMarker

_all_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()
_live_senders: weakref.WeakSet[BackgroundSender] = weakref.WeakSet()
_leftovers_done: set[tuple[str, str]] = set()
_leftovers_lock = threading.Lock()


class BackgroundSender:
    """Sends one session's records in batches from a daemon thread; spools what fails.

    ``client`` provides the transport and base url; ``spool_dir`` the spool directory.
    ``heartbeat`` builds the liveness record submitted every ``heartbeat_interval``
    seconds (None: no heartbeats).
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
    ) -> None:
        self._client = client
        self.session_id = session_id
        self.flush_timeout = flush_timeout
        self._max_queue = max_queue
        self._batch_size = max(1, batch_size)
        self._linger = linger
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff
        self._backoff_cap = backoff_cap
        self._max_retry_wait = max_retry_wait
        self._offline_for = offline_for
        self._offline_cap = offline_cap
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
        self._closing = threading.Event()  # cuts retry pauses short
        self._start_lock = threading.Lock()
        self._markers_lock = threading.Lock()
        self._markers = 0
        self._stats_lock = threading.Lock()
        self._stats = SenderStats()
        self._live = False
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._inflight: list[wire.Record] | None = None
        self._probing = False
        self._offline_until = 0.0
        self._offline_period = self._offline_for
        self._flush_probe_until: float | None = None
        self._no_probe_until = 0.0  # a 429 or a refusal: not even a flush may probe
        self._offline_logged = False
        self._refusals_logged: set[int] = set()
        self._leftovers_checked = False
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
                self._to_spool([record])
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
        with self._stats_lock:
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
        marker = _FlushMarker(self._stats.lost, time.monotonic() + timeout)
        with self._markers_lock:
            self._markers += 1
        self._queue.append(marker)
        self._pending.set()
        self._full.set()
        return marker.done.wait(max(0.0, timeout)) and marker.ok

    def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` seconds, spool what is left, stop the thread."""
        timeout = self.flush_timeout if timeout is None else timeout
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)
        self._deadline = deadline
        self._closing.set()
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
            self._to_spool(leftovers)
        self._close_ok = ok and not leftovers
        self._spool.close()
        _live_senders.discard(self)

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:
                logger.exception("datacat: error in the sender thread (it keeps running)")
                time.sleep(0.05)

    def _step(self) -> bool:
        queue = self._queue
        if not queue:
            if self._stopping:
                return False
            self._pending.clear()
            if not queue and not self._stopping:
                self._pending.wait(self._idle_wait())
            self._heartbeat_due()
            return True
        if len(queue) < self._batch_size and not self._markers and not self._stopping:
            self._full.wait(self._linger)
        self._full.clear()
        batch, marker = self._take()
        # Someone waits in flush(): even while offline, probe once, within their time.
        self._flush_probe_until = None if marker is None else marker.deadline
        try:
            if batch:
                self._send(batch)
            elif marker is not None and self._spool.has_pending and self._may_send():
                self._resend_spool()
        finally:
            self._flush_probe_until = None
        if marker is not None:
            # Records spooled on the way but sent again since count as delivered.
            marker.ok = self._stats.lost == marker.baseline and not self._spool.has_pending
            if not marker.ok and self._retry_flush(marker):
                return True
            marker.done.set()
        self._heartbeat_due()
        return True

    def _retry_flush(self, marker: _FlushMarker) -> bool:
        """Someone still waits and the server did not answer: try again before their
        deadline (a server restarting in the middle of a run comes back in seconds).
        True when the marker was queued again."""
        remaining = marker.deadline - time.monotonic()
        if remaining < 0.3 or self._stopping or not self._spool.has_pending:
            return False
        if self._no_probe_until > time.monotonic():  # the server asked us to wait (429)
            return False
        time.sleep(min(0.25, remaining / 4))
        with self._markers_lock:
            self._markers += 1
        self._queue.appendleft(marker)
        self._pending.set()
        return True

    def _idle_wait(self) -> float | None:
        if not self._heartbeat_interval or self._heartbeat is None:
            return None
        return max(0.0, self._next_heartbeat - time.monotonic())

    def _heartbeat_due(self) -> None:
        interval = self._heartbeat_interval
        if not interval or self._heartbeat is None or self._closing.is_set():
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
                with self._markers_lock:
                    self._markers -= 1
                return batch, item
            batch.append(item)
        return batch, None

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _request_timeout(self) -> float:
        timeout = self._client.timeout
        now = time.monotonic()
        if self._deadline is not None:
            timeout = min(timeout, self._deadline - now)
        if self._flush_probe_until is not None and now < self._offline_until:
            timeout = min(timeout, self._flush_probe_until - now)
        return timeout

    def _to_spool(self, records: list[wire.Record]) -> None:
        written = self._spool.append(records)
        with self._stats_lock:  # callers' threads write here too (a full queue)
            if written:
                self._stats.spooled += len(records)
            else:
                self._stats.lost += len(records)

    def _may_send(self) -> bool:
        """Not offline (or a flush waits), and not past close()'s deadline."""
        if self._past_deadline():
            return False
        now = time.monotonic()
        probe_until = self._flush_probe_until
        if now >= self._offline_until:
            return True
        return probe_until is not None and self._no_probe_until <= now < probe_until

    def _send(self, batch: list[wire.Record]) -> None:
        try:
            # Older records first: the spool may hold this session's start, without which
            # the server refuses the rest (404), and state updates must merge in order.
            if not self._may_send() or (self._spool.has_pending and not self._resend_spool()):
                self._to_spool(batch)
                return
            try:
                ack = self._deliver(wire.encode(wire.Batch(records=batch)))
            except _Refused:
                self._go_offline(0.0, firm=True)
                ack = None
            if ack is None:
                self._to_spool(batch)
            else:
                self._count(ack)
        except Exception:
            logger.exception("datacat: could not send a batch; it is spooled")
            self._to_spool(batch)
        finally:
            self._inflight = None

    def _count(self, ack: wire.BatchAck) -> None:
        self._stats.sent += ack.accepted
        self._stats.duplicates += ack.duplicates
        self._stats.batches += 1

    def _deliver(self, body: bytes) -> wire.BatchAck | None:
        """Post with retries; None when given up (the sender is then offline).

        Raises `_Refused` when the server refuses the batch (4xx, but 408 and 429).
        """
        attempts = 1 if self._probing else self._max_attempts
        delay = self._backoff
        wait = 0.0
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                self._stats.retries += 1
            timeout = self._request_timeout()
            if timeout <= 0:
                return None
            started = time.perf_counter()
            try:
                ack = self._client.transport.post_batch(body, timeout)
            except RateLimited as exc:
                wait, error = (delay if exc.retry_after is None else exc.retry_after), exc
            except APIError as exc:
                if 400 <= exc.status_code < 500 and exc.status_code != 408:
                    self._refused(exc)
                    raise _Refused(str(exc)) from exc
                wait, error = delay, exc
            except Exception as exc:
                wait, error = delay, exc
            else:
                self._back_online()
                return ack
            finally:
                self._stats.send_seconds += time.perf_counter() - started
            if attempt + 1 == attempts or wait > self._max_retry_wait or not self._pause(wait):
                break
            delay = min(delay * 2, self._backoff_cap)
        self._go_offline(wait, firm=isinstance(error, RateLimited))
        if not self._offline_logged and not self._closing.is_set():
            self._offline_logged = True
            logger.warning(
                "datacat: cannot send to %s (%s); records go to the spool in %s until it answers",
                self._client.base_url,
                error,
                self._spool.directory,
            )
        return None

    def _pause(self, seconds: float) -> bool:
        """Sleep before a retry; False when close() cut it short."""
        return not self._closing.wait(seconds)

    def _go_offline(self, at_least: float, *, firm: bool = False) -> None:
        """No network until the offline period (at least ``at_least`` s) is over.

        Unless ``firm`` (the server asked for it: 429, or refused a batch), a flush may
        still probe once: someone waits for an answer.
        """
        now = time.monotonic()
        period = self._offline_period
        self._offline_until = now + max(period, at_least)
        self._offline_period = min(period * 2, self._offline_cap)
        self._no_probe_until = self._offline_until if firm else 0.0
        self._probing = True

    def _refused(self, exc: APIError) -> None:
        self._stats.last_refusal = str(exc)
        if exc.status_code not in self._refusals_logged:
            self._refusals_logged.add(exc.status_code)
            logger.warning(
                "datacat: %s refused a batch (%s); it is kept in the spool in %s",
                self._client.base_url,
                exc,
                self._spool.directory,
            )

    def _back_online(self) -> None:
        if self._offline_logged:
            logger.info("datacat: %s answers again", self._client.base_url)
        self._offline_logged = False
        self._probing = False
        self._offline_until = 0.0
        self._offline_period = self._offline_for
        self._upload_leftovers()

    def _resend_spool(self) -> bool:
        """Send our spool files, oldest first; False when the server stopped answering."""
        return all(self._resend_file(path) for path in self._spool.rotate())

    def _resend_file(self, path: Path) -> bool:
        """Send one of our spool files; False when the server stopped answering."""
        count = _LineCount()
        try:
            with path.open("rb") as fh:
                if read_header(fh) is None:
                    self._spool.abandon(path)
                    return True
                for batch in iter_spool(fh, self._batch_size, count):
                    if self._past_deadline():
                        return False
                    ack = self._deliver(wire.encode(wire.Batch(records=batch)))
                    if ack is None:
                        return False
                    self._count(ack)
        except _Refused:
            self._spool.abandon(path)
            return True
        except OSError as exc:
            logger.warning("datacat: cannot read the spool file %s: %s", path, exc)
            self._spool.abandon(path)
            return True
        if count.skipped:
            logger.warning("datacat: %d unreadable lines skipped in %s", count.skipped, path)
        self._spool.release(path)
        return True

    def _upload_leftovers(self) -> None:
        """Once per process and server: upload spool files that earlier runs left."""
        if self._leftovers_checked:
            return
        self._leftovers_checked = True
        key = (str(self._spool.directory), self._client.base_url)
        with _leftovers_lock:
            if key in _leftovers_done:
                return
            _leftovers_done.add(key)

        def upload() -> None:
            try:
                report = upload_spool(
                    self._spool.directory, client=self._client, only_url=self._client.base_url
                )
            except Exception:
                logger.exception("datacat: could not upload earlier spool files")
                return
            if report.removed:
                logger.info(
                    "datacat: uploaded %d records from %d spool files of earlier runs",
                    report.sent,
                    report.removed,
                )

        thread = threading.Thread(target=upload, name="datacat-spool-upload", daemon=True)
        with contextlib.suppress(RuntimeError):  # the interpreter is shutting down
            thread.start()

    # -- process events -------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        self._spool.after_fork_in_child()
        self._reset()


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
    for sender in list(_all_senders):
        sender._after_fork_in_child()


atexit.register(_close_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
