"""The spool: file layout, locking, torn lines, unwritable directories, upload."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from datacat_client import DatacatClient, upload_spool, wire
from datacat_client._spool import SpoolWriter

from .fakes import BASE_URL, SESSION_ID, FakeServer, answer, event, read_spool_files, timed_out


@pytest.fixture
def client(fake: FakeServer) -> Iterator[DatacatClient]:
    with DatacatClient(BASE_URL, transport=fake) as client:
        yield client


def _write_dead_file(directory: Path, records: list[wire.Record], url: str = BASE_URL) -> Path:
    """A spool file as a process that has exited leaves it (closed, so unlocked)."""
    writer = SpoolWriter(directory, SESSION_ID, url)
    assert writer.append(records)
    (path,) = writer.paths()
    writer.close()
    return path


def test_spool_file_has_a_header_then_one_record_a_line(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir, SESSION_ID, BASE_URL)
    try:
        assert writer.append([event(1), event(2)])
        assert writer.append([event(3)])
        (path,) = writer.paths()
    finally:
        writer.close()
    assert re.fullmatch(rf"{SESSION_ID}-{os.getpid()}-[0-9a-f]+\.jsonl", path.name)
    ((header, records),) = read_spool_files(spool_dir)
    assert header == {"datacat_spool": 1, "url": BASE_URL}
    assert records == [event(1), event(2), event(3)]
    assert path.stat().st_mode & 0o777 == 0o600


def test_upload_sends_and_removes_files(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    _write_dead_file(spool_dir, [event(n) for n in range(5)])
    report = upload_spool(spool_dir, client=client, batch_size=2)
    assert (report.files, report.sent, report.removed, report.skipped) == (1, 5, 1, [])
    assert report.ok
    assert str(report).startswith("1 spool files: 5 records stored, 0 already there, 1 files")
    assert [len(call.records) for call in fake.calls] == [2, 2, 1]
    assert fake.seqs() == [0, 1, 2, 3, 4]
    assert list(spool_dir.iterdir()) == []


def test_upload_skips_a_torn_last_line(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    path = _write_dead_file(spool_dir, [event(1), event(2)])
    with path.open("ab") as fh:
        fh.write(wire.encode(event(3))[:25])  # killed in the middle of a write
    report = upload_spool(spool_dir, client=client)
    assert report.sent == 2
    assert report.skipped_lines == 1
    assert report.removed == 1
    assert [r.seq for r in fake.stored] == [1, 2]


def test_upload_skips_a_file_that_is_still_being_written(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    live = SpoolWriter(spool_dir, SESSION_ID, BASE_URL)  # holds its lock while open
    try:
        assert live.append([event(1)])
        report = upload_spool(spool_dir, client=client)
        assert report.removed == 0
        assert [reason for _, reason in report.skipped] == ["locked: still being written"]
        assert report.ok  # a live writer's file is not a failure
        assert fake.calls == []
        assert live.paths()[0].exists()
    finally:
        live.close()
    # Once the writer let go, the next upload takes it.
    assert upload_spool(spool_dir, client=client).removed == 1


def test_a_partly_uploaded_file_is_kept_and_sent_again_later(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    path = _write_dead_file(spool_dir, [event(n) for n in range(4)])
    fake.script.extend([0.0, timed_out()])  # the second batch fails
    report = upload_spool(spool_dir, client=client, batch_size=2)
    assert (report.sent, report.removed) == (2, 0)
    assert "failed" in report.skipped[0][1]
    assert path.exists()
    again = upload_spool(spool_dir, client=client, batch_size=2)
    assert (again.sent, again.duplicates, again.removed) == (2, 2, 1)
    assert sorted(r.seq for r in fake.stored) == [0, 1, 2, 3]  # each exactly once
    assert not path.exists()


def test_a_refused_file_is_kept_and_reported_and_the_next_one_is_sent(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    first = _write_dead_file(spool_dir, [event(1)])
    second = _write_dead_file(spool_dir, [event(2)])
    os.utime(first, (1_000, 1_000))  # files are taken oldest first
    fake.script.append(answer(400, "records[0]: bad"))
    report = upload_spool(spool_dir, client=client)
    assert report.removed == 1
    assert report.skipped == [(str(first), "refused: HTTP 400: records[0]: bad")]
    assert (report.failed, report.ok) == (1, False)
    assert f"kept {first}: refused: HTTP 400" in str(report)
    assert first.exists()
    assert not second.exists()


def test_rate_limited_stops_the_upload(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    _write_dead_file(spool_dir, [event(1)])
    _write_dead_file(spool_dir, [event(2)])
    fake.script.append(answer(429, "slow down", {"Retry-After": "30"}))
    report = upload_spool(spool_dir, client=client)
    assert len(fake.calls) == 1
    assert report.removed == 0
    assert len(list(spool_dir.glob("*.jsonl"))) == 2


def test_only_url_uploads_files_for_that_server(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    _write_dead_file(spool_dir, [event(1)], url=BASE_URL)
    other = _write_dead_file(spool_dir, [event(2)], url="http://elsewhere:8080")
    report = upload_spool(spool_dir, client=client, only_url=BASE_URL)
    assert report.removed == 1
    assert report.skipped == [(str(other), "for another server: http://elsewhere:8080")]
    assert [r.seq for r in fake.stored] == [1]


def test_a_file_that_is_not_a_spool_file_is_left_alone(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    spool_dir.mkdir()
    stranger = spool_dir / "notes.jsonl"
    stranger.write_text('{"hello": "world"}\n')
    report = upload_spool(spool_dir, client=client)
    assert report.skipped == [(str(stranger), "not a datacat spool file")]
    assert stranger.exists()


def test_upload_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    report = upload_spool(tmp_path / "nothing-here")
    assert (report.files, report.sent, report.skipped) == (0, 0, [])


def test_upload_defaults_to_the_env_spool_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeServer, client: DatacatClient
) -> None:
    monkeypatch.setenv("DATACAT_SPOOL_DIR", str(tmp_path / "from-env"))
    _write_dead_file(tmp_path / "from-env", [event(7)])
    assert upload_spool(client=client).sent == 1


def test_unwritable_directory_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    directory = blocker / "spool"
    writer = SpoolWriter(directory, SESSION_ID, BASE_URL)
    with caplog.at_level(logging.WARNING, logger="datacat"):
        assert writer.append([event(1)]) is False
        writer._retry_at = 0.0  # try the directory again at once
        assert writer.append([event(2)]) is False
    warnings = [r for r in caplog.records if r.name == "datacat"]
    assert len(warnings) == 1
    assert str(directory) in warnings[0].getMessage()
    assert "DATACAT_SPOOL_DIR" in warnings[0].getMessage()
    assert not writer.has_pending


def test_rotate_release_and_abandon(spool_dir: Path) -> None:
    writer = SpoolWriter(spool_dir, SESSION_ID, BASE_URL)
    try:
        writer.append([event(1)])
        (first,) = writer.rotate()
        writer.append([event(2)])  # goes to a new file
        assert writer.paths()[0] == first.path
        second = writer.paths()[1]
        assert second != first.path
        _, own_second = writer.rotate()
        first.sent()
        own_second.abandon()
        assert not first.path.exists()
        assert second.exists()
        assert not writer.has_pending
    finally:
        writer.close()


def test_a_file_whose_session_starts_in_another_file_is_tried_again(
    spool_dir: Path, fake: FakeServer, client: DatacatClient
) -> None:
    """A forked child's file holds no SessionStart; if it is read before the parent's
    file (which holds it), the server says 404: it is tried again after the others."""
    fake.require_start = True
    child = _write_dead_file(spool_dir, [event(5)])
    start = wire.SessionStart(session_id=SESSION_ID, seq=1, timestamp=1.0)
    parent = _write_dead_file(spool_dir, [start, event(2)])
    os.utime(child, (1_000, 1_000))  # the child's file is the older one
    report = upload_spool(spool_dir, client=client)
    assert (report.files, report.removed, report.skipped, report.ok) == (2, 2, [], True)
    assert sorted(r.seq for r in fake.stored) == [1, 2, 5]
    assert not child.exists()
    assert not parent.exists()
    assert len(fake.calls) == 3  # child refused, parent, child again
