"""Reading JUnit XML safely, incrementally, and forgivingly.

The parser is `defusedxml`'s, with DTDs forbidden: a document that declares one (the
only place entities can be declared) is refused before any of it is used, so no
entity is expanded and no external entity or DTD is ever fetched. It reads
incrementally, so a document cut short (a killed test process, a full disk) still
gives every testcase completed before the break, with the line and column where it
broke. Missing or malformed attributes get defaults, never an error.

Every producer writes the same few elements: ``testsuites`` (optional) holding
``testsuite`` elements (possibly nested) holding ``testcase`` elements, each with at
most one ``failure``, ``error`` or ``skipped``, maybe ``system-out``/``system-err``,
and Maven Surefire's ``flakyFailure``, ``flakyError``, ``rerunFailure`` and
``rerunError`` for the attempts of a rerun test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import math
import pyexpat
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree

from datacat_server.errors import InvalidInputError

__all__ = ["MAX_DEPTH", "Attempt", "Case", "Document", "Suite", "read_document"]

#: Deepest element nesting read (real files nest a few suites; past this it is hostile).
MAX_DEPTH = 100
#: Longest time, in seconds, taken from an attribute (longer is not a real duration).
_MAX_SECONDS = 1e9
#: Latest Unix time the wire format accepts for a timestamp.
_MAX_TIMESTAMP = 32503680000.0
_RERUNS = {
    "flakyFailure": "failed",
    "flakyError": "error",
    "rerunFailure": "failed",
    "rerunError": "error",
}
#: What expat says when the document ends in the middle of something.
_ENDS_EARLY = frozenset(
    pyexpat.errors.codes[message]
    for message in (
        pyexpat.errors.XML_ERROR_NO_ELEMENTS,
        pyexpat.errors.XML_ERROR_UNCLOSED_TOKEN,
        pyexpat.errors.XML_ERROR_PARTIAL_CHAR,
        pyexpat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION,
    )
)
_XSI_LOCATION = "{http://www.w3.org/2001/XMLSchema-instance}noNamespaceSchemaLocation"


@dataclasses.dataclass(slots=True)
class Attempt:
    """One run of a testcase: the testcase element itself, or one of its rerun elements."""

    outcome: str
    duration: float = 0.0
    #: Unix seconds, when the XML says it (a testcase's own ``timestamp``).
    started_at: float | None = None
    #: ``setup`` or ``teardown`` for pytest's errors that say so, else ``call``.
    phase: str = "call"
    exc_type: str | None = None
    exc_message: str | None = None
    traceback: str | None = None
    reason: str | None = None
    stdout: str | None = None
    stderr: str | None = None


@dataclasses.dataclass(slots=True)
class Case:
    """A testcase: its identity and its attempts, in the order they ran."""

    #: None when the attribute is missing (the suite's name stands in for it).
    classname: str | None
    name: str
    file: str
    line: int | None
    attempts: list[Attempt]


@dataclasses.dataclass(slots=True)
class Suite:
    """A ``testsuite`` element (a nested suite is a suite of its own)."""

    name: str
    timestamp: float | None
    #: Seconds the suite took, as it says (0 when it does not).
    time: float
    hostname: str
    system_out: str | None = None
    system_err: str | None = None


@dataclasses.dataclass(slots=True)
class Document:
    """What could be read of one JUnit XML document."""

    name: str
    #: SHA-256 of the document's bytes: the same files always make the same run.
    digest: str
    #: The producer, when the XML shows it: ``pytest``, ``jest``, ``go``, ``surefire``,
    #: ``datacat`` (an export).
    runner: str = ""
    suites: list[Suite] = dataclasses.field(default_factory=list)
    #: Every complete testcase with its suite, in document order.
    cases: list[tuple[Suite, Case]] = dataclasses.field(default_factory=list)
    #: Where and why the document broke off; everything before it was read.
    error: str | None = None


# -- attributes -------------------------------------------------------------------------


def seconds(text: str | None) -> float:
    """A ``time`` attribute in seconds; 0 when missing or not a duration. Surefire may
    write a thousands separator (``1,234.5``)."""
    if not text:
        return 0.0
    try:
        value = float(text.strip().replace(",", ""))
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and 0.0 <= value <= _MAX_SECONDS else 0.0


def timestamp(text: str | None) -> float | None:
    """An ISO 8601 ``timestamp`` in Unix seconds; one without a UTC offset is taken as
    UTC. None when missing or unreadable."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    value = moment.timestamp()
    return value if 0.0 <= value <= _MAX_TIMESTAMP else None


def _line(text: str | None) -> int | None:
    if not text:
        return None
    try:
        value = int(text or "")
    except ValueError:
        return None
    return value if 0 <= value < 2**31 else None


def _local(tag: object) -> str:
    """An element's name without its namespace (``{ns}testcase`` → ``testcase``)."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _text(element: ET.Element | None) -> str | None:
    # The element's own text (CDATA included), not its descendants': reading those
    # recursively would let a deeply nested failure exhaust the stack.
    return (element.text or None) if element is not None else None


# -- messages -----------------------------------------------------------------------------


def _first_line(text: str | None) -> str | None:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return None


def _exception_type(message: str | None) -> str | None:
    """``ValueError`` from ``ValueError: 42``: pytest's, Jest's and Gradle's messages
    start with the exception's type."""
    if not message:
        return None
    first = message.split("\n", 1)[0]
    if first.startswith("assert "):
        return "AssertionError"  # pytest's rewritten assertions
    name, sep, _ = first.partition(":")
    # ``pkg.module.NameError``: identifiers, the last one capitalised (so that a Go
    # test's ``x_test.go:12: ...`` is not taken for a type).
    last = name.rpartition(".")[2]
    if sep and last[:1].isupper() and name.replace(".", "").replace("_", "").isalnum():
        return name
    return None


def _go_message(text: str | None) -> str | None:
    """The first line a Go test logged (``x_test.go:12: want 2``): go-junit-report and
    gotestsum call every failure ``Failed``, which would put them all in one cluster."""
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("=== ", "--- ")):
            return stripped
    return None


def _phase(outcome: str, message: str | None) -> str:
    if outcome == "error" and message:
        if message.startswith("failed on setup"):
            return "setup"
        if message.startswith("failed on teardown"):
            return "teardown"
    return "call"


def _failure(element: ET.Element, outcome: str, runner: str, text: str | None) -> Attempt:
    message = element.get("message") or None
    if runner == "go" and message == "Failed":
        message = _go_message(text) or message
    message = message or _first_line(text)
    return Attempt(
        outcome,
        phase=_phase(outcome, message),
        exc_type=element.get("type") or _exception_type(message),
        exc_message=message,
        traceback=text,
    )


def _rerun(element: ET.Element, runner: str) -> Attempt:
    # Surefire 2.22.1 and later put the trace in <stackTrace>; earlier ones in the text.
    trace = element.find("stackTrace")
    text = _text(trace) if trace is not None else (element.text or "").strip() or None
    attempt = _failure(element, _RERUNS[_local(element.tag)], runner, text)
    attempt.duration = seconds(element.get("time"))
    attempt.stdout = _text(element.find("system-out"))
    attempt.stderr = _text(element.find("system-err"))
    return attempt


def _case(element: ET.Element, index: int, runner: str) -> Case:
    """A complete testcase element as a `Case`. A failure outranks an error, which
    outranks a skip (as pytest's own plugin records a test)."""
    main = Attempt("passed", duration=seconds(element.get("time")))
    main.started_at = timestamp(element.get("timestamp"))
    flaky: list[Attempt] = []
    reruns: list[Attempt] = []
    decided = ""
    for child in element:
        tag = _local(child.tag)
        if tag in ("failure", "error") and decided != "failure":
            found = _failure(child, "failed" if tag == "failure" else "error", runner, _text(child))
            found.duration, found.started_at = main.duration, main.started_at
            found.stdout, found.stderr = main.stdout, main.stderr
            main, decided = found, tag
        elif tag == "skipped" and not decided:
            main.outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
            main.reason = child.get("message") or _text(child)
            decided = tag
        elif tag == "system-out":
            main.stdout = _text(child)
        elif tag == "system-err":
            main.stderr = _text(child)
        elif tag in _RERUNS:
            (flaky if tag.startswith("flaky") else reruns).append(_rerun(child, runner))
    # Surefire: flaky* elements are failed attempts before the testcase's own (passing)
    # run; with rerun* elements, the testcase's own failure was the first attempt.
    attempts = [*flaky, main] if flaky or not reruns else [main, *reruns]
    return Case(
        classname=element.get("classname"),
        name=element.get("name") or f"<testcase {index}>",
        file=(element.get("file") or "").replace("\\", "/"),
        line=_line(element.get("line")),
        attempts=attempts,
    )


# -- documents ----------------------------------------------------------------------------


def _root_runner(element: ET.Element) -> str:
    name = element.get("name") or ""
    if name == "pytest tests" or (_local(element.tag) == "testsuite" and name == "pytest"):
        return "pytest"
    if name == "jest tests":
        return "jest"
    if name == "datacat":  # DataCat's own export: lines are counted from 1 already
        return "datacat"
    return ""


def _suite_runner(element: ET.Element) -> str:
    if "surefire" in (element.get(_XSI_LOCATION) or ""):
        return "surefire"
    if element.get("name") == "pytest":
        return "pytest"
    return ""


def _suite(element: ET.Element) -> Suite:
    return Suite(
        name=element.get("name") or "",
        timestamp=timestamp(element.get("timestamp")),
        time=seconds(element.get("time")),
        hostname=element.get("hostname") or "",
    )


def _refused(name: str, exc: defusedxml.DefusedXmlException) -> InvalidInputError:
    if isinstance(exc, defusedxml.DTDForbidden):
        what = f"declares a DTD (<!DOCTYPE {exc.name}>)"
    elif isinstance(exc, defusedxml.EntitiesForbidden):
        what = f"declares the entity {exc.name!r}"
    elif isinstance(exc, defusedxml.ExternalReferenceForbidden):
        what = "refers to an external resource"
    else:
        what = f"uses what DataCat does not read ({type(exc).__name__})"
    return InvalidInputError(
        f"{name} is refused: it {what}. JUnit XML needs no DTD and no entity, and"
        " DataCat expands no entity and fetches no external resource."
    )


def _broken(document: Document, exc: ET.ParseError) -> str:
    line, column = exc.position
    if exc.code in _ENDS_EARLY:
        what = "the document ends before its elements are closed (cut short?)"
    else:
        what = f"the XML breaks here: {pyexpat.ErrorString(exc.code)}"
    read = len(document.cases)
    before = (
        "1 complete testcase before it was"
        if read == 1
        else f"{read} complete testcases before it were"
    )
    return f"{document.name}, line {line}, column {column}: {what}; {before} read"


@dataclasses.dataclass
class _Reader:
    """Follows the parser's start and end events through one document."""

    document: Document
    stack: list[str] = dataclasses.field(default_factory=list)  # open elements' names
    suites: list[Suite] = dataclasses.field(default_factory=list)  # open testsuites

    def start(self, tag: str, element: ET.Element) -> None:
        document = self.document
        if not self.stack:
            if tag not in ("testsuites", "testsuite"):
                raise InvalidInputError(
                    f"{document.name} is not JUnit XML: its root element is <{tag[:60]}>,"
                    " not <testsuites> or <testsuite>"
                )
            document.runner = _root_runner(element)
        self.stack.append(tag)
        if len(self.stack) > MAX_DEPTH:
            raise InvalidInputError(f"{document.name}: elements nested deeper than {MAX_DEPTH}")
        if tag == "testsuite":
            self.suites.append(_suite(element))
            document.suites.append(self.suites[-1])
            document.runner = document.runner or _suite_runner(element)

    def end(self, tag: str, element: ET.Element) -> None:
        self.stack.pop()
        parent = self.stack[-1] if self.stack else ""
        if tag == "testcase" and parent == "testsuite":
            case = _case(element, len(self.document.cases), self.document.runner)
            self.document.cases.append((self.suites[-1], case))
            element.clear()  # read: let it go, the document may be large
        elif tag == "testsuite":
            self.suites.pop()
            element.clear()
        elif tag in ("system-out", "system-err") and parent == "testsuite":
            setattr(self.suites[-1], tag.replace("-", "_"), _text(element))
        elif (
            tag == "property"
            and self.stack[-2:] == ["testsuite", "properties"]
            and element.get("name") == "go.version"
        ):
            self.document.runner = self.document.runner or "go"


def read_document(name: str, data: bytes) -> Document:
    """Read one document: every complete testcase, and where it broke off, if it did.

    Raises `InvalidInputError` for a document that is not JUnit XML (another root
    element), declares a DTD or entities, or nests deeper than `MAX_DEPTH`.
    """
    reader = _Reader(Document(name, hashlib.sha256(data).hexdigest()))
    try:
        events = defusedxml.ElementTree.iterparse(
            io.BytesIO(data), events=("start", "end"), forbid_dtd=True
        )
        for event, element in events:
            if event == "start":
                reader.start(_local(element.tag), element)
            else:
                reader.end(_local(element.tag), element)
    except ET.ParseError as exc:
        reader.document.error = _broken(reader.document, exc)
    except defusedxml.DefusedXmlException as exc:
        raise _refused(name, exc) from None
    return reader.document
