"""`Session` and `create_session`: the buffered, never-blocking API.

Every logging call builds one `wire` record and appends it to the background sender's
queue; nothing on that path touches the network or raises into the program. The caller's
``data`` and ``state`` are encoded at call time (``msgspec.Raw``), which is both cheap and
a snapshot: changing the object afterwards does not change what is sent.

Sequence numbers start at the session object's creation time in microseconds and count
up by one per record, so two `Session` objects on one session id (two processes, or a
forked child) do not collide; the server stores each (session, seq) once.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import msgspec

from . import wire
from ._capture import ExcInfo, exception_data
from ._client import DatacatClient, format_tags
from ._config import default_spool_dir
from ._heartbeat import HeartbeatMonitor
from ._sender import BackgroundSender, SenderStats
from ._transport import Transport

__all__ = ["Session", "create_session"]

logger = logging.getLogger("datacat")

_SESSION_ID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_encode = wire.encode
_now = time.time
_Raw = msgspec.Raw
_isfinite = math.isfinite


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-friendly copy of ``value``: mapping keys as strings, sequences as lists."""
    if depth > 100:
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(item, depth + 1) for item in value]
    return value


def _pin(value: Any) -> msgspec.Raw:
    """``value`` encoded now, as JSON. Never raises: what cannot be encoded becomes text."""
    try:
        return _Raw(_encode(value))
    except Exception:  # try the next, more forgiving conversions
        for convert in (_jsonable, repr):
            try:
                return _Raw(_encode(convert(value)))
            except Exception:  # noqa: S112
                continue
    return _Raw(b'"<unencodable>"')


def _seq_base() -> int:
    return time.time_ns() // 1000


class Session:
    """One session: a run of a program, or of a test suite. Create it with `create_session`.

    Logging methods return at once and never raise; records are sent in the background.
    Attributes: ``session_id``, ``client`` (a `DatacatClient` for plain calls).
    """

    def __init__(
        self,
        client: DatacatClient,
        session_id: str,
        *,
        name: str = "",
        product: str = "",
        version: str = "",
        labels: Mapping[str, object] | None = None,
        state: Mapping[str, Any] | None = None,
        spool_dir: Path | str | None = None,
        heartbeat_interval: float | None = 15.0,
        flush_timeout: float = 5.0,
        sender_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.flush_timeout = flush_timeout
        self._seq = itertools.count(_seq_base())
        self._heartbeat_interval = heartbeat_interval or None
        self._monitor: HeartbeatMonitor | None = None
        self._ended = False
        self._warned: set[tuple[str, str]] = set()
        self._sender = BackgroundSender(
            client,
            session_id=session_id,
            spool_dir=default_spool_dir() if spool_dir is None else spool_dir,
            heartbeat=self._heartbeat_record,
            heartbeat_interval=self._heartbeat_interval,
            flush_timeout=flush_timeout,
            on_fork=self._after_fork_in_child,
            **(sender_options or {}),
        )
        self._submit = self._sender.submit
        self.record(
            wire.SessionStart,
            name=name,
            product=product,
            version=version,
            labels={str(key): str(value) for key, value in (labels or {}).items()},
            state=_pin(dict(state)) if state else {},
            heartbeat_interval=self._heartbeat_interval,
        )

    # -- helpers ----------------------------------------------------------------------

    @property
    def stats(self) -> SenderStats:
        """The sender's counters (a snapshot)."""
        return self._sender.stats

    @property
    def sender(self) -> BackgroundSender:
        """The background sender of this session."""
        return self._sender

    def next_seq(self) -> int:
        """The next sequence number of this session."""
        return next(self._seq)

    def submit(self, record: wire.Record) -> None:
        """Queue a ready-made record (its session_id and seq are the caller's)."""
        self._submit(record)

    def record(self, cls: type[wire.Record], **fields: Any) -> None:
        """Build a record of ``cls`` for this session (seq and timestamp filled in),
        check it, and queue it. An invalid record is dropped with a warning."""
        try:
            fields.setdefault("timestamp", _now())
            record = cls(session_id=self.session_id, seq=next(self._seq), **fields)
            # One invalid record would make the server refuse its whole batch.
            wire.record_decoder.decode(_encode(record))
        except Exception as exc:
            self._drop(cls.__name__, "record", f"an invalid {cls.__name__} was dropped: {exc}")
            return
        self._submit(record)

    def _drop(self, key: str, kind: str, message: str) -> None:
        """Count a record dropped as invalid; warn once per (key, kind)."""
        self._sender.drop()
        if (key, kind) not in self._warned:
            self._warned.add((key, kind))
            logger.warning("datacat: %s", message)

    def _bad_name(self, name: object, kind: str) -> str | None:
        text = name if isinstance(name, str) else str(name)
        if not text:
            self._drop("", kind, f"a {kind} without a name was dropped")
            return None
        return text

    def _heartbeat_record(self) -> wire.Record:
        return wire.Heartbeat(
            session_id=self.session_id,
            seq=next(self._seq),
            timestamp=_now(),
            interval=self._heartbeat_interval,
        )

    # -- logging (never blocks, never raises) -------------------------------------------

    def update_state(self, state: Mapping[str, Any]) -> None:
        """Deep-merge a partial state into the session's state."""
        try:
            if not isinstance(state, dict):
                if not isinstance(state, Mapping):
                    self._drop(
                        type(state).__name__, "state", "a state that is not a dict was dropped"
                    )
                    return
                state = dict(state)
            self._submit(
                wire.StateUpdate(
                    session_id=self.session_id,
                    seq=next(self._seq),
                    timestamp=_now(),
                    state=_pin(state),  # type: ignore[arg-type]
                )
            )
        except Exception:
            logger.exception("datacat: update_state failed")

    def log_event(self, name: str, data: Any = None) -> None:
        """Log an event with optional JSON-like ``data``."""
        try:
            if type(name) is not str or not name:
                checked = self._bad_name(name, "event")
                if checked is None:
                    return
                name = checked
            self._submit(
                wire.Event(
                    session_id=self.session_id,
                    seq=next(self._seq),
                    timestamp=_now(),
                    name=name,
                    data=None if data is None else _pin(data),
                )
            )
        except Exception:
            logger.exception("datacat: log_event failed")

    def log_metric(
        self,
        name: str,
        value: float,
        tags: Sequence[object] | Mapping[str, object] | None = None,
        *,
        unit: str = "",
        kind: wire.MetricKind = "gauge",
    ) -> None:
        """Log a metric value. ``tags``: a list of strings, or a mapping (sent as ``k=v``).

        ``unit`` says what the value counts (``"ms"``, ``"bytes"``, ``"requests"``): the
        dashboard labels axes and statistics with it. ``kind`` is ``"gauge"`` (a level at
        a moment, the default) or ``"counter"`` (a running total, which the metrics
        explorer shows as a rate per second).

        A value that is not a finite number, or a kind other than those two, is dropped,
        with one warning per metric name.
        """
        try:
            if type(name) is not str or not name:
                checked = self._bad_name(name, "metric")
                if checked is None:
                    return
                name = checked
            if type(value) is not float:
                try:
                    value = float(value)
                except (TypeError, ValueError, OverflowError):
                    value = math.nan
            if not _isfinite(value):
                self._drop(
                    name,
                    "metric",
                    f"metric {name!r}: a value that is not a finite number was dropped",
                )
                return
            if kind not in ("gauge", "counter"):
                self._drop(
                    name,
                    "metric kind",
                    f"metric {name!r}: kind must be 'gauge' or 'counter', got {kind!r};"
                    " the value was dropped",
                )
                return
            self._submit(
                wire.Metric(
                    session_id=self.session_id,
                    seq=next(self._seq),
                    timestamp=_now(),
                    name=name,
                    value=value,
                    tags=format_tags(tags) if tags else [],
                    unit=unit if type(unit) is str else str(unit),
                    kind=kind,
                )
            )
        except Exception:
            logger.exception("datacat: log_metric failed")

    def log_exception(
        self, exc_info: ExcInfo = None, extra_data: Mapping[str, Any] | None = None
    ) -> None:
        """Log an ``exception`` event (None: the exception being handled now)."""
        try:
            if exc_info is None:
                exc_info = sys.exc_info()
            self.log_event("exception", exception_data(exc_info, extra_data))
        except Exception:
            logger.exception("datacat: log_exception failed")

    def heartbeat(self) -> None:
        """Tell the heartbeat monitor (if one runs) that the program is alive."""
        monitor = self._monitor
        if monitor is not None:
            monitor.heartbeat()

    def start_heartbeat_monitor(
        self, timeout: float = 60, check_interval: float = 5
    ) -> HeartbeatMonitor:
        """Start a `HeartbeatMonitor` that logs hangs to this session; returns it."""
        self.stop_heartbeat_monitor()
        monitor = HeartbeatMonitor(self, timeout=timeout, check_interval=check_interval)
        self._monitor = monitor.start()
        return monitor

    def stop_heartbeat_monitor(self) -> None:
        """Stop the heartbeat monitor, if one runs."""
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.stop()

    def end(self) -> None:
        """End the session. Records logged afterwards are still stored."""
        self.stop_heartbeat_monitor()
        if self._ended:
            return
        self._ended = True
        self._sender.stop_heartbeats()
        self.record(wire.SessionEnd)

    # -- reading, flushing, closing -----------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was logged is stored (True) or spooled / timed out (False)."""
        return self._sender.flush(self.flush_timeout if timeout is None else timeout)

    def get_details(self) -> dict[str, Any]:
        """Flush, then read the session from the server (may raise `DatacatError`)."""
        self.flush()
        return self.client.get_session(self.session_id)

    def close(self, timeout: float | None = None) -> None:
        """Flush for at most ``timeout`` seconds, spool the rest, release the connections."""
        self.stop_heartbeat_monitor()
        self._sender.close(self.flush_timeout if timeout is None else timeout)
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.log_exception((exc_type, exc, tb))
        self.end()
        self.close()

    def _after_fork_in_child(self) -> None:
        """A forked child: a range of sequence numbers of its own, no monitor thread."""
        self._seq = itertools.count(_seq_base())
        self._monitor = None


def create_session(
    base_url: str | None = None,
    *,
    token: str | None = None,
    name: str = "",
    product: str = "",
    version: str = "",
    labels: Mapping[str, object] | None = None,
    state: Mapping[str, Any] | None = None,
    session_id: str | None = None,
    spool_dir: Path | str | None = None,
    heartbeat_interval: float | None = 15.0,
    flush_timeout: float = 5.0,
    transport: Transport | None = None,
    sender_options: Mapping[str, Any] | None = None,
) -> Session:
    """Open a session and return at once: nothing waits for the server.

    ``session_id`` defaults to a new UUID. ``base_url`` and ``token`` default to
    ``$DATACAT_URL`` and ``$DATACAT_TOKEN``; ``spool_dir`` to `default_spool_dir`.
    ``heartbeat_interval``: seconds between liveness heartbeats (None: none).
    ``flush_timeout``: how long closing (and exiting) may wait for the server.
    ``sender_options``: more keyword arguments for the `BackgroundSender`.
    """
    if session_id is None:
        session_id = str(uuid.uuid4())
    elif not _SESSION_ID.match(session_id):
        raise ValueError(f"session_id must be a UUID, got {session_id!r}")
    client = DatacatClient(base_url, token, transport=transport)
    return Session(
        client,
        session_id,
        name=name,
        product=product,
        version=version,
        labels=labels,
        state=state,
        spool_dir=spool_dir,
        heartbeat_interval=heartbeat_interval,
        flush_timeout=flush_timeout,
        sender_options=sender_options,
    )
