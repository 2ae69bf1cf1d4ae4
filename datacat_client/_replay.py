"""Sending spool files again: one `Replayer` for the background sender (its own files,
and the files earlier runs left) and for `upload_spool` (``datacat upload``).

Files go oldest first, in batches, through a ``send`` function: the sender's delivery
(with its retries and pauses) or a plain `DatacatClient.send_batch`. A file is deleted
only once every batch of it was acknowledged; sending is idempotent (the server stores
each (session, seq) once), so a file that failed half-way is simply sent again later.
What the server says decides what comes next: a 4xx concerns this file (it is kept and
the next one is tried), a 404 may mean that the file's session starts in another file
(it is tried again after the others), anything else stops the replay.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from . import wire
from ._client import DatacatClient
from ._config import default_spool_dir
from ._errors import APIError, DatacatError, NotFound
from ._spool import LeftFile, LineCount, Skip, iter_spool, list_spool

__all__ = ["Replayer", "SpoolFile", "UploadReport", "upload_spool"]

#: Sends one batch; returns the server's acknowledgement or raises `DatacatError`.
Send = Callable[[list[wire.Record]], wire.BatchAck]


class SpoolFile(Protocol):
    """A file to send: `_spool.OwnFile` or `_spool.LeftFile`."""

    path: Path

    def open(self) -> BinaryIO:
        """The file, read past its header; raises `Skip` or `FileNotFoundError`."""
        ...

    def sent(self) -> None:
        """Every batch was acknowledged: delete it."""
        ...

    def abandon(self) -> None:
        """It stays on disk, and is not sent again here (it was refused, or skipped)."""
        ...


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


class _Then(enum.Enum):
    NEXT = "go on with the next file"
    STOP = "stop: the server is not answering"
    LATER = "try again after the others: its session may start in another file"


class Replayer:
    """Sends spool files through ``send``, ``batch_size`` records a post."""

    def __init__(self, send: Send, batch_size: int = 1000) -> None:
        self._send = send
        self._batch_size = batch_size

    def replay(self, files: Sequence[SpoolFile], report: UploadReport) -> bool:
        """Send ``files`` in their order, counting into ``report``; False when it stopped
        because the server did not answer (the files not tried yet are left as they are)."""
        later: list[tuple[SpoolFile, str]] = []
        removed = report.removed
        stopped = self._each(files, report, later)
        if not stopped and later and report.removed > removed:  # they may start elsewhere
            retry, later = [file for file, _ in later], []
            stopped = self._each(retry, report, later)
        for file, reason in later:
            _kept(file, reason, report, failed=True, abandon=True)
        return not stopped

    def _each(
        self, files: Sequence[SpoolFile], report: UploadReport, later: list[tuple[SpoolFile, str]]
    ) -> bool:
        """Send each file; True when it stopped because the server did not answer."""
        for file in files:
            then, reason = self._one(file, report)
            if then is _Then.LATER:
                later.append((file, reason))
            elif then is _Then.STOP:
                return True
        return False

    def _one(self, file: SpoolFile, report: UploadReport) -> tuple[_Then, str]:
        """Send one file: what next, and for `_Then.LATER` why (such a file is not
        counted yet: it may be sent after the others)."""
        try:
            fh = file.open()
        except FileNotFoundError:
            return _Then.NEXT, ""  # someone else sent it meanwhile
        except Skip as skip:
            _kept(file, skip.reason, report, failed=skip.failed, abandon=True)
            return _Then.NEXT, ""
        count = LineCount()
        with fh:
            try:
                for batch in iter_spool(fh, self._batch_size, count):
                    ack = self._send(batch)
                    report.sent += ack.accepted
                    report.duplicates += ack.duplicates
            except NotFound as exc:
                return _Then.LATER, f"refused: {exc}"
            except APIError as exc:
                # A 4xx (but 429) concerns this file; the next one may be fine.
                file_only = 400 <= exc.status_code < 500 and exc.status_code != 429
                _kept(file, f"refused: {exc}", report, failed=True, abandon=file_only)
                return (_Then.NEXT if file_only else _Then.STOP), ""
            except (DatacatError, OSError) as exc:
                # Not sent, not refused either: it stays where it is, to be sent later.
                _kept(file, f"failed: {exc}", report, failed=True, abandon=False)
                return _Then.STOP, ""
            finally:
                report.skipped_lines += count.skipped
            file.sent()
        report.files += 1
        report.removed += 1
        return _Then.NEXT, ""


def _kept(
    file: SpoolFile, reason: str, report: UploadReport, *, failed: bool, abandon: bool
) -> None:
    """A file that was not sent: abandoned (refused or skipped), or left to send later."""
    if abandon:
        file.abandon()
    report.files += 1
    report.failed += failed
    report.skipped.append((str(file.path), reason))


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
        paths = list_spool(folder)
    except OSError as exc:
        report.skipped.append((str(folder), f"cannot list: {exc}"))
        return report
    if not paths:
        return report
    own_client = client is None
    if client is None:
        client = DatacatClient(base_url, token)
    try:
        Replayer(client.send_batch, batch_size).replay(
            [LeftFile(path, only_url) for path in paths], report
        )
    finally:
        if own_client:
            client.close()
    return report
