"""The rate limiter: 429 with ``Retry-After`` over the limit, a bucket per token (per
client address without one), a batch counts once, ``/health`` is never limited, and the
defaults leave a CI fleet alone."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from litestar.types import Receive, Scope, Send

from datacat_server.app import create_app
from datacat_server.auth import COOKIE, TokenSet, load_tokens
from datacat_server.ratelimit import RateLimitMiddleware, TokenBuckets
from datacat_server.settings import Settings
from tests.server.records import RecordMaker, batch

Client = TestClient[Litestar]

INGEST_A = "ingest-token-a-0123456789abcdef"
INGEST_B = "ingest-token-b-0123456789abcdef"
READ = "read-token-0123456789abcdef00"

#: So slow that nothing refills while a test runs: the burst is all there is.
NO_REFILL = 0.001


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ingest(client: Client, body: bytes, token: str | None = INGEST_A) -> Any:
    headers = {"content-type": "application/json", **(_bearer(token) if token else {})}
    return client.post("/api/ingest", content=body, headers=headers)


def _small_batch() -> bytes:
    maker = RecordMaker()
    return batch(maker.start(), maker.event("e"))


def _assert_throttled(answer: Any, *, at_most: float) -> int:
    """A 429 that says what happened and when to come back; returns the seconds."""
    assert answer.status_code == 429
    retry_after = answer.headers["retry-after"]
    assert retry_after.isdigit(), retry_after  # whole seconds, not a date or a fraction
    seconds = int(retry_after)
    assert 1 <= seconds <= at_most
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["status_code"] == 429
    assert "too many requests" in body["detail"]
    assert f"retry after {seconds} s" in body["detail"]
    return seconds


@pytest.fixture
def tokens() -> TokenSet:
    return load_tokens({"DATACAT_TOKENS": f"ingest:{INGEST_A},ingest:{INGEST_B},read:{READ}"})


@pytest.fixture
def limited(db_path: Path, tokens: TokenSet) -> Iterator[Client]:
    """A server with tokens, bursts of 3 and (practically) no refill."""
    settings = Settings(db_path=db_path, rate_limit=NO_REFILL, rate_burst=3)
    with TestClient(app=create_app(settings, tokens=tokens)) as client:
        yield client


@pytest.fixture
def open_limited(db_path: Path) -> Iterator[Client]:
    """An open server (no tokens), bursts of 3 and (practically) no refill."""
    settings = Settings(db_path=db_path, rate_limit=NO_REFILL, rate_burst=3)
    with TestClient(app=create_app(settings)) as client:
        yield client


# -- 429 over the limit, nothing under it ---------------------------------------------


def test_over_the_limit_is_429_with_retry_after_and_a_json_body(limited: Client) -> None:
    for _ in range(3):
        assert _ingest(limited, _small_batch()).status_code == 200
    answer = _ingest(limited, _small_batch())
    _assert_throttled(answer, at_most=math.ceil(1 / NO_REFILL))
    # A refused request is not stored, and asking again too early is refused again.
    _assert_throttled(_ingest(limited, _small_batch()), at_most=math.ceil(1 / NO_REFILL))


def test_retry_after_is_the_wait_for_one_request_rounded_up(db_path: Path) -> None:
    # 0.5 requests a second: the next one is about 2 s away.
    settings = Settings(db_path=db_path, rate_limit=0.5, rate_burst=1)
    with TestClient(app=create_app(settings)) as client:
        assert client.get("/api/runs").status_code == 200
        assert _assert_throttled(client.get("/api/runs"), at_most=2) == 2


def test_retry_after_is_never_zero(db_path: Path) -> None:
    # 2 a second: the next one is at most 0.5 s away, which is still 1 in whole seconds.
    settings = Settings(db_path=db_path, rate_limit=2, rate_burst=1)
    with TestClient(app=create_app(settings)) as client:
        statuses = [client.get("/api/runs") for _ in range(5)]
        throttled = [answer for answer in statuses if answer.status_code == 429]
        assert throttled, "five requests in a few ms must exceed a burst of 1"
        for answer in throttled:
            assert _assert_throttled(answer, at_most=1) == 1


def test_under_the_limit_nothing_is_throttled(db_path: Path, tokens: TokenSet) -> None:
    settings = Settings(db_path=db_path, rate_limit=NO_REFILL, rate_burst=40)
    with TestClient(app=create_app(settings, tokens=tokens)) as client:
        for _ in range(20):
            assert _ingest(client, _small_batch()).status_code == 200
        for _ in range(20):
            assert client.get("/api/runs", headers=_bearer(READ)).status_code == 200


def test_rate_limit_zero_turns_it_off(db_path: Path) -> None:
    settings = Settings(db_path=db_path, rate_limit=0, rate_burst=1)
    with TestClient(app=create_app(settings)) as client:
        assert all(client.get("/api/runs").status_code == 200 for _ in range(30))


# -- identities ---------------------------------------------------------------------------


def test_each_token_has_its_own_bucket(limited: Client) -> None:
    for _ in range(3):
        assert _ingest(limited, _small_batch(), INGEST_A).status_code == 200
    assert _ingest(limited, _small_batch(), INGEST_A).status_code == 429
    # Token A is throttled; B and the read token are not.
    for _ in range(3):
        assert _ingest(limited, _small_batch(), INGEST_B).status_code == 200
    for _ in range(3):
        assert limited.get("/api/runs", headers=_bearer(READ)).status_code == 200
    assert _ingest(limited, _small_batch(), INGEST_B).status_code == 429
    assert limited.get("/api/runs", headers=_bearer(READ)).status_code == 429
    # Without a token the request counts against the address, which nobody used yet.
    assert limited.get("/api/runs").status_code == 401


def test_the_login_cookie_shares_its_tokens_bucket(limited: Client) -> None:
    for _ in range(3):
        assert limited.get("/api/runs", headers=_bearer(READ)).status_code == 200
    answer = limited.get("/api/runs", headers={"Cookie": f"{COOKIE}={READ}"})
    assert answer.status_code == 429


def test_unknown_tokens_count_against_the_address_not_a_bucket_of_their_own(
    limited: Client,
) -> None:
    # Guessing tokens does not buy a fresh burst per guess.
    for i in range(3):
        answer = limited.get("/api/runs", headers=_bearer(f"guess-{i:02d}-0123456789abcdef"))
        assert answer.status_code == 401
    answer = limited.get("/api/runs", headers=_bearer("guess-99-0123456789abcdef"))
    assert answer.status_code == 429
    assert limited.get("/api/runs").status_code == 429
    # Real tokens are not affected by what the address did.
    assert _ingest(limited, _small_batch(), INGEST_A).status_code == 200


def test_open_server_throttles_without_a_token(open_limited: Client) -> None:
    for _ in range(3):
        assert _ingest(open_limited, _small_batch(), token=None).status_code == 200
    assert _ingest(open_limited, _small_batch(), token=None).status_code == 429


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _status(middleware: RateLimitMiddleware, client: tuple[str, int], path: str = "/api/x") -> int:
    """Status of one request through the middleware, from ``client``."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope: Any = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "client": client,
    }
    asyncio.run(middleware(scope, receive, send))  # type: ignore[arg-type]
    status: int = sent[0]["status"]
    return status


def test_open_server_has_a_bucket_per_client_address() -> None:
    middleware = RateLimitMiddleware(
        _ok,
        buckets=TokenBuckets(NO_REFILL, 2),
        exclude=("/health",),
    )
    assert [_status(middleware, ("10.0.0.1", 1000)) for _ in range(3)] == [204, 204, 429]
    # Another port of the same address is the same client.
    assert _status(middleware, ("10.0.0.1", 2000)) == 429
    # Other addresses have their own buckets.
    assert [_status(middleware, ("10.0.0.2", 1000)) for _ in range(3)] == [204, 204, 429]
    assert _status(middleware, ("::1", 1000)) == 204
    assert _status(middleware, ("10.0.0.1", 1000), "/health") == 204


# -- what counts ----------------------------------------------------------------------------


def test_a_batch_of_many_records_counts_as_one_request(limited: Client) -> None:
    for _ in range(3):
        maker = RecordMaker()
        body = batch(maker.start(), *[maker.result(f"t.py::test_{i}") for i in range(500)])
        answer = _ingest(limited, body)
        assert answer.status_code == 200
        assert answer.json() == {"accepted": 501, "duplicates": 0}
    # The burst of 3 is spent by 3 requests, not by 1,503 records.
    assert _ingest(limited, _small_batch()).status_code == 429


def test_health_is_never_limited(open_limited: Client) -> None:
    for _ in range(50):
        assert open_limited.get("/health").status_code == 200
    # /health took nothing from the bucket...
    for _ in range(3):
        assert open_limited.get("/api/runs").status_code == 200
    assert open_limited.get("/api/runs").status_code == 429
    # ...and answers while the client is throttled.
    for _ in range(10):
        assert open_limited.get("/health").status_code == 200


# -- the bucket -----------------------------------------------------------------------------


def test_the_bucket_refills_at_the_rate() -> None:
    buckets = TokenBuckets(rate=2, burst=4)
    assert [buckets.take("a", now=0.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)  # 1 / rate
    # Asking early is not punished: the wait only shrinks with time.
    assert buckets.take("a", now=0.0) == pytest.approx(0.5)
    assert buckets.take("a", now=0.25) == pytest.approx(0.25)
    assert buckets.take("a", now=0.5) == 0.0
    assert buckets.take("a", now=0.5) == pytest.approx(0.5)
    # Two seconds refill 4 requests at 2 a second, and no more than the burst.
    assert [buckets.take("a", now=2.5) for _ in range(4)] == [0.0] * 4
    assert buckets.take("a", now=2.5) > 0
    assert [buckets.take("a", now=1000.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("a", now=1000.0) == pytest.approx(0.5)


@pytest.mark.parametrize(("rate", "burst"), [(0.5, 1), (3.0, 7), (200.0, 2000.0), (0.01, 2)])
def test_waiting_as_told_is_enough(rate: float, burst: float) -> None:
    """Retry-After is the wait rounded up to whole seconds: that wait always suffices,
    and a client that waits it gets in at the first try."""
    buckets = TokenBuckets(rate, burst)
    now, refused = 0.0, 0
    for _ in range(int(burst) * 3 + 10):
        wait = buckets.take("a", now=now)
        if wait:
            refused += 1
            assert wait <= 1 / rate + 1e-9
            now += max(1, math.ceil(wait))
            assert buckets.take("a", now=now) == 0.0
        now += 0.001
    assert refused


def test_sustained_rate_matches_the_setting() -> None:
    buckets = TokenBuckets(rate=10, burst=5)
    allowed = sum(
        1 for i in range(10_000) if buckets.take("a", now=i / 1000) == 0.0
    )  # 10 s of 1,000 requests a second
    assert allowed == pytest.approx(5 + 10 * 10, abs=2)


# -- the defaults ---------------------------------------------------------------------------


def test_default_settings_and_their_environment_names() -> None:
    assert (Settings().rate_limit, Settings().rate_burst) == (1000.0, 10_000.0)
    defaults = Settings.from_env({})
    assert (defaults.rate_limit, defaults.rate_burst) == (1000.0, 10_000.0)
    custom = Settings.from_env({"DATACAT_RATE_LIMIT": "0.5", "DATACAT_RATE_BURST": "3"})
    assert (custom.rate_limit, custom.rate_burst) == (0.5, 3.0)
    with pytest.raises(ValueError, match="DATACAT_RATE_LIMIT"):
        Settings.from_env({"DATACAT_RATE_LIMIT": "fast"})
    with pytest.raises(ValueError, match="DATACAT_RATE_LIMIT must be 0"):
        Settings.from_env({"DATACAT_RATE_LIMIT": "-1"})
    with pytest.raises(ValueError, match="DATACAT_RATE_BURST must be at least 1"):
        Settings.from_env({"DATACAT_RATE_BURST": "0.5"})
    assert Settings.from_env({"DATACAT_RATE_LIMIT": "0", "DATACAT_RATE_BURST": "0"}).rate_limit == 0


def _fleet_429s(jobs: int, seconds: int, settings: Settings) -> int:
    """Throttled posts of ``jobs`` CI jobs sharing one token, each posting one batch a
    second (the plugin's linger is 1 s), all starting together, on a simulated clock."""
    buckets = TokenBuckets(settings.rate_limit, settings.rate_burst)
    refused = 0
    for second in range(seconds):
        for job in range(jobs):
            if buckets.take("token:ci", now=second + job / jobs):
                refused += 1
    return refused


def test_defaults_absorb_jobs_that_start_together() -> None:
    assert _fleet_429s(10_000, 1, Settings()) == 0  # the burst


def test_defaults_do_not_throttle_a_thousand_ci_jobs_on_one_token() -> None:
    assert _fleet_429s(500, 60, Settings()) == 0
    assert _fleet_429s(1000, 60, Settings()) == 0
    assert _fleet_429s(2000, 30, Settings()) > 0  # the limit is still a limit


# -- the identity map ---------------------------------------------------------------------


def test_full_buckets_are_forgotten_when_the_map_is_over_its_bound() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_identities=10)
    for i in range(20):
        buckets.take(f"old-{i}", now=float(i))
    # A refusal past the bound sweeps: every bucket that has refilled is dropped.
    assert buckets.take("x", now=100.0) == 0.0
    assert buckets.take("x", now=100.0) > 0
    assert len(buckets._buckets) <= 10
    assert "x" in buckets._buckets


def test_forgetting_full_buckets_does_not_reset_a_throttled_one() -> None:
    buckets = TokenBuckets(rate=1, burst=2, max_identities=5)
    for i in range(20):  # strangers, long ago: their buckets are full again by now
        buckets.take(f"stranger-{i}", now=30 + i * 0.5)
    assert [buckets.take("busy", now=50.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("busy", now=50.0) == pytest.approx(1.0)
    # A half-used bucket is not full either.
    assert buckets.take("half", now=50.0) == 0.0
    # One of the strangers is refused, past the bound: the map is swept.
    assert [buckets.take("stranger-19", now=50.2) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("stranger-19", now=50.2) > 0
    assert len(buckets._buckets) <= 5
    # Still throttled, with the wait it had (less the 0.5 s that passed).
    assert buckets.take("busy", now=50.5) == pytest.approx(0.5)
    assert [buckets.take("half", now=50.5) for _ in range(2)] == [0.0, pytest.approx(0.5)]


def test_the_identity_map_stays_bounded_when_every_request_is_allowed() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_identities=10)
    largest = 0
    for i in range(1000):  # a new address every 0.5 s, each allowed
        assert buckets.take(f"address:10.0.{i // 256}.{i % 256}", now=i * 0.5) == 0.0
        largest = max(largest, len(buckets._buckets))
    # Buckets more than burst / rate = 1 s old have refilled: at most 2 are not full.
    assert largest <= 10 + 1
