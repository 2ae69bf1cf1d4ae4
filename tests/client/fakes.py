"""Test doubles and helpers of the client tests: a fake transport, a capturing HTTP
server, spool readers."""

from __future__ import annotations

import collections
import dataclasses
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any

from datacat_client import NotFound, TransportError, wire

BASE_URL = "http://datacat.test"
SESSION_ID = "0" * 32


@dataclasses.dataclass
class Call:
    at: float
    records: list[wire.Record]
    timeout: float


class FakeTransport:
    """A `Transport` that stores batches like the server does, (session, seq) once.

    ``script`` holds what the next calls do, in order: an exception to raise, or a
    number of seconds to hang (ignoring the timeout, as the worst transport would).
    ``down`` makes every call raise `TransportError`. With ``require_start``, a batch
    holding records of a session whose `wire.SessionStart` was never stored is refused
    with `NotFound`, as the server does.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.stored: list[wire.Record] = []
        self.keys: set[tuple[str, int]] = set()
        self.script: collections.deque[BaseException | float] = collections.deque()
        self.down = False
        self.release = threading.Event()
        self.closed = False
        self.require_start = False
        self.started: set[str] = set()

    def post_batch(self, body: bytes, timeout: float) -> wire.BatchAck:
        batch = wire.batch_decoder.decode(body)
        with self.lock:
            self.calls.append(Call(time.monotonic(), batch.records, timeout))
            action = self.script.popleft() if self.script else None
        if self.down:
            raise TransportError("connection refused")
        if isinstance(action, float):
            self.release.wait(action)
        elif isinstance(action, BaseException):
            raise action
        accepted = duplicates = 0
        with self.lock:
            if self.require_start:
                known = self.started | {
                    r.session_id for r in batch.records if isinstance(r, wire.SessionStart)
                }
                strangers = {r.session_id for r in batch.records} - known
                if strangers:
                    raise NotFound(f"unknown session: {sorted(strangers)[0]}")
                self.started = known
            for record in batch.records:
                key = (record.session_id, record.seq)
                if key in self.keys:
                    duplicates += 1
                else:
                    self.keys.add(key)
                    self.stored.append(record)
                    accepted += 1
        return wire.BatchAck(accepted=accepted, duplicates=duplicates)

    def close(self) -> None:
        self.closed = True

    def of_kind(self, cls: type[Any]) -> list[Any]:
        with self.lock:
            return [r for r in self.stored if isinstance(r, cls)]

    def wait_calls(self, n: int, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.calls) >= n:
                return True
            time.sleep(0.005)
        return False


# -- a real HTTP server on 127.0.0.1 ---------------------------------------------------


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The client's (host, port): one port for several requests means one connection.
    peer: tuple[str, int]
    #: When it arrived (time.monotonic).
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Reply:
    status: int = 200
    body: Any = dataclasses.field(default_factory=lambda: {"status": "ok"})
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    delay: float = 0.0


class CapturingServer:
    """Records every request; answers with queued `Reply` objects (default: 200 ok)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.replies: collections.deque[Reply] = collections.deque()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append(
                    Request(
                        self.command,
                        self.path,
                        dict(self.headers.items()),
                        body,
                        (self.client_address[0], self.client_address[1]),
                        time.monotonic(),
                    )
                )
                reply = owner.replies.popleft() if owner.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                payload = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)


def read_spool_files(directory: Path) -> list[tuple[dict[str, Any], list[wire.Record]]]:
    """Every spool file in ``directory``: its header and its records."""
    files = []
    for path in sorted(directory.glob("*.jsonl")):
        lines = path.read_bytes().splitlines()
        header = json.loads(lines[0])
        files.append((header, [wire.record_decoder.decode(line) for line in lines[1:]]))
    return files


def event(n: int, session_id: str = SESSION_ID, name: str = "e") -> wire.Event:
    """A small event record with seq ``n``."""
    return wire.Event(session_id=session_id, seq=n, timestamp=1.0, name=name, data={"n": n})
