"""Limits on what one request may carry, and how a JSON body is read safely.

Every limit has a default and a setting (`datacat_server.settings.Settings`; the
environment variable is the setting's name in capitals after ``DATACAT_``). A value
past a limit on something that names a thing (a session, an event, a metric, a test,
a label, a tag) is refused with 400: silently cutting a name would merge different
things. Long free text (messages, tracebacks, captured output) is cut, the cut marked,
because losing the end of a traceback is better than losing the failure.

JSON bodies: invalid UTF-8, nesting deeper than the limit, and an object with the
same key twice are refused with 400 before anything is stored (a duplicate key is
ambiguous: parsers disagree on which value wins).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgspec

from datacat_client import wire
from datacat_server.errors import InvalidInputError

__all__ = ["Limits", "check_json_body", "check_records", "check_tree"]

_TRUNCATED = "\n... [cut by the DataCat server: {n} characters over its limit] ...\n"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Limits:
    #: Names: sessions, products, versions, events, metrics, label keys and values, tags.
    max_name_length: int = 1_000
    max_nodeid_length: int = 4_000
    #: Free text (messages, tracebacks, output) longer than this is cut, the cut marked.
    max_text_length: int = 100_000
    #: State patches and event data: nesting depth, and encoded size in bytes.
    max_depth: int = 32
    max_data_bytes: int = 1_000_000
    max_tags: int = 50
    max_labels: int = 100


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    keep = max(0, limit - 100)
    head, tail = keep // 2, keep - keep // 2
    return text[:head] + _TRUNCATED.format(n=len(text) - keep) + text[len(text) - tail :]


def _name(value: str, what: str, limit: int, where: str) -> None:
    if len(value) > limit:
        raise InvalidInputError(
            f"{where}: {what} is {len(value)} characters long; at most {limit} are allowed"
        )


def check_tree(value: Any, limits: Limits, where: str) -> None:
    """Refuse JSON data nested deeper or encoded bigger than the limits (iteratively)."""
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.max_depth:
            raise InvalidInputError(f"{where}: nested deeper than {limits.max_depth} levels")
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    size = len(msgspec.json.encode(value))
    if size > limits.max_data_bytes:
        raise InvalidInputError(
            f"{where}: {size} bytes of JSON; at most {limits.max_data_bytes} are allowed"
        )


def _check_labels(labels: Mapping[str, str], limits: Limits, where: str) -> None:
    if len(labels) > limits.max_labels:
        raise InvalidInputError(f"{where}: {len(labels)} labels; at most {limits.max_labels}")
    for key, value in labels.items():
        _name(key, "a label key", limits.max_name_length, where)
        _name(value, "a label value", limits.max_name_length, where)


def _check_result(record: Any, limits: Limits, where: str) -> None:
    _name(record.nodeid, "the nodeid", limits.max_nodeid_length, where)
    for attr in ("file", "cls", "func", "param_id", "phase", "worker"):
        _name(getattr(record, attr), attr, limits.max_nodeid_length, where)
    _check_list(record.markers, "markers", limits, where)
    cap = limits.max_text_length
    for attr in _FREE_TEXT:
        value = getattr(record, attr)
        if value is not None and len(value) > cap:
            setattr(record, attr, _cut(value, cap))


_FREE_TEXT = ("reason", "exc_type", "exc_message", "traceback", "stdout", "stderr", "log")


def _check_list(items: list[str], what: str, limits: Limits, where: str) -> None:
    if len(items) > limits.max_tags:
        raise InvalidInputError(f"{where}: {len(items)} {what}; at most {limits.max_tags}")
    for item in items:
        _name(item, f"one of the {what}", limits.max_name_length, where)


def _check_event(record: Any, limits: Limits, where: str) -> None:
    _name(record.name, "the event name", limits.max_name_length, where)
    check_tree(record.data, limits, f"{where}.data")


def _check_metric(record: Any, limits: Limits, where: str) -> None:
    _name(record.name, "the metric name", limits.max_name_length, where)
    _check_list(record.tags, "tags", limits, where)


def _check_state(record: Any, limits: Limits, where: str) -> None:
    check_tree(record.state, limits, f"{where}.state")


def _check_start(record: Any, limits: Limits, where: str) -> None:
    for attr in ("name", "product", "version"):
        _name(getattr(record, attr), attr, limits.max_name_length, where)
    _check_labels(record.labels, limits, where)
    check_tree(record.state, limits, f"{where}.state")


def _check_test_start(record: Any, limits: Limits, where: str) -> None:
    _name(record.nodeid, "the nodeid", limits.max_nodeid_length, where)


def _check_run_start(record: Any, limits: Limits, where: str) -> None:
    for attr in ("project", "branch", "commit", "ci_provider", "hostname", "platform"):
        _name(getattr(record, attr), attr, limits.max_name_length, where)
    _name(record.ci_url, "ci_url", limits.max_nodeid_length, where)
    if len(record.args) + len(record.plugins) > 10_000:
        raise InvalidInputError(f"{where}: too many arguments or plugins")


def _check_run_finish(record: Any, limits: Limits, where: str) -> None:
    record.reason = _cut(record.reason, limits.max_text_length) or ""


_CHECKS = {
    wire.TestResult: _check_result,
    wire.Event: _check_event,
    wire.Metric: _check_metric,
    wire.StateUpdate: _check_state,
    wire.SessionStart: _check_start,
    wire.TestStart: _check_test_start,
    wire.RunStart: _check_run_start,
    wire.RunFinish: _check_run_finish,
}


def check_records(records: Sequence[wire.Record], limits: Limits) -> None:
    """Check a batch against the limits: refuse (400) or cut, as the module says."""
    for index, record in enumerate(records):
        check = _CHECKS.get(type(record))
        if check is not None:
            check(record, limits, f"records[{index}]")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInputError(f"the JSON has the key {key[:80]!r} twice in one object")
        result[key] = value
    return result


def check_json_body(body: bytes) -> None:
    """Refuse invalid UTF-8 and duplicate keys (400). Costs a second parse: for bodies
    of free-form JSON (state, event data), not for batches of typed test results."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        json.loads(text, object_pairs_hook=_refuse_duplicates)
    except RecursionError:
        raise InvalidInputError("the JSON is nested too deeply") from None
    except json.JSONDecodeError:
        pass  # malformed JSON: the decoder that follows says where
