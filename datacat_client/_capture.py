"""What the client captures from the running program: exceptions and thread stacks."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeAlias

__all__ = ["ExcInfo", "exception_data", "thread_stacks"]

#: What `exception_data` accepts: a ``sys.exc_info()`` tuple, an exception, or None
#: for the exception being handled now.
ExcInfo: TypeAlias = (
    tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    | BaseException
    | None
)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__} object>"


def exception_data(
    exc_info: ExcInfo = None, extra_data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The data of an ``exception`` event: ``type``, ``message``, ``traceback`` lines,
    then ``extra_data`` merged in. Never raises."""
    if exc_info is None:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_type: type[BaseException] | None = type(exc_info)
        value: BaseException | None = exc_info
        tb = exc_info.__traceback__
    else:
        exc_type, value, tb = exc_info
    if exc_type is None and value is not None:
        exc_type = type(value)
    data: dict[str, Any]
    if exc_type is None:
        data = {"type": "Unknown", "message": "", "traceback": []}
    else:
        try:
            lines = traceback.format_exception(exc_type, value, tb)
        except Exception:
            lines = []
        data = {
            "type": exc_type.__name__,
            "message": _safe_str(value) if value is not None else "",
            "traceback": lines,
        }
    if extra_data:
        try:
            data.update(extra_data)
        except (TypeError, ValueError):
            data["extra_data"] = extra_data
    return data


def thread_stacks() -> list[dict[str, Any]]:
    """Every thread of the process: ``name``, ``ident``, ``daemon`` and its ``stack`` lines."""
    frames = sys._current_frames()
    stacks = []
    seen = set()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        seen.add(thread.ident)
        stacks.append(
            {
                "name": thread.name,
                "ident": thread.ident,
                "daemon": thread.daemon,
                "stack": traceback.format_stack(frame) if frame is not None else [],
            }
        )
    for ident, frame in frames.items():
        if ident not in seen:  # started outside the threading module
            stacks.append(
                {
                    "name": f"<thread {ident}>",
                    "ident": ident,
                    "daemon": None,
                    "stack": traceback.format_stack(frame),
                }
            )
    return stacks
