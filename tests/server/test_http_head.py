"""What one connection may cost a real ``datacat serve``: the time its request head may
take (slowloris), and the connections one address may hold open.

The head's size (431) is tested in ``test_hostile.py``. Here, connections are raw
sockets, so that nothing finishes or times out a head on our behalf. A second client
address (127.0.0.2, on loopback like the rest) plays the bystander whose requests must
still be answered.
"""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from datacat_server.http_head import _address_key
from datacat_server.settings import (
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    DEFAULT_MAX_HEAD_BYTES,
    Settings,
)
from tests.support.server import ServerProcess

BYSTANDER = "127.0.0.2"
PARTIAL_HEAD = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def _health_from(address: str, url: str) -> int:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.get(f"{url}/health").status_code


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes; fails if it does not in time."""
    sock.settimeout(timeout)
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _read_response(sock: socket.socket) -> bytes:
    """One whole answer on a kept-alive connection: its head, then ``content-length``
    bytes of body (they may come in separate segments)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        body += chunk
    assert len(body) == length, "more than one answer came"
    return head + b"\r\n\r\n" + body


@contextlib.contextmanager
def _server(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "head.duckdb", env=env) as server:
        yield server


# -- settings ------------------------------------------------------------------------------


def test_the_connection_settings_have_defaults_and_read_the_environment() -> None:
    defaults = Settings.from_env({})
    assert defaults.max_head_bytes == DEFAULT_MAX_HEAD_BYTES == 64 * 1024
    assert defaults.head_timeout == DEFAULT_HEAD_TIMEOUT == 10.0
    assert defaults.max_connections_per_address == DEFAULT_MAX_CONNECTIONS_PER_ADDRESS == 256
    assert Settings() == defaults
    mine = Settings.from_env(
        {"DATACAT_HEAD_TIMEOUT": "2.5", "DATACAT_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    )
    assert (mine.head_timeout, mine.max_connections_per_address) == (2.5, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATACAT_HEAD_TIMEOUT": "0"}, "DATACAT_HEAD_TIMEOUT must be a positive"),
        ({"DATACAT_HEAD_TIMEOUT": "nan"}, "DATACAT_HEAD_TIMEOUT must be a positive"),
        ({"DATACAT_HEAD_TIMEOUT": "inf"}, "DATACAT_HEAD_TIMEOUT must be a positive"),
        ({"DATACAT_HEAD_TIMEOUT": "soon"}, "DATACAT_HEAD_TIMEOUT must be a number"),
        ({"DATACAT_MAX_CONNECTIONS_PER_ADDRESS": "-1"}, "must be 0 (no limit) or more"),
    ],
)
def test_bad_connection_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("client", "key"),
    [
        (("127.0.0.1", 5000), "127.0.0.1"),
        (("::ffff:10.0.0.1", 5000), "10.0.0.1"),
        (("2001:db8::5", 5000), "2001:db8::/64"),
        (("2001:db8::6:7", 5000), "2001:db8::/64"),
        (("fe80::1%eth0", 5000), "fe80::/64"),
        (None, None),
    ],
)
def test_connections_are_counted_per_address_and_per_ipv6_64(
    client: tuple[str, int] | None, key: str | None
) -> None:
    assert _address_key(client) == key


# -- the head's deadline -------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_heads_that_trickle_in_are_closed_at_the_deadline_and_health_still_answers(
    tmp_path: Path,
) -> None:
    timeout = 2.0
    with _server(tmp_path, DATACAT_HEAD_TIMEOUT=str(timeout)) as server:
        # A kept-alive connection that had its answer, then trickles the next head.
        kept = _connect(server.port)
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(kept).startswith(b"HTTP/1.1 200 ")
        kept.sendall(b"GET /hea")
        trickling = [kept] + [_connect(server.port) for _ in range(100)]
        idle = [_connect(server.port) for _ in range(20)]  # never send a byte
        opened = time.monotonic()
        for sock in trickling[1:]:
            sock.sendall(PARTIAL_HEAD)

        selector = selectors.DefaultSelector()
        for sock in trickling + idle:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        answers: dict[socket.socket, bytes] = dict.fromkeys(trickling + idle, b"")
        closed_after: dict[socket.socket, float] = {}
        health_while_trickling: list[int] = []
        next_drip = 0.0
        while len(closed_after) < len(answers) and time.monotonic() < opened + timeout + 15:
            now = time.monotonic()
            if now >= next_drip:  # a byte every 0.2 s on every open trickling connection
                next_drip = now + 0.2
                for sock in trickling:
                    if sock not in closed_after:
                        with contextlib.suppress(OSError):
                            sock.send(b"x")
                if now - opened < timeout * 0.75:
                    health_while_trickling.append(_health_from("127.0.0.1", server.url))
            for key, _ in selector.select(timeout=0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                answers[sock] += chunk
                if not chunk:
                    closed_after[sock] = time.monotonic() - opened
                    selector.unregister(sock)
        selector.close()

        assert len(closed_after) == len(answers), "connections still open after the deadline"
        assert health_while_trickling, "no /health request was made while heads trickled"
        assert set(health_while_trickling) == {200}
        for sock in trickling:
            assert answers[sock].startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answers[sock]
            assert b"took longer than 2 s" in answers[sock]
        for sock in idle:
            assert answers[sock] == b""  # nothing came, nothing to answer
        # Closed by the deadline, not before; the kept-alive one counts from its answer.
        assert min(closed_after.values()) >= timeout * 0.8
        assert _health_from("127.0.0.1", server.url) == 200
        for sock in trickling + idle:
            sock.close()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_slow_but_timely_head_and_a_slow_body_are_answered(tmp_path: Path) -> None:
    with _server(tmp_path, DATACAT_HEAD_TIMEOUT="2") as server:
        with _connect(server.port) as sock:
            for piece in (
                b"GET /health HTTP/1.1\r\n",
                b"Host: x\r\n",
                b"Connection: close\r\n\r\n",
            ):
                sock.sendall(piece)
                time.sleep(0.4)
            assert _read_until_closed(sock, 10).startswith(b"HTTP/1.1 200 ")
        # The deadline is for the head: a body may take longer (the body limit bounds it).
        body = b'{"records": []}'
        with _connect(server.port) as sock:
            sock.sendall(
                b"POST /api/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            )
            for i in range(len(body)):  # 15 bytes over 3 s
                sock.sendall(body[i : i + 1])
                time.sleep(0.2)
            assert _read_until_closed(sock, 10).startswith(b"HTTP/1.1 200 ")


# -- connections per address ---------------------------------------------------------------


@pytest.mark.e2e
def test_connections_past_the_limit_of_one_address_are_closed_at_once(tmp_path: Path) -> None:
    limit = 20
    env = {"DATACAT_MAX_CONNECTIONS_PER_ADDRESS": str(limit), "DATACAT_HEAD_TIMEOUT": "60"}
    with _server(tmp_path, **env) as server:
        held = [_connect(server.port) for _ in range(limit)]
        try:
            for _ in range(5):
                with _connect(server.port) as extra:
                    answer = _read_until_closed(extra, 5)  # at once, not at the deadline
                assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
                assert b"holds 20 connections" in answer
            # Another address is served meanwhile, and so are the held connections.
            assert _health_from(BYSTANDER, server.url) == 200
            held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(held[0]).startswith(b"HTTP/1.1 200 ")
            # A closed connection frees its place.
            held.pop().close()
            deadline = time.monotonic() + 10
            while True:
                with _connect(server.port) as again:
                    again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = _read_until_closed(again, 5)
                if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
        finally:
            for sock in held:
                sock.close()
        assert "holds 20 connections" in server.log()  # logged once, for the operator
        assert server.log().count("holds 20 connections") == 1


@pytest.mark.e2e
@pytest.mark.slow
def test_1100_half_open_connections_from_one_address_leave_health_answering(
    tmp_path: Path,
) -> None:
    """The review's finding, with the defaults: a server limited to 1,024 descriptors, and
    1,100 connections from one address that each send part of a head and stop."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 1_100 + 200
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.fail(f"this test needs {needed} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    flood: list[socket.socket] = []
    try:
        with _server(tmp_path) as server:
            assert server.proc is not None
            resource.prlimit(server.proc.pid, resource.RLIMIT_NOFILE, (1_024, 1_024))
            for _ in range(1_100):
                sock = _connect(server.port)
                with contextlib.suppress(OSError):  # refused ones may be closed already
                    sock.sendall(PARTIAL_HEAD)
                flood.append(sock)
            started = time.monotonic()
            assert _health_from(BYSTANDER, server.url) == 200
            # answered at once, long before the deadline frees anything
            assert time.monotonic() - started < DEFAULT_HEAD_TIMEOUT / 2
            assert server.proc.poll() is None
    finally:
        for sock in flood:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
