"""The on-disk spool: records that could not be sent yet, as JSON lines.

A spool file is ``<dir>/<session_id>-<pid>-<random>.jsonl``. Its first line is a header,
``{"datacat_spool": 1, "url": "<base_url>"}``, then one encoded `wire` record a line.
The process that writes a file holds an exclusive ``flock`` on it for as long as the file
is open, so an uploader (``datacat upload``, or the next client start) skips files that
are still being written. Each append is one ``write`` of whole lines on an unbuffered
descriptor; a line torn by a killed process is skipped, and counted, when the file is read.

Uploading is idempotent: the server stores each (session, seq) once, so a file whose
upload failed half-way is simply sent again, and deleted only once every batch of it was
acknowledged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from . import wire
from ._client import DatacatClient
from ._config import default_spool_dir
from ._errors import APIError, DatacatError, NotFound

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, uploaders cannot tell
    fcntl = None  # type: ignore[assignment]

__all__ = ["SpoolWriter", "UploadReport", "iter_spool", "read_header", "upload_spool"]

logger = logging.getLogger("datacat")

SPOOL_VERSION = 1
_RETRY_OPEN_AFTER = 5.0  # seconds before trying again a directory that failed

_warned_dirs: set[str] = set()
_warned_lock = threading.Lock()


class _Header(msgspec.Struct):
    datacat_spool: Literal[1]
    url: str


_header_decoder = msgspec.json.Decoder(_Header)


def _try_lock(fd: int) -> bool:
    """Take the file's exclusive lock without waiting; False if another holder has it."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _warn_unwritable(directory: Path, exc: OSError) -> None:
    key = str(directory)
    with _warned_lock:
        if key in _warned_dirs:
            return
        _warned_dirs.add(key)
    logger.warning(
        "datacat: cannot write the spool directory %s (%s); records the server does not "
        "take are lost. Set DATACAT_SPOOL_DIR to a writable directory.",
        directory,
        exc,
    )


@dataclasses.dataclass
class _OwnFile:
    path: Path
    fd: int


class SpoolWriter:
    """Appends one session's records to this process's spool file. Never raises.

    The sender re-sends its own files once the server answers again: `rotate` hands them
    over (new appends go to a fresh file), then `release` (sent: deleted) or `abandon`
    (rejected: left on disk for ``datacat upload``).
    """

    def __init__(self, directory: Path | str, session_id: str, base_url: str) -> None:
        self.directory = Path(directory)
        self.session_id = session_id
        self.base_url = base_url
        self._lock = threading.Lock()
        self._current: _OwnFile | None = None
        self._pending: list[_OwnFile] = []
        self._retry_at = 0.0

    def _open(self) -> _OwnFile | None:
        if time.monotonic() < self._retry_at:
            return None
        name = f"{self.session_id}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        path = self.directory / name
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            self._retry_at = time.monotonic() + _RETRY_OPEN_AFTER
            _warn_unwritable(self.directory, exc)
            return None
        _try_lock(fd)
        try:
            _write_all(
                fd, wire.encode({"datacat_spool": SPOOL_VERSION, "url": self.base_url}) + b"\n"
            )
        except OSError as exc:
            os.close(fd)
            self._retry_at = time.monotonic() + _RETRY_OPEN_AFTER
            _warn_unwritable(self.directory, exc)
            return None
        return _OwnFile(path, fd)

    def append(self, records: Sequence[wire.Record]) -> bool:
        """Write records; False when they could not be written (they are lost)."""
        if not records:
            return True
        try:
            data = b"\n".join([wire.encode(record) for record in records]) + b"\n"
        except Exception:
            logger.exception("datacat: cannot encode records for the spool")
            return False
        with self._lock:
            own = self._current
            if own is None:
                own = self._current = self._open()
                if own is None:
                    return False
            try:
                _write_all(own.fd, data)
            except OSError as exc:
                # Maybe half written: leave that file as it is (its torn line is skipped
                # when read) and start a new one next time.
                self._current = None
                with contextlib.suppress(OSError):
                    os.close(own.fd)
                _warn_unwritable(self.directory, exc)
                return False
        return True

    @property
    def has_pending(self) -> bool:
        """Whether this writer has files that were not sent yet."""
        return self._current is not None or bool(self._pending)

    def paths(self) -> list[Path]:
        """This writer's files not sent yet, oldest first."""
        with self._lock:
            own = [*self._pending, *([self._current] if self._current else [])]
        return [f.path for f in own]

    def rotate(self) -> list[Path]:
        """Hand over every file to re-send; later appends go to a new file."""
        with self._lock:
            if self._current is not None:
                self._pending.append(self._current)
                self._current = None
            return [f.path for f in self._pending]

    def _take(self, path: Path) -> _OwnFile | None:
        with self._lock:
            for own in self._pending:
                if own.path == path:
                    self._pending.remove(own)
                    return own
        return None

    def release(self, path: Path) -> None:
        """The file was sent: delete it."""
        own = self._take(path)
        if own is not None:
            with contextlib.suppress(OSError):
                own.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                os.close(own.fd)

    def abandon(self, path: Path) -> None:
        """The server refused the file: unlock it and leave it for ``datacat upload``."""
        own = self._take(path)
        if own is not None:
            with contextlib.suppress(OSError):
                os.close(own.fd)

    def close(self) -> None:
        """Unlock every file (they stay on disk for the next upload)."""
        with self._lock:
            own = [*self._pending, *([self._current] if self._current else [])]
            self._pending, self._current = [], None
        for f in own:
            with contextlib.suppress(OSError):
                os.close(f.fd)

    def after_fork_in_child(self) -> None:
        """Forget the parent's files (its lock stays with the parent)."""
        self._lock = threading.Lock()
        self.close()


# -- reading --------------------------------------------------------------------------


def read_header(fh: BinaryIO) -> str | None:
    """The url of a spool file's header line, or None when it is not a spool file."""
    try:
        return _header_decoder.decode(fh.readline()).url
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


@dataclasses.dataclass
class _LineCount:
    skipped: int = 0


def iter_spool(fh: BinaryIO, batch_size: int, count: _LineCount) -> Iterator[list[wire.Record]]:
    """Records of a spool file (after its header), in batches; bad lines are counted."""
    batch: list[wire.Record] = []
    for line in fh:
        if not line.strip():
            continue
        try:
            batch.append(wire.record_decoder.decode(line))
        except (msgspec.DecodeError, msgspec.ValidationError):
            count.skipped += 1  # a line torn by a killed process, or not a valid record
            continue
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- uploading ------------------------------------------------------------------------


@dataclasses.dataclass
class UploadReport:
    """What `upload_spool` did."""

    #: Spool files looked at.
    files: int = 0
    #: Records the server stored, and records it already had.
    sent: int = 0
    duplicates: int = 0
    #: Files sent completely, then deleted.
    removed: int = 0
    #: Lines that were not valid records (torn by a killed writer), not sent.
    skipped_lines: int = 0
    #: Files kept, with the reason: locked (still being written), refused, failed.
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: How many of the skipped files failed (refused, or the server did not answer),
    #: as opposed to files skipped on purpose (locked, or for another server).
    failed: int = 0

    @property
    def ok(self) -> bool:
        """Whether every file that was ours to send now is sent."""
        return self.failed == 0

    def __str__(self) -> str:
        lines = [
            f"{self.files} spool files: {self.sent} records stored, {self.duplicates} already"
            f" there, {self.removed} files sent and removed"
            + (f", {self.skipped_lines} unreadable lines skipped" if self.skipped_lines else "")
        ]
        lines += [f"kept {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def _refusal(fh: BinaryIO, only_url: str | None) -> str | None:
    """Why an open spool file is not to be uploaded now, or None."""
    if not _try_lock(fh.fileno()):
        return "locked: still being written"
    url = read_header(fh)
    if url is None:
        return "not a datacat spool file"
    if only_url is not None and url != only_url:
        return f"for another server: {url}"
    return None


# What became of a file: go on with the next file, stop (the server is unusable), or
# go on but try this file again later (404: its session starts in another file).
_NEXT, _STOP, _LATER = "next", "stop", "later"


def _send_file(
    fh: BinaryIO, client: DatacatClient, batch_size: int, report: UploadReport
) -> tuple[str | None, str]:
    """Send a file's records: (why it failed, or None; what to do next)."""
    count = _LineCount()
    try:
        for batch in iter_spool(fh, batch_size, count):
            ack = client.send_batch(batch)
            report.sent += ack.accepted
            report.duplicates += ack.duplicates
    except NotFound as exc:
        return f"refused: {exc}", _LATER
    except APIError as exc:
        # A 4xx (but 429) concerns this file; the next one may be fine.
        file_only = 400 <= exc.status_code < 500 and exc.status_code != 429
        return f"refused: {exc}", _NEXT if file_only else _STOP
    except (DatacatError, OSError) as exc:
        return f"failed: {exc}", _STOP
    finally:
        report.skipped_lines += count.skipped
    return None, _NEXT


def _upload_file(
    path: Path, client: DatacatClient, batch_size: int, only_url: str | None, report: UploadReport
) -> str:
    """Upload one file, delete it when sent; say what to do next."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return _NEXT  # someone else uploaded it meanwhile
    except OSError as exc:
        report.files += 1
        report.failed += 1
        report.skipped.append((str(path), f"cannot open: {exc}"))
        return _NEXT
    report.files += 1
    then = _NEXT
    with fh:
        reason = _refusal(fh, only_url)
        if reason is None:
            reason, then = _send_file(fh, client, batch_size, report)
            report.failed += reason is not None
        if reason is None:
            path.unlink(missing_ok=True)  # still locked: no one else is reading it
            report.removed += 1
        else:
            report.skipped.append((str(path), reason))
    return then


def _oldest_first(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except OSError:
        return (0.0, path.name)


def upload_spool(
    directory: Path | str | None = None,
    base_url: str | None = None,
    token: str | None = None,
    *,
    batch_size: int = 1000,
    only_url: str | None = None,
    client: DatacatClient | None = None,
) -> UploadReport:
    """Send the spooled records to the server; delete each file once all of it is stored.

    ``directory`` defaults to `default_spool_dir`; ``base_url`` and ``token`` to the
    environment (or pass a ready ``client``). ``only_url`` uploads only files spooled for
    that server. Files still being written (locked) are skipped. Raises nothing for a
    failed file: it is kept and listed in the report.
    """
    folder = Path(directory) if directory is not None else default_spool_dir()
    report = UploadReport()
    try:
        paths = sorted(folder.glob("*.jsonl"), key=_oldest_first)
    except OSError as exc:
        report.skipped.append((str(folder), f"cannot list: {exc}"))
        return report
    if not paths:
        return report
    own_client = client is None
    if client is None:
        client = DatacatClient(base_url, token)
    try:
        later = []
        for path in paths:
            then = _upload_file(path, client, batch_size, only_url, report)
            if then == _STOP:
                break
            if then == _LATER:
                later.append(str(path))
        if later and report.removed:  # another file may have started those sessions
            report.files -= len(later)
            report.failed -= len(later)
            report.skipped = [item for item in report.skipped if item[0] not in later]
            for name in later:
                if _upload_file(Path(name), client, batch_size, only_url, report) == _STOP:
                    break
    finally:
        if own_client:
            client.close()
    return report
