"""From read JUnit documents to the wire records of one run, as pytest's plugin sends them.

One set of documents is one run: a session (``SessionStart``, product = project), its
``RunStart``, one ``TestResult`` per attempt of every testcase, the suites' own output
as ``junit_suite_output`` events, ``RunFinish`` and ``SessionEnd``. The session id is
derived from the project and the documents' digests, and records are numbered in a
fixed order, so importing the same files again finds every ``(session, seq)`` stored
and stores nothing.

Node ids: ``classname::name``; pytest's XML with a ``file`` attribute (its ``xunit1``
family) gets pytest's own node id back (``tests/test_x.py::TestC::test_f[1]``). A
node id seen again in the same import is a rerun (gotestsum ``--rerun-fails`` and
Gradle's test-retry write each attempt as a testcase): the earlier results stop being
final.

Times: a suite's ``timestamp`` starts its tests, laid out one after another by their
``time``; a testcase's own ``timestamp`` wins. Without any timestamp the run is laid
out to end at the time of the import.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from datacat_client import wire
from datacat_server.errors import InvalidInputError
from datacat_server.junit.parse import Attempt, Case, Document, Suite
from datacat_server.limits import CUT_NOTE

__all__ = ["MAX_RESULTS", "SUITE_OUTPUT", "ImportOptions", "JunitImport", "build_import"]

#: Most test results (testcases and their rerun attempts) one import may hold.
MAX_RESULTS = 500_000
#: The event that keeps a suite's own ``system-out``/``system-err``.
SUITE_OUTPUT = "junit_suite_output"
#: Namespace of the session ids of imported runs (uuid5 over project and digests).
_NAMESPACE = uuid.UUID("c2fe9f87-f957-4fd6-ac4e-0d6c2d261f94")
_FAILED = frozenset(("failed", "error"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImportOptions:
    """What the documents do not say: where the run belongs."""

    project: str
    branch: str = ""
    commit: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class JunitImport:
    """The run made of a set of documents."""

    session_id: str
    records: list[Any]
    #: Documents read (a document given twice counts once).
    files: int
    #: Final results by outcome, as pytest counts them, and ``rerun`` for the others.
    counts: dict[str, int]
    #: Tests (final results) and results (every attempt).
    tests: int
    results: int
    status: str
    #: One line per document that broke off.
    errors: list[str]


def session_id(project: str, documents: Sequence[Document]) -> str:
    """The run's id: the same project and files (in any order) give the same id."""
    digests = sorted({document.digest for document in documents})
    return str(uuid.uuid5(_NAMESPACE, "\n".join([project, *digests])))


def _pytest_nodeid(case: Case) -> str | None:
    """pytest's node id from its ``xunit1`` XML: ``file`` is the test's path, the
    classname its dotted module and classes."""
    classname = case.classname or ""
    if not case.file.endswith(".py"):
        return None
    module = case.file[:-3].replace("/", ".")
    if classname == module:
        return f"{case.file}::{case.name}"
    if classname.startswith(module + "."):
        classes = classname[len(module) + 1 :].split(".")
        return "::".join([case.file, *classes, case.name])
    return None


def _identity(case: Case, suite: Suite) -> tuple[str, dict[str, Any]]:
    """A case's node id, and the test fields the store cannot read off it."""
    fields: dict[str, Any] = {"file": case.file} if case.file else {}
    nodeid = _pytest_nodeid(case)
    if nodeid is not None:
        return nodeid, fields  # the store splits class, function and parameters off it
    # Without a classname the suite groups the test; Jest writes the test's full
    # title as both classname and name, and there too the suite is the better group.
    group = case.classname
    if group is None or group == case.name:
        group = suite.name
    fields.update(cls=group, func=case.name)
    return (f"{group}::{case.name}" if group else case.name), fields


def _teardown_after_failure(document: Document, earlier: Any, case: Case) -> bool:
    """pytest writes a test that failed and then erred in its teardown as two
    testcases; its plugin records the failure alone, and so does the import."""
    (run, *more) = case.attempts
    return (
        document.runner == "pytest"
        and not more
        and run.outcome == "error"
        and run.phase == "teardown"
        and earlier.outcome == "failed"
        and earlier.final
    )


@dataclasses.dataclass
class _Builder:
    session_id: str
    max_nodeid_length: int
    clock: float
    records: list[Any] = dataclasses.field(default_factory=list)
    #: Node id → index in ``records`` of its latest result.
    latest: dict[str, int] = dataclasses.field(default_factory=dict)
    end: float = 0.0

    def add(self, kind: type[Any], **fields: Any) -> None:
        self.records.append(kind(session_id=self.session_id, seq=len(self.records), **fields))

    def case(self, document: Document, suite: Suite, case: Case, line_base: int) -> None:
        nodeid, test = _identity(case, suite)
        if len(nodeid) > self.max_nodeid_length:
            raise InvalidInputError(
                f"{document.name}: the test {nodeid[:80]!r}... is named by {len(nodeid)}"
                f" characters; at most {self.max_nodeid_length} are allowed"
            )
        if case.line is not None:
            test["line"] = min(case.line + line_base, 2**31 - 1)
        attempt = 0
        previous = self.latest.get(nodeid)
        if previous is not None:  # seen before in this import: this is a rerun
            earlier = self.records[previous]
            if _teardown_after_failure(document, earlier, case):
                return
            earlier.final = False
            attempt = earlier.attempt + 1
        last = len(case.attempts) - 1
        for index, run in enumerate(case.attempts):
            self.latest[nodeid] = len(self.records)
            self._result(nodeid, test, run, attempt + index, final=index == last)

    def _result(
        self, nodeid: str, test: dict[str, Any], run: Attempt, attempt: int, *, final: bool
    ) -> None:
        start = run.started_at if run.started_at is not None else self.clock
        stop = start + run.duration
        self.clock = stop
        self.end = max(self.end, stop)
        self.add(
            wire.TestResult,
            timestamp=stop,
            nodeid=nodeid,
            outcome=run.outcome,
            phase=run.phase,
            started_at=start,
            stopped_at=stop,
            call_duration=run.duration,
            reason=run.reason,
            exc_type=run.exc_type,
            exc_message=run.exc_message,
            traceback=run.traceback,
            stdout=run.stdout,
            stderr=run.stderr,
            attempt=min(attempt, 10_000),
            final=final,
            **test,
        )


def _run_start(documents: Sequence[Document], now: float) -> float:
    """The earliest time the documents give, else ``now`` less their total time."""
    known = [s.timestamp for d in documents for s in d.suites if s.timestamp is not None]
    known += [
        run.started_at
        for d in documents
        for _, case in d.cases
        for run in case.attempts
        if run.started_at is not None
    ]
    if known:
        return min(known)
    total = sum(run.duration for d in documents for _, case in d.cases for run in case.attempts)
    return max(0.0, now - total)


def _outcome(counts: Mapping[str, int], results: int, errors: list[str]) -> tuple[str, int]:
    """The run's status and exit status, as pytest would have ended it."""
    if errors:
        return "interrupted", 2
    if any(counts.get(outcome) for outcome in _FAILED):
        return "failed", 1
    return ("passed", 0) if results else ("no_tests", 5)


def build_import(
    documents: Sequence[Document],
    options: ImportOptions,
    *,
    now: float,
    max_nodeid_length: int = 4_000,
    max_output_chars: int = 60_000,
) -> JunitImport:
    """The records of the run the documents make (documents are taken in digest order,
    so the order the files were given in does not matter).

    ``max_output_chars`` bounds each stream of a suite's output kept in its event
    (event data has a size limit; test output has its own, larger one).
    """
    unique = list({d.digest: d for d in sorted(documents, key=lambda d: d.digest)}.values())
    results = sum(len(case.attempts) for d in unique for _, case in d.cases)
    if results > MAX_RESULTS:
        raise InvalidInputError(
            f"the files hold {results} test results; one import takes at most {MAX_RESULTS}:"
            " import them in several parts"
        )
    key = session_id(options.project, unique)
    start = _run_start(unique, now)
    runner = next((d.runner for d in unique if d.runner), "")
    hostname = next((s.hostname for d in unique for s in d.suites if s.hostname), "")
    labels = {"source": "junit", **({"runner": runner} if runner else {}), **options.labels}
    build = _Builder(key, max_nodeid_length, clock=start, end=start)
    build.add(
        wire.SessionStart, timestamp=start, name="junit", product=options.project, labels=labels
    )
    build.add(
        wire.RunStart,
        timestamp=start,
        project=options.project,
        branch=options.branch,
        commit=options.commit,
        hostname=hostname,
        args=[d.name[:1000] for d in unique],
    )
    for document in unique:
        # pytest's xunit1 ``line`` counts from 0; DataCat's, like editors', from 1.
        line_base = 1 if document.runner == "pytest" else 0
        started: set[int] = set()
        for suite, case in document.cases:
            if id(suite) not in started:  # the suite's first test starts at its timestamp
                started.add(id(suite))
                if suite.timestamp is not None:
                    build.clock = suite.timestamp
            build.case(document, suite, case, line_base)
    # The run ends when its suites say they ended; without that, when its last test did.
    stated = [
        s.timestamp + s.time for d in unique for s in d.suites if s.timestamp is not None and s.time
    ]
    if stated:
        build.end = max(stated)
    for document in unique:
        for suite in document.suites:
            if suite.system_out or suite.system_err:
                data: dict[str, str | None] = {"suite": suite.name, "document": document.name}
                for name, text in (
                    ("system_out", suite.system_out),
                    ("system_err", suite.system_err),
                ):
                    data[name] = text and wire.cut_text(text, max_output_chars, CUT_NOTE)
                build.add(wire.Event, timestamp=build.end, name=SUITE_OUTPUT, data=data)
    results = sum(1 for r in build.records if type(r) is wire.TestResult)
    final = [r for r in build.records if type(r) is wire.TestResult and r.final]
    counts: dict[str, int] = {}
    for result in final:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    if results > len(final):
        counts["rerun"] = results - len(final)
    errors = [d.error for d in unique if d.error]
    status, exit_status = _outcome(counts, results, errors)
    build.add(
        wire.RunFinish,
        timestamp=build.end,
        exit_status=exit_status,
        status=status,
        reason="; ".join(errors),
        counts=counts,
        duration=build.end - start,
    )
    build.add(wire.SessionEnd, timestamp=build.end)
    return JunitImport(
        session_id=key,
        records=build.records,
        files=len(unique),
        counts=counts,
        tests=len(final),
        results=results,
        status=status,
        errors=errors,
    )
