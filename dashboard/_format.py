"""How numbers, durations and times read on a page (Jinja filters, also used by charts)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup, escape

__all__ = [
    "FILTERS",
    "byte_size",
    "bytes_delta",
    "count_items",
    "duration",
    "epoch_ms",
    "factor",
    "json_preview",
    "metric_title",
    "metric_value",
    "nodeid_breaks",
    "number",
    "percent",
    "pretty_json",
    "safe_url",
    "shell_quote",
    "short_commit",
    "tag_value",
    "traceback_html",
    "utc",
]

_DASH = "—"


def duration(seconds: float | None) -> str:
    """Seconds as text with a unit: ``350 µs``, ``12 ms``, ``1.25 s``, ``2 min 5 s``."""
    if seconds is None:
        return _DASH
    value = float(seconds)
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1000:.0f} ms" if value >= 0.01 else f"{value * 1000:.1f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def percent(rate: float | None, digits: int = 1) -> str:
    """A 0..1 rate as a percentage: ``87.5 %``."""
    if rate is None:
        return _DASH
    return f"{rate * 100:.{digits}f} %"


def number(value: float | None) -> str:
    """A count with thousands separators; a float with at most 4 significant digits."""
    if value is None:
        return _DASH
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def factor(value: float | None) -> str:
    """A ratio as ``x1.80``, with a multiplication sign."""
    return _DASH if value is None else f"\N{MULTIPLICATION SIGN}{value:.2f}"


def bytes_delta(value: int | None) -> str:
    """A memory change in bytes as ``+1.5 MiB``."""
    if value is None:
        return _DASH
    sign = "-" if value < 0 else "+"
    size = float(abs(value))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{sign}{size:.0f} {unit}" if unit == "B" else f"{sign}{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def byte_size(value: float | None) -> str:
    """A size in bytes as ``1.5 MiB`` (``-200 KiB`` for a negative change)."""
    if value is None:
        return _DASH
    text = bytes_delta(round(value))
    return text[1:] if text.startswith("+") else text


#: Units a value is formatted in rather than printed after.
_DURATION_UNITS = {"s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6}
_BYTE_UNITS = ("bytes", "byte", "B")


def metric_value(value: float | None, unit: str = "") -> str:
    """A metric's value as text in its unit: durations (``s``, ``ms``) as ``12 ms``,
    sizes (``bytes``) as ``1.5 MiB``, rates as their unit per second (``1.5 MiB/s``,
    ``10 requests/s``, ``10/s``), anything else as the number and its unit."""
    if value is None:
        return _DASH
    if unit.endswith("/s"):
        base = unit.removesuffix("/s")
        return (metric_value(value, base) if base else number(value)) + "/s"
    if unit in _DURATION_UNITS:
        return duration(value * _DURATION_UNITS[unit])
    if unit in _BYTE_UNITS:
        return byte_size(value)
    text = number(value)
    return f"{text} {unit}" if unit else text


def metric_title(name: str, unit: str = "") -> str:
    """A metric's name with its unit: ``test_duration (s)``."""
    return f"{name} ({unit})" if unit else name


#: A part of a node id longer than this (a long parameter id) also gets a break
#: opportunity every so many characters: unbroken, it widens its table past the page.
LONGEST_PART = 48


def nodeid_breaks(nodeid: str | None) -> Markup:
    """A node id, escaped, with line break opportunities (``<wbr>``) after ``::`` and
    ``/`` and before ``[``: a long id wraps between its parts, never inside a name
    (but for a part longer than `LONGEST_PART`, cut in pieces of that length)."""
    if not nodeid:
        return Markup("")
    parts = re.split(r"(?<=::)|(?<=/)|(?=\[)", nodeid)
    pieces = (
        part[i : i + LONGEST_PART] for part in parts for i in range(0, len(part), LONGEST_PART)
    )
    return Markup("<wbr>").join(escape(piece) for piece in pieces)


#: pytest's explanation lines (``E       assert 1 == 2``) and the line that failed.
_EXPLANATION = re.compile(r"E(?: |$)")


def traceback_html(text: str | None) -> Markup:
    """A traceback, escaped, with pytest's ``E`` lines marked ``tb-e`` and the failing
    line (``>``) ``tb-here``, so that they stand out and a browser can scroll to them."""
    if not text:
        return Markup("")
    out = []
    for line in text.splitlines(keepends=True):
        if _EXPLANATION.match(line):
            out.append(Markup('<span class="tb-e">{}</span>').format(line))
        elif line.startswith(">"):
            out.append(Markup('<span class="tb-here">{}</span>').format(line))
        else:
            out.append(escape(line))
    return Markup("").join(out)


def tag_value(tags: list[str], key: str) -> str | None:
    """The value of a ``key=value`` tag (``nodeid=t.py::test_x``), or None."""
    prefix = key + "="
    return next((tag[len(prefix) :] for tag in tags if tag.startswith(prefix)), None)


def _parse(text: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def utc(value: str | float | None, seconds: bool = True) -> str:
    """An RFC 3339 timestamp (or Unix seconds) as ``2024-05-01 12:34:56 UTC``."""
    if value is None or value == "":
        return _DASH
    if isinstance(value, int | float):
        moment: dt.datetime | None = dt.datetime.fromtimestamp(value, dt.UTC)
    else:
        moment = _parse(value)
    if moment is None:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def epoch_ms(value: str) -> float | None:
    """An RFC 3339 timestamp as milliseconds since the epoch (a chart's x value)."""
    moment = _parse(value)
    return None if moment is None else moment.timestamp() * 1000


def offset(value: str | None, origin: str | None) -> str:
    """When ``value`` happened after ``origin``, as ``+1m 02s`` (a test within its run)."""
    moment, start = _parse(value or ""), _parse(origin or "")
    if moment is None or start is None:
        return _DASH
    return "+" + duration(max(0.0, (moment - start).total_seconds()))


def short_commit(commit: str | None) -> str:
    """The first 10 characters of a commit hash."""
    return (commit or "")[:10] or _DASH


def safe_url(url: str | None) -> str:
    """``url`` if it is an http(s) address, else an empty string (no ``javascript:``)."""
    if not url:
        return ""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""
    return url if scheme in ("http", "https") else ""


def shell_quote(text: str) -> str:
    """``text`` as one word of a shell command line (quoted when it needs it)."""
    return shlex.quote(text)


def pretty_json(value: Any) -> str:
    """A JSON value indented for reading (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


#: The order counts read in; others (``subtests passed``, ...) follow, sorted.
_COUNT_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def count_items(counts: dict[str, int]) -> list[tuple[str, int]]:
    """A run's counts, the main outcomes first."""
    known = [(name, counts[name]) for name in _COUNT_ORDER if name in counts]
    return known + sorted((k, v) for k, v in counts.items() if k not in _COUNT_ORDER)


def json_preview(value: Any, width: int = 120) -> str:
    """A value as one line of JSON, cut at ``width`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def traceback_text(value: Any) -> str:
    """A traceback as text, from a string or from the seed's list of lines.

    A client's lines end in newlines (``traceback.format_exception``); a test's, split
    out of one text by the ``events`` view, do not.
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        return json.dumps(value, ensure_ascii=False, default=str)
    lines = [line if isinstance(line, str) else str(line) for line in value]
    if all(line.endswith("\n") for line in lines[:-1]):
        return "".join(lines)
    return "\n".join(lines)


FILTERS = {
    "nodeid_breaks": nodeid_breaks,
    "traceback_html": traceback_html,
    "byte_size": byte_size,
    "tag_value": tag_value,
    "offset": offset,
    "traceback_text": traceback_text,
    "count_items": count_items,
    "json_preview": json_preview,
    "duration": duration,
    "percent": percent,
    "number": number,
    "factor": factor,
    "bytes_delta": bytes_delta,
    "utc": utc,
    "short_commit": short_commit,
    "safe_url": safe_url,
    "shell_quote": shell_quote,
    "pretty_json": pretty_json,
}
