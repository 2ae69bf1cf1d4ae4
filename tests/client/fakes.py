"""Test doubles and helpers of the client tests: a transport that plays the server, a
capturing HTTP server, spool readers, a fake clock."""

from __future__ import annotations

import collections
import dataclasses
import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datacat_client import TransportError, wire
from datacat_client._transport import Request, Response

BASE_URL = "http://datacat.test"
SESSION_ID = "0" * 32


#: Where batches go: format 2 (results as columns), and format 1 for older servers.
INGEST_PATHS = ("/api/ingest/v2", "/api/ingest")


def ingested_records(path: str, body: bytes) -> list[wire.Record]:
    """The records of a batch posted to ``path``, whichever format it is in."""
    if path == "/api/ingest/v2":
        return wire.records_of_columns(wire.columnar_decoder.decode(body))
    return list(wire.batch_decoder.decode(body).records)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    """A `Response` with a JSON body (``{"detail": ...}`` when ``body`` is a string)."""
    if isinstance(body, str):
        body = {"status_code": status, "detail": body}
    content = b"" if body is None else json.dumps(body).encode()
    return Response(status, {k.lower(): v for k, v in (headers or {}).items()}, content)


def refused_connection() -> TransportError:
    return TransportError("connection refused", unreachable=True)


def timed_out() -> TransportError:
    return TransportError("timed out")


@dataclasses.dataclass
class Call:
    at: float
    records: list[wire.Record]
    timeout: float | None


#: What a scripted call does: raise, answer, or hang this many seconds (ignoring the
#: request's timeout, as the worst transport would) and then answer normally.
Action = BaseException | Response | float


class FakeServer:
    """A `Transport` that plays the server: ``POST /api/ingest`` stores records like the
    server does, each (session, seq) once; other requests are recorded and answered
    ``{"status": "ok"}`` (a new session id for ``POST /api/sessions``).

    ``script`` holds what the next batch posts do, in order (see `Action`). ``down``
    makes every request fail as a refused connection would, ``slow`` as one that timed
    out. With ``require_start``, a batch holding records of a session whose
    `wire.SessionStart` was never stored is refused with 404, as the server does.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.requests: list[Request] = []
        self.stored: list[wire.Record] = []
        self.keys: set[tuple[str, int]] = set()
        self.script: collections.deque[Action] = collections.deque()
        self.down = False
        self.slow = False
        self.release = threading.Event()
        self.closed = False
        self.require_start = False
        self.started: set[str] = set()
        #: Answers to other requests, by path.
        self.answers: dict[str, Response] = {}

    def handle_request(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request)
        if self.down:
            raise refused_connection()
        if self.slow:
            raise timed_out()
        if request.path in self.answers:
            return self.answers[request.path]
        if request.path == "/api/sessions" and request.method == "POST":
            return answer(200, {"session_id": "3f2b8c9e-1d4a-4b6f-9a7e-2c5d8e1f0a3b"})
        if request.path not in INGEST_PATHS:
            return answer(200, {"status": "ok"})
        records = ingested_records(request.path, request.body or b"")
        with self.lock:
            self.calls.append(Call(time.monotonic(), records, request.timeout))
            action = self.script.popleft() if self.script else None
        if isinstance(action, float):
            self.release.wait(action)
        elif isinstance(action, BaseException):
            raise action
        elif isinstance(action, Response):
            return action
        return self._store(records)

    def _store(self, records: list[wire.Record]) -> Response:
        accepted = duplicates = 0
        with self.lock:
            if self.require_start:
                known = self.started | {
                    r.session_id for r in records if isinstance(r, wire.SessionStart)
                }
                strangers = {r.session_id for r in records} - known
                if strangers:
                    return answer(404, f"unknown session: {sorted(strangers)[0]}")
                self.started = known
            for record in records:
                key = (record.session_id, record.seq)
                if key in self.keys:
                    duplicates += 1
                else:
                    self.keys.add(key)
                    self.stored.append(record)
                    accepted += 1
        return answer(200, {"accepted": accepted, "duplicates": duplicates})

    def close(self) -> None:
        self.closed = True

    def of_kind(self, cls: type[Any]) -> list[Any]:
        with self.lock:
            return [r for r in self.stored if isinstance(r, cls)]

    def seqs(self) -> list[int]:
        with self.lock:
            return [r.seq for r in self.stored]


def wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


# -- a real HTTP server on 127.0.0.1 ---------------------------------------------------


@dataclasses.dataclass
class CapturedRequest:
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
    #: Seconds before answering; cut short when the server stops.
    delay: float = 0.0
    #: Close the connection after answering, without saying so (a keep-alive timeout).
    drop: bool = False


class CapturingServer:
    """Records every request; answers with queued `Reply` objects (default: 200 ok)."""

    def __init__(self) -> None:
        self.requests: list[CapturedRequest] = []
        self.replies: collections.deque[Reply] = collections.deque()
        self.stopping = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append(
                    CapturedRequest(
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
                    owner.stopping.wait(reply.delay)
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
                if reply.drop:
                    self.close_connection = True

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

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def read_spool_files(directory: Path) -> list[tuple[dict[str, Any], list[wire.Record]]]:
    """Every spool file in ``directory``: its header and its records."""
    files = []
    for path in sorted(directory.glob("*.jsonl")):
        lines = path.read_bytes().splitlines()
        header = json.loads(lines[0])
        files.append((header, [wire.record_decoder.decode(line) for line in lines[1:]]))
    return files


def spooled_seqs(directory: Path) -> list[int]:
    """The sequence numbers of every record in the spool files of ``directory``."""
    return sorted(r.seq for _, records in read_spool_files(directory) for r in records)


def event(n: int, session_id: str = SESSION_ID, name: str = "e") -> wire.Event:
    """A small event record with seq ``n``."""
    return wire.Event(session_id=session_id, seq=n, timestamp=1.0, name=name, data={"n": n})


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
