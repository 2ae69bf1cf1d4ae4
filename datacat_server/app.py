"""The app factory: the one place where the server is wired together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import Scope

from datacat_server import __version__
from datacat_server.api.deps import DEPENDENCIES
from datacat_server.api.errors import EXCEPTION_HANDLERS
from datacat_server.api.explore import MetricController
from datacat_server.api.health import health
from datacat_server.api.ingest import IngestController
from datacat_server.api.insights import InsightController
from datacat_server.api.requests import SafeJsonRequest
from datacat_server.api.runs import RunController
from datacat_server.api.sessions import DataController, SessionController
from datacat_server.api.sql import SqlController
from datacat_server.errors import DatacatServerError
from datacat_server.settings import Settings
from datacat_server.store import Store, open_store

__all__ = ["create_app"]

log = logging.getLogger("datacat")


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> Litestar:
    """Build the DataCat server.

    The store is opened when the app starts (its lifespan) and closed when it stops,
    unless one is passed in, which the caller then owns.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = store is None
        opened = store or open_store(settings)
        app.state.store = opened
        try:
            yield
        finally:
            if owned:
                opened.close()

    openapi = OpenAPIConfig(
        title="DataCat",
        version=__version__,
        description="Test telemetry: sessions, state, events, metrics and test results.",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        openapi_router=Router(
            "/schema", route_handlers=[], include_in_schema=False, opt={"public": True}
        ),
    )
    return Litestar(
        route_handlers=[
            health,
            SessionController,
            DataController,
            IngestController,
            RunController,
            InsightController,
            MetricController,
            SqlController,
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=openapi,
        request_max_body_size=settings.max_body_size,
        request_class=SafeJsonRequest,
        state=State({"settings": settings}),
        debug=settings.debug,
        after_exception=[_log_unexpected],
        logging_config=LoggingConfig(
            root={"level": "INFO", "handlers": ["queue_listener"]},
            # Expected errors become 4xx/503 answers; `_log_unexpected` logs the rest.
            log_exceptions="never",
        ),
    )


async def _log_unexpected(exc: Exception, scope: Scope) -> None:
    expected = isinstance(exc, DatacatServerError) or (
        isinstance(exc, HTTPException) and exc.status_code < 500
    )
    if not expected:
        log.error(
            "unexpected error on %s %s",
            scope.get("method", ""),
            scope.get("path", ""),
            exc_info=exc,
        )
