"""`BackgroundSender`: batching, retries, rate limits, the spool, flush and close.

The policy's every transition is tested on a fake clock in test_policy.py; these tests
check that the sender's thread does what the policy says, over a transport that plays
the server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datacat_client import BackgroundSender, DatacatClient, upload_spool, wire
from datacat_client._policy import State
from datacat_client._spool import SpoolWriter

from .fakes import (
    BASE_URL,
    SESSION_ID,
    FakeServer,
    answer,
    event,
    read_spool_files,
    spooled_seqs,
    timed_out,
    wait_for,
)

MakeSender = Callable[..., BackgroundSender]


# -- batching ---------------------------------------------------------------------------


def test_a_full_batch_is_sent_without_waiting_for_the_linger(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    sender = make_sender(batch_size=10, linger=30.0)
    for n in range(25):
        sender.submit(event(n))
    assert wait_for(lambda: len(fake.calls) >= 2)  # far below the 30 s linger
    assert sender.flush(5.0)
    assert [len(call.records) for call in fake.calls] == [10, 10, 5]


def test_a_partial_batch_waits_for_the_linger_then_goes(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    sender = make_sender(batch_size=1000, linger=0.2)
    started = time.monotonic()
    for n in range(3):
        sender.submit(event(n))
    assert wait_for(lambda: fake.calls)
    assert fake.calls[0].at - started >= 0.15
    assert [r.seq for r in fake.calls[0].records] == [0, 1, 2]


def test_records_arrive_in_order_each_once(make_sender: MakeSender, fake: FakeServer) -> None:
    sender = make_sender(batch_size=100)
    for n in range(2_000):
        sender.submit(event(n))
    assert sender.flush(5.0)
    assert fake.seqs() == list(range(2_000))
    stats = sender.stats
    assert (stats.submitted, stats.sent, stats.spooled, stats.lost) == (2_000, 2_000, 0, 0)
    assert stats.batches == len(fake.calls) >= 20


def test_concurrent_submitters_lose_nothing(make_sender: MakeSender, fake: FakeServer) -> None:
    sender = make_sender(batch_size=50)

    def produce(base: int) -> None:
        for n in range(500):
            sender.submit(event(base + n))

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sender.flush(5.0)
    assert sorted(fake.seqs()) == sorted(k * 1000 + n for k in range(4) for n in range(500))


# -- a slow or ailing server: waited for ----------------------------------------------------


def test_timeouts_and_5xx_are_retried_then_it_succeeds(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.script.extend([timed_out(), answer(503, "restarting")])
    sender = make_sender(max_attempts=3)
    sender.submit(event(1))
    assert sender.flush(5.0) is True
    assert len(fake.calls) == 3
    assert sender.stats.retries == 2
    assert sender.stats.spooled == 0
    assert fake.seqs() == [1]
    assert not list(spool_dir.glob("*.jsonl"))


def test_backoff_grows_between_attempts(make_sender: MakeSender, fake: FakeServer) -> None:
    fake.script.extend([timed_out(), timed_out()])
    sender = make_sender(max_attempts=3, backoff=0.05)
    sender.submit(event(1))
    assert sender.flush(5.0)
    first, second, third = (call.at for call in fake.calls)
    assert second - first >= 0.045
    assert third - second >= 0.095


def test_a_flush_waits_for_a_slow_server_past_max_attempts(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    fake.script.extend([timed_out() for _ in range(5)])
    sender = make_sender(max_attempts=2)
    for n in range(3):
        sender.submit(event(n))
    assert sender.flush(10.0) is True  # someone waits: retried until it answers
    assert len(fake.calls) == 6
    assert sorted(fake.seqs()) == [0, 1, 2]
    assert sender.stats.spooled == 0


def test_without_a_flush_a_slow_server_is_tried_max_attempts_then_spooled(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.slow = True
    sender = make_sender(max_attempts=2, offline_for=60.0)
    sender.submit(event(1))
    assert wait_for(lambda: sender.stats.spooled == 1)
    assert len(fake.requests) == 2
    assert sender.policy.state is State.OFFLINE
    assert spooled_seqs(spool_dir) == [1]
    assert sender.stats.last_failure == "server did not answer in time"


def test_each_request_waits_no_longer_than_the_flush_has_left(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(3.0)
    (call,) = fake.calls
    assert call.timeout is not None
    assert 0 < call.timeout <= 3.0  # not the client's 10 s


def test_an_unexpected_transport_exception_is_caught_and_the_thread_lives_on(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    fake.script.append(ValueError("a bug in some transport"))
    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(5.0)  # retried
    sender.submit(event(2))
    assert sender.flush(5.0)
    assert fake.seqs() == [1, 2]


# -- an absent server: not waited for ----------------------------------------------------


def test_a_refused_connection_at_a_flush_spools_at_once(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    """The end of a run with the server down: one refused connection, then the spool;
    the flush does not wait out its timeout."""
    fake.down = True
    sender = make_sender(linger=60.0)
    for n in range(5):
        sender.submit(event(n))
    started = time.monotonic()
    assert sender.flush(10.0) is False
    assert time.monotonic() - started < 5.0  # far from the 10 s timeout
    assert len(fake.requests) == 1
    ((header, records),) = read_spool_files(spool_dir)
    assert header == {"datacat_spool": 1, "url": BASE_URL}
    assert records == [event(n) for n in range(5)]
    stats = sender.stats
    assert (stats.spooled, stats.lost) == (5, 0)
    assert stats.last_failure == "server unreachable"


def test_offline_records_go_straight_to_the_spool_until_the_probe(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    fake.down = True
    sender = make_sender(offline_for=60.0)
    sender.submit(event(1))
    assert wait_for(lambda: sender.stats.spooled == 1)
    assert len(fake.requests) == 1  # refused: no retry
    for n in range(2, 5):
        sender.submit(event(n))
    assert wait_for(lambda: sender.stats.spooled == 4)
    assert len(fake.requests) == 1  # offline: not even tried


def test_after_the_offline_period_one_probe_then_back_online(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(offline_for=0.05)
    sender.submit(event(1))
    assert wait_for(lambda: sender.stats.spooled == 1)
    fake.down = False  # the server restarted
    assert wait_for(lambda: time.monotonic() > sender.policy.offline_until)
    sender.submit(event(2))
    assert wait_for(lambda: sender.policy.state is State.ONLINE and len(fake.seqs()) == 2)
    assert sorted(fake.seqs()) == [1, 2]  # the spool went first
    assert not list(spool_dir.glob("*.jsonl"))


def test_a_flush_probes_at_once_even_while_offline(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(offline_for=60.0)
    sender.submit(event(1))
    assert sender.flush(5.0) is False
    fake.down = False  # back long before the 60 s are over
    assert sender.flush(5.0) is True  # someone waits: the flush tried once more
    assert fake.seqs() == [1]  # what was spooled was sent, without a new record
    assert not list(spool_dir.glob("*.jsonl"))


def test_a_session_started_while_the_server_was_down_is_sent_start_first(
    make_session: Callable[..., Any], fake: FakeServer, spool_dir: Path
) -> None:
    """The server refuses records of a session it has not seen start (404): the spool,
    which holds the start, must go before newer records."""
    fake.require_start = True
    fake.down = True
    session = make_session()
    session.log_event("while-down")
    assert session.flush(5.0) is False
    fake.down = False
    session.log_event("after-restart")
    assert session.flush(5.0) is True
    assert [type(r).__name__ for r in fake.stored] == ["SessionStart", "Event", "Event"]
    assert [r.name for r in fake.of_kind(wire.Event)] == ["while-down", "after-restart"]
    assert not list(spool_dir.glob("*.jsonl"))


# -- a server that asks us to wait, or refuses ----------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(make_sender: MakeSender, fake: FakeServer, status: int) -> None:
    fake.script.append(answer(status, "busy", {"Retry-After": "0.3"}))
    sender = make_sender()
    sender.submit(event(1))
    assert sender.flush(5.0)
    assert len(fake.calls) == 2
    assert fake.calls[1].at - fake.calls[0].at >= 0.3
    assert sender.stats.spooled == 0


def test_a_long_retry_after_spools_and_stays_off_the_network(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.script.append(answer(429, "slow down", {"Retry-After": "60"}))
    sender = make_sender(max_retry_wait=1.0)
    sender.submit(event(1))
    started = time.monotonic()
    assert sender.flush(10.0) is False
    sender.submit(event(2))
    assert sender.flush(10.0) is False  # not even a flush probes before the 60 s
    assert time.monotonic() - started < 5.0  # and neither waits out its 10 s
    assert len(fake.calls) == 1
    assert spooled_seqs(spool_dir) == [1, 2]
    assert sender.stats.last_failure == "server busy (HTTP 429: slow down)"


def test_a_refused_batch_is_spooled_and_the_sender_pauses(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script.append(answer(401, "a bearer token is required"))
    sender = make_sender(offline_for=60.0)
    with caplog.at_level(logging.WARNING, logger="datacat"):
        sender.submit(event(1))
        assert sender.flush(5.0) is False
        sender.submit(event(2))
        assert sender.flush(5.0) is False
    assert len(fake.calls) == 1  # no retry of a 4xx, then no request while paused
    assert spooled_seqs(spool_dir) == [1, 2]
    assert sender.stats.last_refusal == "HTTP 401: a bearer token is required"
    assert [r.getMessage() for r in caplog.records if "401" in r.getMessage()]


# -- flush and close --------------------------------------------------------------------


def test_flush_with_nothing_submitted_is_true(make_sender: MakeSender) -> None:
    assert make_sender().flush(5.0) is True


def test_flush_times_out_false_while_the_server_hangs(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    fake.script.append(30.0)
    sender = make_sender()
    sender.submit(event(1))
    started = time.monotonic()
    assert sender.flush(0.2) is False
    assert time.monotonic() - started < 5.0  # the flush's own timeout, not the hang's


def test_close_is_bounded_while_the_transport_hangs(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.script.append(30.0)  # the first post never answers
    sender = make_sender(batch_size=2)
    for n in range(5):
        sender.submit(event(n))
    assert wait_for(lambda: fake.calls)
    started = time.monotonic()
    sender.close(0.3)
    assert time.monotonic() - started < 5.0  # not the 30 s of the hang
    # The batch in flight and the queued records are all in the spool.
    assert spooled_seqs(spool_dir) == [0, 1, 2, 3, 4]


def test_close_sends_what_is_queued(make_sender: MakeSender, fake: FakeServer) -> None:
    sender = make_sender(linger=60.0)
    for n in range(3):
        sender.submit(event(n))
    sender.close(5.0)
    assert fake.seqs() == [0, 1, 2]


def test_after_close_records_go_to_the_spool(make_sender: MakeSender, spool_dir: Path) -> None:
    sender = make_sender()
    sender.close(1.0)
    sender.submit(event(1))
    assert sender.stats.spooled == 1
    assert spooled_seqs(spool_dir) == [1]


def test_closed_spool_file_is_unlocked_for_the_next_upload(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender()
    sender.submit(event(1))
    sender.close(5.0)
    fake.down = False
    with DatacatClient(BASE_URL, transport=fake) as client:
        report = upload_spool(spool_dir, client=client)
    assert report.removed == 1
    assert fake.seqs() == [1]


def test_at_exit_live_senders_are_closed_and_flushed(
    make_sender: MakeSender, fake: FakeServer
) -> None:
    from datacat_client._sender import _close_all

    sender = make_sender(linger=60.0)
    sender.submit(event(1))
    _close_all()
    assert fake.seqs() == [1]
    sender.submit(event(2))  # closed: to the spool
    assert sender.stats.spooled == 1


# -- the queue's bound and the spool's failures -----------------------------------------


def test_a_full_queue_goes_to_the_spool_never_dropped(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.script.append(30.0)  # the thread is stuck on its first post
    sender = make_sender(max_queue=5, batch_size=1)
    sender.submit(event(0))
    assert wait_for(lambda: fake.calls)
    for n in range(1, 21):
        sender.submit(event(n))
    stats = sender.stats
    assert stats.submitted == 21
    assert stats.spooled == 15  # 5 queued, 15 written by the callers themselves
    assert stats.lost == 0
    assert spooled_seqs(spool_dir) == list(range(6, 21))


def test_unwritable_spool_counts_lost_with_one_warning(
    make_sender: MakeSender, fake: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    fake.down = True
    sender = make_sender(spool_dir=blocker / "spool")
    with caplog.at_level(logging.WARNING, logger="datacat"):
        for n in range(3):
            sender.submit(event(n))
            sender.flush(5.0)
    stats = sender.stats
    assert stats.lost == 3
    assert stats.spooled == 0
    spool_warnings = [r for r in caplog.records if "DATACAT_SPOOL_DIR" in r.getMessage()]
    assert len(spool_warnings) == 1
    assert str(blocker / "spool") in spool_warnings[0].getMessage()


# -- heartbeats, leftovers, the thread's own errors --------------------------------------


def test_heartbeats_are_submitted_until_stopped(make_sender: MakeSender, fake: FakeServer) -> None:
    counter = iter(range(10**6))

    def beat() -> wire.Record:
        return wire.Heartbeat(
            session_id=SESSION_ID, seq=next(counter), timestamp=time.time(), interval=0.05
        )

    sender = make_sender(heartbeat=beat, heartbeat_interval=0.05)
    sender.submit(event(10**7))  # starts the thread
    assert wait_for(lambda: len(fake.of_kind(wire.Heartbeat)) >= 3)
    sender.stop_heartbeats()
    submitted = sender.stats.submitted
    sender._next_heartbeat = 0.0  # long due: still none after the stop
    sender._heartbeat_due()
    assert sender.stats.submitted == submitted


def test_leftovers_of_earlier_runs_are_sent_after_the_first_ack_and_counted(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
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
    assert sender.flush(5.0)  # a flush also sends what earlier runs left
    assert not old_file.exists()
    stored = {(r.session_id, r.seq) for r in fake.stored}
    assert {(old_session, n) for n in range(3)} <= stored
    assert other_file.exists()  # spooled for another server: not ours to send
    assert (old_session, 99) not in stored
    stats = sender.stats
    assert (stats.sent, stats.leftovers_sent) == (1, 3)  # counted apart


def test_an_error_in_the_thread_is_logged_and_the_thread_keeps_running(
    make_sender: MakeSender, fake: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_heartbeat() -> wire.Record:
        raise RuntimeError("a bug")

    sender = make_sender(heartbeat=broken_heartbeat, heartbeat_interval=0.01)
    with caplog.at_level(logging.ERROR, logger="datacat"):
        sender.submit(event(1))
        assert wait_for(lambda: any("sender thread" in r.getMessage() for r in caplog.records))
        sender.submit(event(2))
        assert sender.flush(5.0)
    assert fake.seqs() == [1, 2]


def test_a_flush_is_false_when_the_server_refuses_the_spool_it_sends_again(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.script.extend([answer(401, "no token"), answer(401, "no token")])
    sender = make_sender(offline_for=0.05)
    sender.submit(event(1))
    assert sender.flush(5.0) is False
    assert wait_for(lambda: time.monotonic() > sender.policy.offline_until)
    assert sender.flush(5.0) is False  # sent again, refused again: kept for datacat upload
    assert len(fake.calls) == 2
    assert spooled_seqs(spool_dir) == [1]


def test_a_spool_file_that_could_not_be_sent_again_is_sent_later(
    make_sender: MakeSender, fake: FakeServer, spool_dir: Path
) -> None:
    fake.down = True
    sender = make_sender(offline_for=60.0)
    sender.submit(event(1))
    assert sender.flush(5.0) is False
    sender.submit(event(2))
    assert sender.flush(5.0) is False  # its probe found the server still down
    fake.down = False
    assert sender.flush(5.0) is True
    assert fake.seqs() == [1, 2]  # the first file was kept for later, not given up
    assert not list(spool_dir.glob("*.jsonl"))
