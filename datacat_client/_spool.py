"""The on-disk spool: records that could not be sent yet, as JSON lines.

A spool file is ``<dir>/<session_id>-<pid>-<random>.jsonl``. Its first line is a header,
``{"datacat_spool": 1, "url": "<base_url>"}``, then one encoded `wire` record a line.
The process that writes a file holds an exclusive ``flock`` on it for as long as the file
is open, so an uploader (``datacat upload``, or the next client start) skips files that
are still being written. Each append is one ``write`` of whole lines on an unbuffered
descriptor; a line torn by a killed process is skipped, and counted, when the file is read.

Two kinds of file are sent again (by `_replay.Replayer`): a writer's own files
(`OwnFile`: it holds their lock) and files other processes left (`LeftFile`: locked
while they are sent, skipped while another process holds them).
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

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locking, uploaders cannot tell
    fcntl = None  # type: ignore[assignment]

__all__ = ["LeftFile", "OwnFile", "Skip", "SpoolWriter", "iter_spool", "list_spool", "read_header"]

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
class _OpenFile:
    path: Path
    fd: int


class SpoolWriter:
    """Appends one session's records to this process's spool file. Never raises.

    The sender re-sends its own files once the server answers again: `rotate` hands them
    over as `OwnFile` objects (new appends go to a fresh file), which then `release`
    (sent: deleted) or `abandon` (rejected: left on disk for ``datacat upload``) them.
    """

    def __init__(self, directory: Path | str, session_id: str, base_url: str) -> None:
        self.directory = Path(directory)
        self.session_id = session_id
        self.base_url = base_url
        self._lock = threading.Lock()
        self._current: _OpenFile | None = None
        self._pending: list[_OpenFile] = []
        self._retry_at = 0.0
        #: Files the server refused, left on disk for ``datacat upload``.
        self.abandoned = 0

    def _open(self) -> _OpenFile | None:
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
        return _OpenFile(path, fd)

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

    def rotate(self) -> list[OwnFile]:
        """Hand over every file to re-send; later appends go to a new file."""
        with self._lock:
            if self._current is not None:
                self._pending.append(self._current)
                self._current = None
            return [OwnFile(self, f.path) for f in self._pending]

    def _take(self, path: Path) -> _OpenFile | None:
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
            self.abandoned += 1
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
class LineCount:
    skipped: int = 0


def iter_spool(fh: BinaryIO, batch_size: int, count: LineCount) -> Iterator[list[wire.Record]]:
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


def _oldest_first(path: Path) -> tuple[float, str]:
    try:
        return (path.stat().st_mtime, path.name)
    except OSError:
        return (0.0, path.name)


def list_spool(directory: Path) -> list[Path]:
    """The spool files in ``directory``, oldest first (none if it does not exist).

    Raises `OSError` when the directory cannot be listed.
    """
    return sorted(directory.glob("*.jsonl"), key=_oldest_first)


# -- files to send again ----------------------------------------------------------------


class Skip(Exception):
    """A spool file that is not to be sent now, and why; ``failed`` when that is a
    failure rather than on purpose (a file still being written, or for another server)."""

    def __init__(self, reason: str, *, failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed


class OwnFile:
    """One of a `SpoolWriter`'s files: its writer holds the lock."""

    def __init__(self, writer: SpoolWriter, path: Path) -> None:
        self.writer = writer
        self.path = path

    def open(self) -> BinaryIO:
        """The file, read past its header."""
        fh = self.path.open("rb")
        if read_header(fh) is None:
            fh.close()
            raise Skip("not a datacat spool file")
        return fh

    def sent(self) -> None:
        self.writer.release(self.path)

    def abandon(self) -> None:
        self.writer.abandon(self.path)


class LeftFile:
    """A spool file in the directory, maybe another process's: locked while it is sent
    (an uploader running at the same time skips it); only files for ``only_url`` (if
    given) are taken."""

    def __init__(self, path: Path, only_url: str | None = None) -> None:
        self.path = path
        self.only_url = only_url

    def open(self) -> BinaryIO:
        """The file, locked and read past its header; `FileNotFoundError` when it is
        gone (someone else sent it meanwhile)."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise Skip(f"cannot open: {exc}", failed=True) from exc
        try:
            if not _try_lock(fh.fileno()):
                raise Skip("locked: still being written")
            url = read_header(fh)
            if url is None:
                raise Skip("not a datacat spool file")
            if self.only_url is not None and url != self.only_url:
                raise Skip(f"for another server: {url}")
        except BaseException:
            fh.close()
            raise
        return fh

    def sent(self) -> None:
        self.path.unlink(missing_ok=True)  # still locked: no one else is reading it

    def abandon(self) -> None:
        pass
