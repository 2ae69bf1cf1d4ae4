"""`DatacatClient`: plain, synchronous calls of the REST API.

Each call is one HTTP request and raises a `DatacatError` when it fails. This is the
seed service's client, names and arguments kept; for logging from a running program,
`create_session` (buffered, never blocking, never raising) is usually the better tool.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import msgspec

from . import wire
from ._capture import ExcInfo, exception_data
from ._config import resolve_base_url, resolve_token
from ._errors import DatacatError
from ._transport import HttpTransport, Request, Response, Transport, raise_for_status

__all__ = ["DatacatClient", "format_tags"]

_ack_decoder = msgspec.json.Decoder(wire.BatchAck)


def format_tags(tags: Sequence[object] | Mapping[str, object] | None) -> list[str]:
    """Metric tags as strings: a mapping becomes ``["key=value", ...]``."""
    if not tags:
        return []
    if isinstance(tags, Mapping):
        return [f"{key}={value}" for key, value in tags.items()]
    if isinstance(tags, str):
        return [tags]
    return [tag if type(tag) is str else str(tag) for tag in tags]


def _json(request: Request, response: Response) -> Any:
    """A 2xx answer's JSON (``{}`` when empty); an error answer raised as `APIError`."""
    raise_for_status(response)
    if not response.content:
        return {}
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise DatacatError(
            f"{request.method} {request.path}: the answer is not JSON: {exc}"
        ) from exc


def _form_data(files: Sequence[tuple[str, bytes]]) -> tuple[bytes, str]:
    """``multipart/form-data`` with each file as a part named ``file``; and its type."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, content in files:
        filename = (
            name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
        )
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{filename}"\r\nContent-Type: application/xml\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _no_such_route(response: Response) -> bool:
    """A 404 from the router (not one of ours, such as an unknown session)."""
    if response.status not in (404, 405):
        return False
    try:
        detail = msgspec.json.decode(response.content).get("detail")
    except (msgspec.DecodeError, AttributeError):
        return True
    return detail in ("Not Found", "Method Not Allowed")


def _ack(path: str, response: Response) -> wire.BatchAck:
    raise_for_status(response)
    try:
        return _ack_decoder.decode(response.content)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DatacatError(f"POST {path}: invalid answer: {exc}") from exc


class DatacatClient:
    """Synchronous client of the DataCat REST API.

    ``base_url`` defaults to ``$DATACAT_URL`` (else ``http://127.0.0.1:8080``) and
    ``token`` to ``$DATACAT_TOKEN``. Every request goes through ``transport``: by
    default an `HttpTransport` to ``base_url`` with ``token``; tests pass their own.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        *,
        transport: Transport | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.transport: Transport = (
            HttpTransport(self.base_url, resolve_token(token), timeout)
            if transport is None
            else transport
        )
        #: Whether the server takes batch format 2 (results as columns); learnt from
        #: the first batch: a server older than format 2 answers its path with 404.
        self.columnar = True

    # -- plumbing ---------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        content = None if body is None else wire.encode(body)
        wait = self.timeout if timeout is None else timeout
        request = Request(method, path, content, params, wait)
        return _json(request, self.transport.handle_request(request))

    @staticmethod
    def _path(session_id: str, tail: str = "") -> str:
        return f"/api/sessions/{session_id}{tail}"

    # -- the seed's API ---------------------------------------------------------------

    def register_session(
        self,
        name: str = "",
        product: str = "",
        version: str = "",
        labels: Mapping[str, str] | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a session (``POST /api/sessions``); return its id."""
        fields: dict[str, Any] = {
            "name": name,
            "product": product,
            "version": version,
            "labels": dict(labels) if labels else None,
            "state": dict(state) if state else None,
        }
        body = {key: value for key, value in fields.items() if value}
        answer = self._call("POST", "/api/sessions", body or None)
        try:
            return str(answer["session_id"])
        except (KeyError, TypeError) as exc:
            raise DatacatError(f"POST /api/sessions: no session_id in {answer!r}") from exc

    def get_session(self, session_id: str) -> dict[str, Any]:
        """A session with its state, events and metrics (``GET /api/sessions/{id}``)."""
        answer: dict[str, Any] = self._call("GET", self._path(session_id))
        return answer

    def update_state(self, session_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        """Deep-merge a partial state into the session's state."""
        answer: dict[str, Any] = self._call("POST", self._path(session_id, "/state"), dict(state))
        return answer

    def log_event(self, session_id: str, name: str, data: Any = None) -> dict[str, Any]:
        """Log an event ``{name, data}``."""
        body = {"name": name, "data": data}
        answer: dict[str, Any] = self._call("POST", self._path(session_id, "/events"), body)
        return answer

    def log_metric(
        self,
        session_id: str,
        name: str,
        value: float,
        tags: Sequence[object] | Mapping[str, object] | None = None,
        *,
        unit: str = "",
        kind: wire.MetricKind = "gauge",
    ) -> dict[str, Any]:
        """Log a metric value; ``tags`` is a list of strings or a mapping (sent as ``k=v``).
        ``unit`` (``"ms"``, ``"bytes"``) and ``kind`` (``"gauge"``, a level, or
        ``"counter"``, a running total) as `Session.log_metric` takes them; sent only
        when given, so a call without them is the seed's request."""
        body: dict[str, Any] = {"name": name, "value": float(value), "tags": format_tags(tags)}
        if unit:
            body["unit"] = unit
        if kind != "gauge":
            body["kind"] = kind
        answer: dict[str, Any] = self._call("POST", self._path(session_id, "/metrics"), body)
        return answer

    def log_exception(
        self,
        session_id: str,
        exc_info: ExcInfo = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log an ``exception`` event (None: the exception being handled now)."""
        if exc_info is None:
            exc_info = sys.exc_info()
        return self.log_event(session_id, "exception", exception_data(exc_info, extra_data))

    def end_session(self, session_id: str) -> dict[str, Any]:
        """End a session."""
        answer: dict[str, Any] = self._call("POST", self._path(session_id, "/end"))
        return answer

    def get_all_sessions(
        self, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """Every session (``GET /api/data/sessions``), optionally one page of them."""
        params = {
            key: value for key, value in (("limit", limit), ("offset", offset)) if value is not None
        }
        answer = self._call("GET", "/api/data/sessions", params=params or None)
        if not isinstance(answer, list):
            raise DatacatError(
                f"GET /api/data/sessions: expected a list, got {type(answer).__name__}"
            )
        return answer

    # -- added ------------------------------------------------------------------------

    def heartbeat(self, session_id: str, interval: float | None = None) -> dict[str, Any]:
        """Tell the server the session is alive; ``interval``: seconds until the next one."""
        path = self._path(session_id, "/heartbeat")
        answer: dict[str, Any] = self._call("POST", path, {"interval": interval})
        return answer

    def run_classification(self, run_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """A run's failures classified against its base run: ``counts`` (new, new_test,
        already_failing, known_flaky, fixed), ``failures`` and ``fixed``."""
        path = f"/api/runs/{quote(run_id, safe='')}/classification"
        answer: dict[str, Any] = self._call("GET", path, timeout=timeout)
        return answer

    def add_to_quarantine(self, project: str, nodeid: str, reason: str = "") -> bool:
        """Put a test in quarantine (a token with the quarantine scope); False if it was."""
        body = {"project": project, "nodeid": nodeid, "reason": reason}
        return bool(self._call("POST", "/api/quarantine", body).get("changed"))

    def remove_from_quarantine(self, project: str, nodeid: str, reason: str = "") -> bool:
        """Take a test out of quarantine; False if it was not in."""
        body = {"project": project, "nodeid": nodeid, "reason": reason}
        return bool(self._call("POST", "/api/quarantine/remove", body).get("changed"))

    def quarantine_log(self, project: str, nodeid: str | None = None) -> list[dict[str, Any]]:
        """Every change to the project's (or one test's) quarantine, newest first."""
        params = {"project": project, **({"nodeid": nodeid} if nodeid else {})}
        answer = self._call("GET", "/api/quarantine/log", params=params)
        if not isinstance(answer, list):
            raise DatacatError(
                f"GET /api/quarantine/log: expected a list, got {type(answer).__name__}"
            )
        return answer

    def apply_retention(
        self, days: float | None = None, project: str | None = None, *, timeout: float = 600.0
    ) -> dict[str, Any]:
        """Delete old data (an admin token): the server's policy, or ``days`` (of
        ``project`` only, if given). ``{"sessions": n, "rows": {table: n}}``."""
        body = None if days is None else {"days": days, "project": project}
        answer: dict[str, Any] = self._call("POST", "/api/admin/retention", body, timeout=timeout)
        return answer

    def sql(
        self, sql: str, *, max_rows: int | None = None, fmt: str = "json", timeout: float = 120.0
    ) -> Any:
        """Run one read-only SQL statement: the JSON result (``columns``, ``types``,
        ``rows``, ``truncated``), or the bytes of a ``csv`` or ``parquet`` answer."""
        body = {"sql": sql, "max_rows": max_rows}
        params = None if fmt == "json" else {"format": fmt}
        request = Request("POST", "/api/sql", wire.encode(body), params, timeout)
        response = self.transport.handle_request(request)
        if fmt == "json":
            return _json(request, response)
        raise_for_status(response)
        return response.content

    def import_junit(
        self,
        files: Sequence[tuple[str, bytes]],
        *,
        project: str,
        branch: str | None = None,
        commit: str | None = None,
        labels: Sequence[str] = (),
        timeout: float = 600.0,
    ) -> tuple[int, dict[str, Any]]:
        """Import JUnit XML files (name, content) as one run; the status (201 new, 200
        already imported, 207 a file was cut short) and the answer."""
        body, content_type = _form_data(files)
        params: dict[str, Any] = {"project": project, "label": list(labels)}
        params.update({k: v for k, v in (("branch", branch), ("commit", commit)) if v})
        request = Request("POST", "/api/import/junit", body, params, timeout, content_type)
        response = self.transport.handle_request(request)
        answer = _json(request, response)
        return response.status, answer if isinstance(answer, dict) else {}

    def quarantined(self, project: str, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """The tests of ``project`` in quarantine now (``nodeid``, ``reason``, ``since``)."""
        answer = self._call("GET", "/api/quarantine", params={"project": project}, timeout=timeout)
        if not isinstance(answer, list):
            raise DatacatError(f"GET /api/quarantine: expected a list, got {type(answer).__name__}")
        return answer

    def send_batch(
        self, records: Sequence[wire.Record], *, timeout: float | None = None
    ) -> wire.BatchAck:
        """Send records in one batch; return what the server stored.

        Test results go as columns (``POST /api/ingest/v2``, format 2), which the server
        stores without a step per result; a server that predates it gets every record
        one by one (``POST /api/ingest``, format 1) from then on.
        ``timeout``: seconds to wait for the answer (default: the client's).
        """
        wait = self.timeout if timeout is None else timeout
        if self.columnar:
            body = wire.encode_columnar(records)
            response = self.transport.handle_request(
                Request("POST", "/api/ingest/v2", body, None, wait)
            )
            if not _no_such_route(response):
                return _ack("/api/ingest/v2", response)
            self.columnar = False
        body = wire.encode(wire.Batch(records=list(records)))
        response = self.transport.handle_request(Request("POST", "/api/ingest", body, None, wait))
        return _ack("/api/ingest", response)

    def close(self) -> None:
        """Close the transport's connections."""
        self.transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
