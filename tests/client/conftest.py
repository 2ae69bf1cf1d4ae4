"""Fixtures of the client tests: a transport that plays the server, a capturing HTTP
server, factories that close what they create."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from datacat_client import BackgroundSender, DatacatClient, Session, create_session

from .fakes import BASE_URL, SESSION_ID, CapturingServer, FakeServer


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    transport = FakeServer()
    yield transport
    transport.release.set()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's DataCat settings or writes to ~/.cache."""
    monkeypatch.delenv("DATACAT_URL", raising=False)
    monkeypatch.delenv("DATACAT_TOKEN", raising=False)
    monkeypatch.setenv("DATACAT_SPOOL_DIR", str(tmp_path / "default-spool"))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_sender(fake: FakeServer, spool_dir: Path) -> Iterator[Callable[..., BackgroundSender]]:
    """Build senders over the fake transport with fast retries; closed at teardown."""
    made: list[BackgroundSender] = []

    def make(**options: Any) -> BackgroundSender:
        settings: dict[str, Any] = {
            "session_id": SESSION_ID,
            "spool_dir": spool_dir,
            "heartbeat_interval": None,
            "backoff": 0.01,
            "offline_for": 0.05,
            "linger": 0.01,
        }
        settings.update(options)
        client = settings.pop("client", None) or DatacatClient(BASE_URL, transport=fake)
        sender = BackgroundSender(client, **settings)
        made.append(sender)
        return sender

    yield make
    fake.release.set()
    for sender in made:
        sender.close(0.5)
        sender.client.close()


@pytest.fixture
def make_session(fake: FakeServer, spool_dir: Path) -> Iterator[Callable[..., Session]]:
    """Sessions over the fake transport, without heartbeats; closed at teardown."""
    made: list[Session] = []

    def make(**options: Any) -> Session:
        settings: dict[str, Any] = {
            "transport": fake,
            "spool_dir": spool_dir,
            "heartbeat_interval": None,
            "sender_options": {"backoff": 0.01, "offline_for": 0.05, "linger": 0.01},
        }
        settings.update(options)
        session = create_session(BASE_URL, **settings)
        made.append(session)
        return session

    yield make
    fake.release.set()
    for session in made:
        session.close(0.5)


@pytest.fixture
def server() -> Iterator[CapturingServer]:
    srv = CapturingServer()
    srv.thread.start()
    yield srv
    srv.stop()
