"""JUnit XML: importing other test runners' results as runs, and exporting any run.

``POST /api/import/junit`` takes one document as the body, or several files as
``multipart/form-data`` (field ``file``, repeated), which become one run; ``project``,
``branch``, ``commit`` and ``label`` (``K=V``, repeated) come from the query or the
form. Answers:

- 201: a new run; 200: the same files were imported before (nothing stored again);
- 207: what could be read is stored; ``errors`` names each document that broke off
  (cut short or malformed), with its line and column;
- 400: nothing could be read, or a document is refused (not JUnit XML, a DTD or
  entities, a name past its limit); nothing is stored. 413 past the body limit.

``GET /api/runs/{run_id}/junit.xml`` writes any run, pytest's included, as JUnit XML.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Annotated, Any

import anyio
import msgspec
import multipart  # type: ignore[import-untyped]
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter

from datacat_server.api.validation import normalize_session_ids
from datacat_server.errors import InvalidInputError
from datacat_server.junit import (
    Document,
    Family,
    ImportOptions,
    JunitImport,
    build_import,
    export_run,
    read_document,
)
from datacat_server.limits import Limits, check_records
from datacat_server.queries._common import parse_session_id
from datacat_server.settings import Settings
from datacat_server.store import StoreBase

__all__ = ["ImportAnswer", "JunitController"]


class ImportAnswer(msgspec.Struct, kw_only=True):
    """What an import stored."""

    run_id: str
    #: The run's page on this server (a path).
    url: str
    project: str
    #: The same files were imported before: nothing was stored again.
    already_imported: bool
    #: Every document was read to its end (else see ``errors``).
    complete: bool
    #: Documents read (a document given twice counts once).
    files: int
    #: Tests (final results), and results (every attempt of every test).
    tests: int
    results: int
    #: Final results by outcome, and ``rerun`` for the earlier attempts.
    counts: dict[str, int]
    #: How the run ended: ``passed``, ``failed``, ``no_tests``, or ``interrupted`` when
    #: a document broke off.
    status: str
    #: One line per document that broke off: its name, line, column and the problem.
    errors: list[str]


@dataclasses.dataclass
class _ImportOperation(Operation):
    """The import's body, which Litestar cannot infer: XML, or files in a form."""

    def __post_init__(self) -> None:
        text = Schema(type=OpenAPIType.STRING, description="A JUnit XML document.")
        form = Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "file": Schema(
                    type=OpenAPIType.ARRAY,
                    items=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY),
                    description="JUnit XML files; all of them make one run.",
                ),
                "project": Schema(type=OpenAPIType.STRING),
                "branch": Schema(type=OpenAPIType.STRING),
                "commit": Schema(type=OpenAPIType.STRING),
                "label": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING)),
            },
            required=["file"],
        )
        self.request_body = RequestBody(
            required=True,
            content={
                "application/xml": OpenAPIMediaType(schema=text),
                "multipart/form-data": OpenAPIMediaType(schema=form),
            },
        )


@dataclasses.dataclass
class _ExportOperation(Operation):
    """The export answers XML; its errors, like every route's, JSON."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            xml = Schema(type=OpenAPIType.STRING, description="A JUnit XML document.")
            ok.content = {MediaType.XML.value: OpenAPIMediaType(schema=xml)}


Text = Annotated[str | None, QueryParameter()]
Labels = Annotated[
    list[str] | None, QueryParameter(description="A label of the run, `K=V`; repeat it.")
]
Formats = Annotated[
    Family,
    QueryParameter(
        description="`xunit2` (valid against the JUnit schema pytest's tests use) or"
        " `xunit1` (also `file`, `line`, and the time of each rerun)."
    ),
]


#: Most files one import takes (Litestar's own form parser stops at 1,000 parts, fewer
#: than the TEST-*.xml files of a large Maven build).
MAX_FILES = 10_000


@dataclasses.dataclass
class _Upload:
    documents: list[tuple[str, bytes]]
    fields: dict[str, list[str]]


async def _form(request: Request[Any, Any, Any], boundary: str) -> _Upload:
    """The files and fields of a ``multipart/form-data`` body, read as it streams in
    (the body limit applies: 413)."""
    upload = _Upload([], {})
    segment: multipart.MultipartSegment | None = None
    data = bytearray()
    try:
        with multipart.PushMultipartParser(boundary, max_segment_count=MAX_FILES + 100) as parser:
            async for chunk in request.stream():  # ends with b"", the parser's end of input
                for part in parser.parse(chunk):
                    if isinstance(part, multipart.MultipartSegment):
                        segment, data = part, bytearray()
                    elif part:
                        data += part
                    elif segment is not None:  # the end of a part
                        if segment.filename is not None:
                            name = segment.filename or f"file {len(upload.documents) + 1}"
                            upload.documents.append((name, bytes(data)))
                        else:
                            text = data.decode(segment.charset or "utf-8", errors="replace")
                            upload.fields.setdefault(segment.name or "", []).append(text)
    except multipart.ParserLimitReached:
        raise InvalidInputError(f"one import takes at most {MAX_FILES} files") from None
    except multipart.ParserError as exc:
        raise InvalidInputError(f"the multipart/form-data body is malformed: {exc}") from None
    if len(upload.documents) > MAX_FILES:
        raise InvalidInputError(f"one import takes at most {MAX_FILES} files")
    return upload


async def _upload(request: Request[Any, Any, Any]) -> _Upload:
    """The documents of the request, and the form's fields if it is a form."""
    content_type, options = request.content_type
    if content_type == RequestEncodingType.MULTI_PART:
        boundary = options.get("boundary")
        if not boundary:
            raise InvalidInputError("multipart/form-data without a boundary")
        return await _form(request, boundary)
    body = await request.body()
    return _Upload([("body", body)] if body else [], {})


def _options(
    limits: Limits, project: str | None, branch: str | None, commit: str | None, labels: list[str]
) -> ImportOptions:
    if not project:
        raise InvalidInputError("project is required: the project the tests belong to")
    parsed: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"a label is written K=V, not {label[:80]!r}")
        parsed[key] = value
    for what, given in (("project", project), ("branch", branch), ("commit", commit)):
        if given and len(given) > limits.max_name_length:
            raise InvalidInputError(
                f"{what} is {len(given)} characters long; at most {limits.max_name_length}"
            )
    return ImportOptions(project=project, branch=branch or "", commit=commit or "", labels=parsed)


def _read(
    documents: Sequence[tuple[str, bytes]], options: ImportOptions, limits: Limits
) -> JunitImport:
    """Parse and turn into records (on a worker thread: a big document takes a while)."""
    read: list[Document] = [read_document(name[:1000], data) for name, data in documents]
    if not any(document.cases for document in read):
        broken = [document.error for document in read if document.error]
        if broken:
            raise InvalidInputError("no testcase could be read: " + "; ".join(broken))
    return build_import(
        read,
        options,
        now=time.time(),
        max_nodeid_length=limits.max_nodeid_length,
        max_output_chars=limits.max_data_bytes // 16,
    )


class JunitController(Controller):
    path = "/api"
    tags = ("junit",)

    @post(
        "/import/junit",
        status_code=201,
        summary="Import JUnit XML as a run",
        description=(
            "One JUnit XML document as the body (`application/xml`), or several files as"
            " `multipart/form-data` (field `file`), which become one run of `project`."
            " pytest, go test (go-junit-report, gotestsum), Jest (jest-junit), Maven"
            " Surefire (reruns included) and Gradle files are read. Importing the same"
            " files again stores nothing (200). A document cut short: every complete"
            " testcase before the break is stored and `errors` names the file, line and"
            " problem (207). A DTD or entity declaration is refused (400)."
        ),
        operation_class=_ImportOperation,
        responses={
            200: ResponseSpec(ImportAnswer, description="These files were imported before."),
            207: ResponseSpec(
                ImportAnswer, description="What could be read is stored; `errors` says the rest."
            ),
        },
        opt={"scope": "ingest"},
    )
    async def import_junit(
        self,
        *,
        request: Request[Any, Any, Any],
        store: NamedDependency[StoreBase],
        settings: NamedDependency[Settings],
        project: Annotated[
            str | None, QueryParameter(description="The project the tests belong to (required).")
        ] = None,
        branch: Text = None,
        commit: Text = None,
        label: Labels = None,
    ) -> Response[ImportAnswer]:
        upload = await _upload(request)
        if not upload.documents:
            raise InvalidInputError(
                "send a JUnit XML document as the body, or files as multipart/form-data"
            )
        fields = upload.fields
        options = _options(
            settings.limits,
            project or next(iter(fields.get("project", [])), None),
            branch or next(iter(fields.get("branch", [])), None),
            commit or next(iter(fields.get("commit", [])), None),
            [*(label or []), *fields.get("label", [])],
        )
        run = await anyio.to_thread.run_sync(_read, upload.documents, options, settings.limits)
        normalize_session_ids(run.records)
        check_records(run.records, settings.limits)
        written = await store.write(run.records)
        answer = ImportAnswer(
            run_id=run.session_id,
            url=f"/runs/{run.session_id}",
            project=options.project,
            already_imported=written.accepted == 0,
            complete=not run.errors,
            files=run.files,
            tests=run.tests,
            results=run.results,
            counts=run.counts,
            status=run.status,
            errors=run.errors,
        )
        status = 207 if run.errors else 200 if answer.already_imported else 201
        return Response(answer, status_code=status)

    @get(
        "/runs/{run_id:str}/junit.xml",
        sync_to_thread=True,
        # not media_type=XML: Litestar would send the route's errors as XML too
        operation_class=_ExportOperation,
        summary="A run as JUnit XML",
        description="Any run (pytest's or an imported one): a testsuite with a testcase"
        " per test, its failure, error or skip, output, and reruns as Surefire writes them.",
    )
    def export(
        self,
        *,
        store: NamedDependency[StoreBase],
        run_id: FromPath[str],
        family: Formats = "xunit2",
    ) -> Response[str]:
        key = parse_session_id(run_id)
        text = export_run(store.reader(), key, family) if key else None
        if key is None or text is None:
            raise NotFoundException(f"unknown run: {run_id}")
        return Response(
            text,
            media_type=MediaType.XML,
            headers={"Content-Disposition": f'attachment; filename="run-{key}.junit.xml"'},
        )
