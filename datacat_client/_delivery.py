"""`Delivery`: how a batch reaches the server, or the spool, as the `DeliveryPolicy` says.

It runs on the sender's thread (only `spool` is called from other threads too). Each
post asks the policy first: send, wait (a backoff, a ``Retry-After``), or not now (the
batch goes to the spool); then tells it what happened. Older records go first: this
session's spool files are sent again before a new batch (they may hold the session's
start, without which the server refuses the rest, and state updates merge in order).
Once the server has taken a batch, the spool files that earlier runs left for it are
sent too, once per process and server.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

from . import wire
from ._client import DatacatClient
from ._errors import APIError, DatacatError, TransportError
from ._policy import Action, DeliveryPolicy, State, Step
from ._replay import Replayer, UploadReport
from ._spool import LeftFile, SpoolWriter, list_spool

__all__ = ["Delivery", "SenderStats"]

logger = logging.getLogger("datacat")

_leftovers_done: set[tuple[str, str]] = set()
_leftovers_lock = threading.Lock()


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
    #: Why a post last got no wanted answer, in a few words (``server unreachable``,
    #: ``server did not answer in time``, ``server busy (HTTP 429: ...)``), if one did.
    last_failure: str | None = None
    #: Records from spool files that earlier runs left, which this sender delivered.
    leftovers_sent: int = 0


class NotNow(DatacatError):
    """The policy says the batch goes to the spool (the server is offline, or whoever
    waited is gone)."""


#: Until when someone waits: (the earliest flush, the close), each None if none.
Deadlines = Callable[[], tuple[float | None, float | None]]

#: Where a batch comes from: the queue, this session's spool, or a file an earlier run left.
Source = Literal["live", "spool", "leftover"]


class Delivery:
    """Posts batches of one sender through the policy; spools what it cannot post."""

    def __init__(
        self,
        client: DatacatClient,
        spool: SpoolWriter,
        policy: DeliveryPolicy,
        stats: SenderStats,
        stats_lock: threading.Lock,
        *,
        batch_size: int,
        deadlines: Deadlines,
        wake: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.spool_writer = spool
        self.policy = policy
        self.stats = stats
        self._stats_lock = stats_lock
        self._batch_size = batch_size
        self._deadlines = deadlines
        self._wake = wake
        self._clock = clock
        self._leftovers: list[LeftFile] | None = None  # None: not looked for yet
        self._offline_logged = False
        self._refusals_logged: set[int] = set()

    # -- the sender's calls --------------------------------------------------------------

    def send(self, batch: list[wire.Record]) -> None:
        """Deliver a batch of this session's records (older ones first), or spool it."""
        try:
            if not self.may_send() or (self.spool_writer.has_pending and not self.resend_spool()):
                self.spool(batch)
                return
            self.post(batch, "live")
        except (NotNow, APIError):
            self.spool(batch)
        except Exception:
            logger.exception("datacat: could not send a batch; it is spooled")
            self.spool(batch)

    def settle(self) -> None:
        """Someone waits (a flush): send this session's spool files, and what earlier
        runs left, as far as the policy lets us."""
        if self.spool_writer.has_pending and self.may_send():
            self.resend_spool()
        self.send_leftovers()

    def spool(self, records: Sequence[wire.Record]) -> None:
        """Write records to the spool file (any thread)."""
        written = self.spool_writer.append(records)
        with self._stats_lock:
            if written:
                self.stats.spooled += len(records)
            else:
                self.stats.lost += len(records)

    def may_send(self) -> bool:
        """Whether the policy would post now (or after a short wait)."""
        return self._next_step().action in (Action.SEND, Action.WAIT)

    @property
    def has_leftovers(self) -> bool:
        """Files earlier runs left are waiting to be sent."""
        return bool(self._leftovers)

    def resend_spool(self) -> bool:
        """Send this session's spool files, oldest first; False when the server stopped
        answering (the batch at hand then goes to the spool too)."""
        post = functools.partial(self.post, source="spool")
        return Replayer(post, self._batch_size).replay(self.spool_writer.rotate(), UploadReport())

    def send_leftovers(self, *, one: bool = False) -> None:
        """Send the files that earlier runs left (all of them, or ``one``)."""
        post = functools.partial(self.post, source="leftover")
        while self._leftovers and self.may_send():
            if not Replayer(post, self._batch_size).replay(self._leftovers[:1], UploadReport()):
                return  # the server stopped answering: the file waits for the next time
            del self._leftovers[0]
            if one:
                return

    # -- one post, as the policy says ----------------------------------------------------

    def _next_step(self) -> Step:
        flush, close = self._deadlines()
        policy = self.policy
        if flush is None:
            policy.flush_done()
        else:
            policy.flush_requested(flush)
        if close is not None:
            policy.closing(close)
        return policy.next_step(self._clock())

    def post(self, records: list[wire.Record], source: Source) -> wire.BatchAck:
        """Post one batch: retried and waited for as the policy says. Raises `NotNow`
        (spool it), or `APIError` when the server refused it."""
        while True:
            self._wake.clear()  # a flush or close that comes now wakes the wait below
            step = self._next_step()
            if step.action is Action.WAIT:
                self._wake.wait(max(0.0, step.until - self._clock()))
                continue
            if step.action is not Action.SEND:
                raise NotNow(step.action.value)
            ack = self._attempt(records, source)
            if ack is not None:
                return ack

    def _attempt(self, records: list[wire.Record], source: Source) -> wire.BatchAck | None:
        """One request; its outcome goes to the policy. None: not taken (ask again)."""
        policy = self.policy
        if policy.attempts:
            self.stats.retries += 1
        started = time.perf_counter()
        try:
            timeout = policy.timeout(self._clock(), self.client.timeout)
            ack = self.client.send_batch(records, timeout=timeout)
        except Exception as exc:
            self._failed(exc, source)
            return None
        finally:
            self.stats.send_seconds += time.perf_counter() - started
        if policy.sent(self._clock()) and self._offline_logged:
            logger.info("datacat: %s answers again", self.client.base_url)
        self._offline_logged = False
        if source == "leftover":
            self.stats.leftovers_sent += ack.accepted + ack.duplicates
        else:
            self.stats.sent += ack.accepted
            self.stats.duplicates += ack.duplicates
            self.stats.batches += 1
        self._look_for_leftovers()
        return ack

    def _failed(self, error: Exception, source: Source) -> None:
        """Tell the policy what went wrong; re-raise a refusal (an `APIError` 4xx)."""
        policy, now = self.policy, self._clock()
        if isinstance(error, APIError):
            status = error.status_code
            if status == 429 or (status == 503 and error.retry_after is not None):
                policy.throttled(now, error.retry_after)
                self.stats.last_failure = f"server busy ({error})"
            elif 400 <= status < 500 and status != 408:
                # A live batch's refusal is every batch's (a missing token, mostly); a
                # spool file's is its own.
                policy.refused(now, pause=source == "live")
                self._note_refusal(error)
                raise error
            else:
                policy.failed(now)
                self.stats.last_failure = f"server error ({error})"
        elif isinstance(error, TransportError) and error.unreachable:
            policy.unreachable(now)
            self.stats.last_failure = "server unreachable"
        else:  # a timeout, a broken connection; or a bug in a transport
            if not isinstance(error, DatacatError):
                logger.debug("datacat: unexpected error in a post", exc_info=error)
            policy.failed(now)
            self.stats.last_failure = "server did not answer in time"
        self._note_failure(error)

    # -- bookkeeping -----------------------------------------------------------------------

    def _note_failure(self, error: Exception) -> None:
        if self.policy.state is not State.OFFLINE or self._offline_logged:
            return
        if self._deadlines()[1] is not None:
            return  # closing: the summary says it
        self._offline_logged = True
        logger.warning(
            "datacat: cannot send to %s (%s); records go to the spool in %s until it answers",
            self.client.base_url,
            error,
            self.spool_writer.directory,
        )

    def _note_refusal(self, exc: APIError) -> None:
        self.stats.last_refusal = str(exc)
        if exc.status_code not in self._refusals_logged:
            self._refusals_logged.add(exc.status_code)
            logger.warning(
                "datacat: %s refused a batch (%s); it is kept in the spool in %s",
                self.client.base_url,
                exc,
                self.spool_writer.directory,
            )

    def _look_for_leftovers(self) -> None:
        """After the first acknowledgement: list what earlier runs left for this server
        (once per process, spool directory and server)."""
        if self._leftovers is not None:
            return
        self._leftovers = []
        directory, url = self.spool_writer.directory, self.client.base_url
        with _leftovers_lock:
            if (str(directory), url) in _leftovers_done:
                return
            _leftovers_done.add((str(directory), url))
        try:
            paths = list_spool(directory)
        except OSError:
            return
        own = set(self.spool_writer.paths())
        self._leftovers = [LeftFile(path, url) for path in paths if path not in own]
