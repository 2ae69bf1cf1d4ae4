"""`BackgroundSender`: batching, retries, rate limits, the spool, flush and close."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datacat_client import APIError, BackgroundSender, RateLimited, TransportError, wire
from datacat_client._spool import SpoolWriter

from .fakes import BASE_URL, SESSION_ID, FakeTransport, event, read_spool_files

MakeSender = Callable[..., BackgroundSender]


def _wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def _spooled_seqs(directory: Path) -> list[int]:
    return sorted(r.seq for _, records in read_spool_files(directory) for r in records)


# -- batching ---------------------------------------------------------------------------


def test_a_full_batch_is_sent_without_waiting_for_the_linger(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    sender = make_sender(batch_size=10, linger=5.0)
    started = time.monotonic()
    for n in range(25):
        sender.submit(event(n))
    assert fake.wait_calls(2, timeout=1.0)
    assert time.monotonic() - started < 1.0  # far below the 5 s linger
    assert sender.flush(1.0)
    assert [len(call.records) for call in fake.calls] == [10, 10, 5]


def test_a_partial_batch_waits_for_the_linger_then_goes(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    sender = make_sender(batch_size=1000, linger=0.2)
    started = time.monotonic()
    for n in range(3):
        sender.submit(event(n))
    assert fake.wait_calls(1, timeout=1.0)
    waited = fake.calls[0].at - started
    assert 0.15 <= waited < 0.8
    assert [r.seq for r in fake.calls[0].records] == [0, 1, 2]


def test_records_arrive_in_order_each_once(make_sender: MakeSender, fake: FakeTransport) -> None:
    sender = make_sender(batch_size=100)
    for n in range(2_000):
        sender.submit(event(n))
    assert sender.flush(2.0)
    assert [r.seq for r in fake.stored] == list(range(2_000))
    stats = sender.stats
    assert (stats.submitted, stats.sent, stats.spooled, stats.lost) == (2_000, 2_000, 0, 0)
    assert stats.batches == len(fake.calls) >= 20


def test_concurrent_submitters_lose_nothing(make_sender: MakeSender, fake: FakeTransport) -> None:
    sender = make_sender(batch_size=50)

    def produce(base: int) -> None:
        for n in range(500):
            sender.submit(event(base + n))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sender.flush(2.0)
    assert sorted(r.seq for r in fake.stored) == sorted(
        k * 1000 + n for k in range(4) for n in range(500)
    )


# -- failures -----------------------------------------------------------------------------


def test_retry_then_success(make_sender: MakeSender, fake: FakeTransport, spool_dir: Path) -> None:
    fake.script.extend([TransportError("reset"), APIError(503, "restarting")])
    sender = make_sender(max_attempts=3)
    sender.submit(event(1))
    assert sender.flush(2.0) is True
    assert len(fake.calls) == 3
    assert sender.stats.retries == 2
    assert sender.stats.spooled == 0
    assert [r.seq for r in fake.stored] == [1]
    assert not list(spool_dir.glob("*.jsonl"))


def test_backoff_grows_between_attempts(make_sender: MakeSender, fake: FakeTransport) -> None:
    fake.script.extend([TransportError("a"), TransportError("b")])
    sender = make_sender(max_attempts=3, backoff=0.05)
    sender.submit(event(1))
    assert sender.flush(2.0)
    first, second, third = (call.at for call in fake.calls)
    assert second - first >= 0.045
    assert third - second >= 0.095


def test_429_retry_after_is_honoured(make_sender: MakeSender, fake: FakeTransport) -> None:
    fake.script.append(RateLimited(0.3))
    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(2.0)
    assert len(fake.calls) == 2
    assert fake.calls[1].at - fake.calls[0].at >= 0.3
    assert sender.stats.spooled == 0


def test_long_retry_after_spools_and_stays_off_the_network(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.script.append(RateLimited(60))
    sender = make_sender(max_retry_wait=1.0)
    sender.submit(event(1))
    assert sender.flush(1.0) is False
    sender.submit(event(2))
    assert sender.flush(1.0) is False
    assert len(fake.calls) == 1  # nothing more before the 60 s are over
    assert _spooled_seqs(spool_dir) == [1, 2]


def test_server_down_spools_valid_records_with_a_header(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=2)
    for n in range(5):
        sender.submit(event(n))
    assert sender.flush(2.0) is False
    ((header, records),) = read_spool_files(spool_dir)
    assert header == {"datacat_spool": 1, "url": BASE_URL}
    assert records == [event(n) for n in range(5)]
    assert sender.stats.spooled == 5
    assert sender.stats.lost == 0


def test_offline_sender_does_not_touch_the_network_until_the_probe(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=2, offline_for=0.6)
    sender.submit(event(1))
    assert _wait_for(lambda: sender.stats.spooled == 1)
    assert len(fake.calls) == 2  # max_attempts, then offline
    for n in range(2, 5):
        sender.submit(event(n))
    assert _wait_for(lambda: sender.stats.spooled == 4)
    assert len(fake.calls) == 2  # straight to the spool while offline
    time.sleep(0.6)
    sender.submit(event(9))
    assert _wait_for(lambda: len(fake.calls) == 3)
    assert _wait_for(lambda: sender.stats.spooled == 5)
    assert len(fake.calls) == 3  # one probe, not max_attempts


def test_a_flush_probes_at_once_even_while_offline(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=1, offline_for=60.0)
    sender.submit(event(1))
    assert sender.flush(1.0) is False
    fake.down = False  # back long before the 60 s are over
    sender.submit(event(2))
    assert sender.flush(1.0) is True  # someone waits: the flush tried once more
    assert [r.seq for r in fake.stored] == [1, 2]
    assert not list(spool_dir.glob("*.jsonl"))


def test_spool_is_resent_when_the_server_comes_back(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=1, offline_for=0.05)
    for n in range(3):
        sender.submit(event(n))
    assert sender.flush(1.0) is False
    assert _spooled_seqs(spool_dir) == [0, 1, 2]
    fake.down = False  # the server restarted
    time.sleep(0.06)
    sender.submit(event(3))
    assert sender.flush(2.0) is True
    assert sorted(r.seq for r in fake.stored) == [0, 1, 2, 3]
    assert not list(spool_dir.glob("*.jsonl"))


def test_a_refused_batch_is_spooled_and_the_sender_goes_offline(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script.append(APIError(401, "a bearer token is required"))
    sender = make_sender(offline_for=5.0)
    with caplog.at_level(logging.WARNING, logger="datacat"):
        sender.submit(event(1))
        assert sender.flush(1.0) is False
        sender.submit(event(2))
        assert sender.flush(1.0) is False
    assert len(fake.calls) == 1  # no retry of a 4xx, then offline
    assert _spooled_seqs(spool_dir) == [1, 2]
    assert any("401" in r.getMessage() for r in caplog.records)


def test_an_unexpected_transport_exception_is_caught_and_the_thread_lives_on(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    fake.script.append(ValueError("a bug in some transport"))
    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(1.0)  # retried
    sender.submit(event(2))
    assert sender.flush(1.0)
    assert [r.seq for r in fake.stored] == [1, 2]


# -- flush and close --------------------------------------------------------------------


def test_flush_with_nothing_submitted_is_true(make_sender: MakeSender) -> None:
    assert make_sender().flush(0.5) is True


def test_flush_times_out_false_while_the_server_hangs(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    fake.script.append(5.0)
    sender = make_sender()
    sender.submit(event(1))
    started = time.monotonic()
    assert sender.flush(0.2) is False
    assert time.monotonic() - started < 0.5


def test_close_is_bounded_while_the_transport_hangs(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.script.append(30.0)  # the first post never answers
    sender = make_sender(batch_size=2)
    for n in range(5):
        sender.submit(event(n))
    assert fake.wait_calls(1)
    started = time.monotonic()
    sender.close(0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 0.3
    # The batch in flight and the queued records are all in the spool.
    assert _spooled_seqs(spool_dir) == [0, 1, 2, 3, 4]


def test_close_sends_what_is_queued(make_sender: MakeSender, fake: FakeTransport) -> None:
    sender = make_sender(linger=5.0)
    for n in range(3):
        sender.submit(event(n))
    sender.close(2.0)
    assert [r.seq for r in fake.stored] == [0, 1, 2]


def test_after_close_records_go_to_the_spool(make_sender: MakeSender, spool_dir: Path) -> None:
    sender = make_sender()
    sender.close(1.0)
    sender.submit(event(1))
    assert sender.stats.spooled == 1
    assert _spooled_seqs(spool_dir) == [1]


def test_closed_spool_file_is_unlocked_for_the_next_upload(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=1)
    sender.submit(event(1))
    sender.close(0.5)
    from datacat_client import DatacatClient, upload_spool

    fake.down = False
    with DatacatClient(BASE_URL, transport=fake) as client:
        report = upload_spool(spool_dir, client=client)
    assert report.removed == 1
    assert 1 in {r.seq for r in fake.stored}


# -- the queue's bound and the spool's failures -----------------------------------------


def test_a_full_queue_goes_to_the_spool_never_dropped(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.script.append(30.0)  # the thread is stuck on its first post
    sender = make_sender(max_queue=5, batch_size=1)
    sender.submit(event(0))
    assert fake.wait_calls(1)
    for n in range(1, 21):
        sender.submit(event(n))
    stats = sender.stats
    assert stats.submitted == 21
    assert stats.spooled == 15  # 5 queued, 15 written by the callers themselves
    assert stats.lost == 0
    assert _spooled_seqs(spool_dir) == list(range(6, 21))


def test_unwritable_spool_counts_lost_with_one_warning(
    make_sender: MakeSender, fake: FakeTransport, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    fake.down = True
    sender = make_sender(spool_dir=blocker / "spool", max_attempts=1)
    with caplog.at_level(logging.WARNING, logger="datacat"):
        for n in range(3):
            sender.submit(event(n))
            sender.flush(1.0)
    stats = sender.stats
    assert stats.lost == 3
    assert stats.spooled == 0
    spool_warnings = [r for r in caplog.records if "DATACAT_SPOOL_DIR" in r.getMessage()]
    assert len(spool_warnings) == 1
    assert str(blocker / "spool") in spool_warnings[0].getMessage()


# -- heartbeats and leftovers -----------------------------------------------------------


def test_heartbeats_are_submitted_until_stopped(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    counter = iter(range(10**6))

    def beat() -> wire.Record:
        return wire.Heartbeat(
            session_id=SESSION_ID, seq=next(counter), timestamp=time.time(), interval=0.05
        )

    sender = make_sender(heartbeat=beat, heartbeat_interval=0.05)
    sender.submit(event(10**7))  # starts the thread
    assert _wait_for(lambda: len(fake.of_kind(wire.Heartbeat)) >= 3, timeout=1.0)
    sender.stop_heartbeats()
    sender.flush(1.0)
    seen = len(fake.of_kind(wire.Heartbeat))
    time.sleep(0.2)
    sender.flush(1.0)
    assert len(fake.of_kind(wire.Heartbeat)) == seen


def test_leftovers_of_earlier_runs_are_uploaded_after_the_first_ack(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    old_session = "1" * 32
    dead = SpoolWriter(spool_dir, old_session, BASE_URL)
    dead.append([event(n, session_id=old_session) for n in range(3)])
    (old_file,) = dead.paths()
    dead.close()
    elsewhere = SpoolWriter(spool_dir, old_session, "http://other-server")
    elsewhere.append([event(99, session_id=old_session)])
    (other_file,) = elsewhere.paths()
    elsewhere.close()

    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(1.0)
    assert _wait_for(lambda: not old_file.exists())
    stored = {(r.session_id, r.seq) for r in fake.stored}
    assert {(old_session, n) for n in range(3)} <= stored
    assert other_file.exists()  # spooled for another server: not ours to send
    assert (old_session, 99) not in stored


def test_flush_alone_retries_the_spool_once_the_server_is_back(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=1, offline_for=0.05)
    sender.submit(event(1))
    assert sender.flush(1.0) is False
    fake.down = False
    time.sleep(0.06)
    assert sender.flush(1.0) is True  # no new record needed
    assert [r.seq for r in fake.stored] == [1]
    assert not list(spool_dir.glob("*.jsonl"))


def test_a_session_started_while_the_server_was_down_is_sent_start_first(
    make_session: Callable[..., Any], fake: FakeTransport, spool_dir: Path
) -> None:
    """The server refuses records of a session it has not seen start (404): the spool,
    which holds the start, must go before newer records."""
    fake.require_start = True
    fake.down = True
    session = make_session(sender_options={"max_attempts": 1, "offline_for": 0.05, "backoff": 0.01})
    session.log_event("while-down")
    assert session.flush(1.0) is False
    fake.down = False
    time.sleep(0.06)
    session.log_event("after-restart")
    assert session.flush(1.0) is True
    kinds = [type(r).__name__ for r in fake.stored]
    assert kinds == ["SessionStart", "Event", "Event"]
    assert [r.name for r in fake.of_kind(wire.Event)] == ["while-down", "after-restart"]
    assert not list(spool_dir.glob("*.jsonl"))


def test_an_error_in_the_thread_is_logged_and_the_thread_keeps_running(
    make_sender: MakeSender, fake: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_heartbeat() -> wire.Record:
        raise RuntimeError("a bug")

    sender = make_sender(heartbeat=broken_heartbeat, heartbeat_interval=0.01)
    with caplog.at_level(logging.ERROR, logger="datacat"):
        sender.submit(event(1))
        assert _wait_for(lambda: any("sender thread" in r.getMessage() for r in caplog.records))
        sender.submit(event(2))
        assert sender.flush(1.0)
    assert [r.seq for r in fake.stored] == [1, 2]


def test_at_exit_live_senders_are_closed_and_flushed(
    make_sender: MakeSender, fake: FakeTransport
) -> None:
    from datacat_client._sender import _close_all

    sender = make_sender(linger=5.0)
    sender.submit(event(1))
    _close_all()
    assert [r.seq for r in fake.stored] == [1]
    sender.submit(event(2))  # closed: to the spool
    assert sender.stats.spooled == 1


def test_a_flush_keeps_trying_until_its_deadline_while_the_server_restarts(
    make_sender: MakeSender, fake: FakeTransport, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(max_attempts=1, offline_for=0.05)
    for n in range(3):
        sender.submit(event(n))
    threading.Timer(0.8, lambda: setattr(fake, "down", False)).start()  # back in 0.8 s
    started = time.monotonic()
    assert sender.flush(5.0) is True
    assert 0.7 < time.monotonic() - started < 3.0
    assert sorted(r.seq for r in fake.stored) == [0, 1, 2]
    assert not list(spool_dir.glob("*.jsonl"))
