"""`DeliveryPolicy`: when to send a batch, wait, spool it, or give up. Pure: no threads,
no I/O, no clock of its own (every call is given ``now``), so a test drives it on a
fake clock.

    ONLINE ──timeout, 5xx, short Retry-After──▶ BACKING_OFF ──attempts used up──▶ OFFLINE
      ▲  ▲                                          │                               │  ▲
      │  └────────────────sent────────────────────┘                               │  │
      └────────────sent (a probe, once ``offline_until`` is over)──────────────────┘  │
    connection refused, a 4xx, a long Retry-After (from any state) ────────────────────┘

The server is *slow* (a timeout, a 5xx) or *absent* (the connection is refused, the
name does not resolve). A slow server is waited for: retried with backoff, for as long
as someone waits (a flush, a close) or ``max_attempts`` times. An absent one is not:
the batch is spooled at once, and no request goes out until ``offline_until``, when a
single request probes it (each failed probe doubles the pause, up to ``offline_cap``).
A flush may probe once while offline (someone waits for an answer), unless the server
itself asked for the pause (429 / 503 with ``Retry-After``, or a refusal): then the
flush waits for the pause to end if it ends before the flush's deadline, else spools.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = ["Action", "DeliveryPolicy", "State", "Step"]


class State(enum.Enum):
    ONLINE = "online"
    BACKING_OFF = "backing off"
    OFFLINE = "offline"


class Action(enum.Enum):
    #: Post the batch now.
    SEND = "send"
    #: Nothing to do before ``Step.until`` (a backoff, a Retry-After).
    WAIT = "wait"
    #: Write the batch to the spool, without touching the network.
    SPOOL = "spool"
    #: The close deadline has passed: spool everything, stop working.
    GIVE_UP = "give up"


@dataclasses.dataclass(frozen=True)
class Step:
    action: Action
    #: For `Action.WAIT`: the time (on the caller's clock) to ask again.
    until: float = 0.0


_SEND = Step(Action.SEND)
_SPOOL = Step(Action.SPOOL)
_GIVE_UP = Step(Action.GIVE_UP)


class DeliveryPolicy:
    """The sender's state and its transitions (see the module's docstring).

    Ask `next_step` before each attempt; report its outcome with `sent`, `refused`,
    `throttled`, `unreachable` or `failed`. `flush_requested` / `flush_done` and
    `closing` say that someone waits, and until when.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        backoff: float = 0.1,
        backoff_cap: float = 2.0,
        max_retry_wait: float = 5.0,
        offline_for: float = 1.0,
        offline_cap: float = 60.0,
    ) -> None:
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.max_retry_wait = max_retry_wait
        self.offline_for = offline_for
        self.offline_cap = offline_cap
        self.state = State.ONLINE
        #: Failed attempts since the last success (reset when going offline).
        self.attempts = 0
        #: BACKING_OFF: the next attempt, not before.
        self.retry_at = 0.0
        #: OFFLINE: no request before this, but a waiting flush's one probe.
        self.offline_until = 0.0
        #: The server asked for the pause (429, 503, a refusal): not even a flush probes.
        self.firm = False
        #: The pause is for a refusal: a flush does not wait for its end either.
        self.refusing = False
        self._period = offline_for
        self._flush_deadline: float | None = None
        self._close_deadline: float | None = None
        self._probed = False

    # -- what to do ----------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """Until when someone waits (the earliest flush, or the close), if anyone does."""
        flush, close = self._flush_deadline, self._close_deadline
        if flush is None or close is None:
            return close if flush is None else flush
        return min(flush, close)

    def next_step(self, now: float) -> Step:
        """What to do with the batch at hand."""
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            closed = self._close_deadline is not None and now >= self._close_deadline
            return _GIVE_UP if closed else _SPOOL
        if self.state is State.ONLINE:
            return _SEND
        if self.state is State.BACKING_OFF:
            return self._pause_over(now, self.retry_at, deadline)
        return self._offline_step(now, deadline)

    def _offline_step(self, now: float, deadline: float | None) -> Step:
        if now >= self.offline_until:
            return _SEND  # the probe
        if deadline is None:
            return _SPOOL
        if self.refusing:
            return _SPOOL
        if self.firm:  # asked to wait: a flush waits, if the pause ends in its time
            return self._pause_over(now, self.offline_until, deadline)
        return _SPOOL if self._probed else _SEND  # someone waits: try once

    @staticmethod
    def _pause_over(now: float, until: float, deadline: float | None) -> Step:
        """Send once the pause is over; wait for it, unless it outlasts whoever waits."""
        if now >= until:
            return _SEND
        if deadline is not None and until >= deadline:
            return _SPOOL
        return Step(Action.WAIT, until)

    def timeout(self, now: float, default: float) -> float:
        """The timeout of a request sent now: ``default``, cut to the deadline."""
        deadline = self.deadline
        return default if deadline is None else min(default, deadline - now)

    # -- what happened -------------------------------------------------------------------

    def sent(self, now: float) -> bool:
        """The server took the batch. True when this ends an outage (it was offline)."""
        came_back = self.state is State.OFFLINE
        self.state = State.ONLINE
        self.attempts = 0
        self.firm = False
        self.offline_until = 0.0
        self._period = self.offline_for
        return came_back

    def refused(self, now: float, *, pause: bool = True) -> None:
        """A 4xx: the server is there but does not want this batch as it is (the caller
        keeps it in the spool). ``pause``: the next ones would fare the same (a missing
        token, mostly): no request, not even a flush's probe, for the offline period."""
        if pause:
            self._go_offline(now, 0.0, firm=True)
            self.refusing = True
        else:
            self.sent(now)  # it answered: it is online, for batches it wants

    def throttled(self, now: float, retry_after: float | None) -> None:
        """429, or 503 with ``Retry-After``: wait as asked if it is short, else pause."""
        self.attempts += 1
        wait = self._backoff() if retry_after is None else max(0.0, retry_after)
        if self._may_retry(now, wait):
            self._back_off(now, wait)
        else:
            self._go_offline(now, wait, firm=True)

    def unreachable(self, now: float) -> None:
        """The connection was refused (nothing listens there): the server is absent,
        and waiting for it would only delay the program. Spool, pause."""
        self._go_offline(now, 0.0, firm=False)

    def failed(self, now: float) -> None:
        """A timeout, a 5xx, a broken connection: the server is there but slow or ailing.
        Retried with backoff while someone waits (up to the deadline) or up to
        ``max_attempts`` times; then a pause."""
        self.attempts += 1
        wait = self._backoff()
        if self._may_retry(now, wait):
            self._back_off(now, wait)
        else:
            self._go_offline(now, 0.0, firm=False)

    def flush_requested(self, deadline: float) -> None:
        """Someone waits until ``deadline`` (the same deadline again changes nothing)."""
        if deadline != self._flush_deadline:
            self._flush_deadline = deadline
            self._probed = False

    def flush_done(self) -> None:
        """Nobody waits for a flush any more."""
        self._flush_deadline = None
        self._probed = False

    def closing(self, deadline: float) -> None:
        """The sender closes: after ``deadline``, give up."""
        self._close_deadline = deadline

    # -- transitions ---------------------------------------------------------------------

    def _backoff(self) -> float:
        return min(self.backoff * 2.0 ** max(0, self.attempts - 1), self.backoff_cap)

    def _may_retry(self, now: float, wait: float) -> bool:
        if wait > self.max_retry_wait:
            return False
        deadline = self.deadline
        if deadline is not None:
            return now + wait < deadline  # someone waits: keep trying while there is time
        if self.state is State.OFFLINE:
            return False  # a failed probe
        return self.attempts < self.max_attempts

    def _back_off(self, now: float, wait: float) -> None:
        self.state = State.BACKING_OFF
        self.retry_at = now + wait

    def _go_offline(self, now: float, at_least: float, *, firm: bool) -> None:
        self.state = State.OFFLINE
        self.offline_until = now + max(self._period, at_least)
        self._period = min(self._period * 2, self.offline_cap)
        self.firm = firm
        self.refusing = False
        self.attempts = 0
        if self.deadline is not None:
            self._probed = True
