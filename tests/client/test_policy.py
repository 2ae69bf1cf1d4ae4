"""`DeliveryPolicy` on a fake clock: every transition, and what it says to do."""

from __future__ import annotations

import pytest

from datacat_client._policy import Action, DeliveryPolicy, State, Step

SEND, SPOOL, GIVE_UP = Step(Action.SEND), Step(Action.SPOOL), Step(Action.GIVE_UP)
T = 1000.0  # "now" at the start of each test


def wait(until: float) -> Step:
    return Step(Action.WAIT, pytest.approx(until))


@pytest.fixture
def policy() -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=3,
        backoff=0.1,
        backoff_cap=2.0,
        max_retry_wait=5.0,
        offline_for=1.0,
        offline_cap=60.0,
    )


def test_online_it_sends(policy: DeliveryPolicy) -> None:
    assert policy.state is State.ONLINE
    assert policy.next_step(T) == SEND
    assert policy.sent(T) is False  # no outage ended
    assert policy.next_step(T) == SEND


# -- an absent server ---------------------------------------------------------------------


def test_a_refused_connection_spools_at_once_and_pauses(policy: DeliveryPolicy) -> None:
    policy.unreachable(T)
    assert policy.state is State.OFFLINE
    assert policy.offline_until == T + 1.0
    assert policy.next_step(T) == SPOOL  # no retry: nothing listens there
    assert policy.next_step(T + 0.99) == SPOOL


def test_at_the_end_of_a_run_a_refused_connection_spools_at_once(policy: DeliveryPolicy) -> None:
    """The flush of a run's end with the server down costs one refused connection,
    not the flush timeout."""
    policy.flush_requested(T + 10.0)
    assert policy.next_step(T) == SEND
    policy.unreachable(T + 0.001)
    assert policy.next_step(T + 0.001) == SPOOL  # the rest of the run's records too
    assert policy.next_step(T + 0.002) == SPOOL


def test_a_flush_probes_once_even_while_offline(policy: DeliveryPolicy) -> None:
    policy.unreachable(T)  # offline until T + 1
    assert policy.next_step(T + 0.1) == SPOOL
    policy.flush_requested(T + 5.0)
    assert policy.next_step(T + 0.2) == SEND  # someone waits: try once
    policy.unreachable(T + 0.2)
    assert policy.next_step(T + 0.3) == SPOOL  # once
    policy.flush_done()
    policy.flush_requested(T + 6.0)  # the next flush tries once again
    assert policy.next_step(T + 0.4) == SEND
    policy.flush_requested(T + 6.0)  # the same flush again changes nothing
    policy.unreachable(T + 0.4)
    policy.flush_requested(T + 6.0)
    assert policy.next_step(T + 0.5) == SPOOL


def test_offline_pauses_double_up_to_the_cap_and_a_probe_is_one_attempt(
    policy: DeliveryPolicy,
) -> None:
    now = T
    pauses = []
    for _ in range(9):
        policy.unreachable(now)
        pauses.append(policy.offline_until - now)
        now = policy.offline_until
        assert policy.next_step(now) == SEND  # the probe
    assert pauses == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    policy.failed(now)  # a probe that times out is not retried either
    assert policy.state is State.OFFLINE
    assert policy.next_step(now + 0.1) == SPOOL


def test_back_online_after_an_outage(policy: DeliveryPolicy) -> None:
    policy.unreachable(T)
    policy.unreachable(T + 1.0)  # a failed probe: offline until T + 3
    assert policy.next_step(T + 3.0) == SEND
    assert policy.sent(T + 3.0) is True  # the outage is over
    assert policy.state is State.ONLINE
    assert policy.next_step(T + 3.0) == SEND
    policy.unreachable(T + 4.0)  # the next outage starts with a short pause again
    assert policy.offline_until == T + 5.0


# -- a slow or ailing server --------------------------------------------------------------


def test_a_timeout_is_retried_with_growing_backoff_then_pauses(policy: DeliveryPolicy) -> None:
    policy.failed(T)
    assert policy.state is State.BACKING_OFF
    assert policy.next_step(T) == wait(T + 0.1)
    assert policy.next_step(T + 0.1) == SEND
    policy.failed(T + 0.1)
    assert policy.next_step(T + 0.1) == wait(T + 0.3)  # 0.2 s: twice the first
    policy.failed(T + 0.3)  # the third attempt failed: max_attempts
    assert policy.state is State.OFFLINE
    assert policy.next_step(T + 0.4) == SPOOL
    assert policy.next_step(T + 1.3) == SEND  # the probe


def test_a_slow_server_is_waited_for_up_to_the_flush_deadline(policy: DeliveryPolicy) -> None:
    """Someone waits: retried, with backoff capped at 2 s, well past max_attempts,
    until the deadline; then the batch is spooled."""
    deadline = T + 10.0
    policy.flush_requested(deadline)
    now, attempts = T, 0
    while (step := policy.next_step(now)).action is not Action.SPOOL:
        if step.action is Action.WAIT:
            assert step.until - now <= 2.0
            now = step.until
            continue
        assert step == SEND
        attempts += 1
        now += 0.5  # each attempt times out after 0.5 s
        policy.failed(now)
    assert attempts > 3
    assert deadline - 2.0 <= now <= deadline
    assert policy.timeout(deadline - 0.25, 10.0) == pytest.approx(0.25)


def test_the_request_timeout_is_cut_to_the_deadline(policy: DeliveryPolicy) -> None:
    assert policy.timeout(T, 10.0) == 10.0
    policy.flush_requested(T + 3.0)
    assert policy.timeout(T, 10.0) == 3.0
    policy.closing(T + 1.0)
    assert policy.timeout(T, 10.0) == 1.0


def test_a_backoff_longer_than_the_time_left_spools(policy: DeliveryPolicy) -> None:
    policy.flush_requested(T + 0.05)
    policy.failed(T)  # the next attempt would be at T + 0.1, after the deadline
    assert policy.next_step(T) == SPOOL


# -- a server that asks us to wait ----------------------------------------------------------


def test_retry_after_is_honoured(policy: DeliveryPolicy) -> None:
    policy.throttled(T, 0.3)
    assert policy.next_step(T) == wait(T + 0.3)
    assert policy.next_step(T + 0.3) == SEND
    assert policy.sent(T + 0.3) is False
    assert policy.state is State.ONLINE


def test_a_429_without_retry_after_backs_off(policy: DeliveryPolicy) -> None:
    policy.throttled(T, None)
    assert policy.next_step(T) == wait(T + 0.1)


def test_a_long_retry_after_spools_and_not_even_a_flush_probes(policy: DeliveryPolicy) -> None:
    policy.throttled(T, 60.0)
    assert policy.state is State.OFFLINE
    assert policy.firm
    assert policy.next_step(T + 1.0) == SPOOL
    policy.flush_requested(T + 11.0)
    assert policy.next_step(T + 1.0) == SPOOL  # the pause outlasts the flush: spool now
    policy.flush_done()
    assert policy.next_step(T + 60.0) == SEND


def test_a_flush_waits_for_a_retry_after_that_ends_before_its_deadline(
    policy: DeliveryPolicy,
) -> None:
    policy.throttled(T, 8.0)  # more than max_retry_wait: a pause
    policy.flush_requested(T + 10.0)
    assert policy.next_step(T + 1.0) == wait(T + 8.0)
    assert policy.next_step(T + 8.0) == SEND


def test_throttled_too_often_pauses(policy: DeliveryPolicy) -> None:
    for n in range(2):
        policy.throttled(T + n, 0.5)
        assert policy.state is State.BACKING_OFF
    policy.throttled(T + 2, 0.5)  # the third: max_attempts
    assert policy.state is State.OFFLINE
    assert policy.firm


# -- refusals -------------------------------------------------------------------------


def test_a_refusal_pauses_without_probes(policy: DeliveryPolicy) -> None:
    policy.refused(T)
    assert policy.state is State.OFFLINE
    policy.flush_requested(T + 10.0)
    # A missing token will not appear: a flush neither probes nor waits for the pause.
    assert policy.next_step(T + 0.1) == SPOOL
    policy.flush_done()
    assert policy.next_step(T + 1.0) == SEND


def test_a_refused_spool_file_does_not_pause(policy: DeliveryPolicy) -> None:
    policy.unreachable(T)
    policy.refused(T + 1.0, pause=False)  # the probe was answered, with a 4xx for that file
    assert policy.state is State.ONLINE
    assert policy.next_step(T + 1.0) == SEND


# -- closing --------------------------------------------------------------------------


def test_past_the_close_deadline_it_gives_up(policy: DeliveryPolicy) -> None:
    policy.closing(T + 2.0)
    assert policy.next_step(T + 1.0) == SEND
    policy.failed(T + 1.0)
    assert policy.next_step(T + 1.0) == wait(T + 1.1)
    assert policy.next_step(T + 2.0) == GIVE_UP


def test_past_a_flush_deadline_it_spools(policy: DeliveryPolicy) -> None:
    policy.flush_requested(T + 1.0)
    assert policy.next_step(T + 1.0) == SPOOL
    assert policy.deadline == T + 1.0
    policy.flush_done()
    assert policy.deadline is None
    assert policy.next_step(T + 1.0) == SEND
