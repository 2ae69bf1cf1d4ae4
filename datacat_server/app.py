"""The app factory: the one place where the server is wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.types import Scope

from dashboard import DashboardPlugin
from datacat_server import __version__
from datacat_server.api.admin import AdminController
from datacat_server.api.deps import DEPENDENCIES
from datacat_server.api.errors import EXCEPTION_HANDLERS
from datacat_server.api.explore import MetricController
from datacat_server.api.health import health
from datacat_server.api.ingest import IngestController
from datacat_server.api.insights import InsightController
from datacat_server.api.openapi import document_errors
from datacat_server.api.requests import SafeJsonRequest
from datacat_server.api.runs import RunController
from datacat_server.api.sessions import DataController, SessionController
from datacat_server.api.sql import SqlController
from datacat_server.auth import TokenSet, guard
from datacat_server.errors import DatacatServerError
from datacat_server.ratelimit import RateLimitMiddleware, TokenBuckets
from datacat_server.settings import Settings
from datacat_server.sqlpool.pool import open_sql_pool
from datacat_server.store import Store, open_store
from datacat_server.store.retention import RetentionPolicy

__all__ = ["create_app"]

log = logging.getLogger("datacat")


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    tokens: TokenSet | None = None,
) -> Litestar:
    """Build the DataCat server.

    The store is opened when the app starts (its lifespan) and closed when it stops,
    unless one is passed in, which the caller then owns. Without ``tokens`` (or with
    none configured) the server is open: `datacat serve` then binds loopback only.
    """
    settings = settings or Settings()
    tokens = tokens or TokenSet()
    retention = RetentionPolicy.parse(settings.retention)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = store is None
        opened = store or open_store(settings)
        app.state.store = opened
        app.state.sql = sql = open_sql_pool(opened, settings)
        task = (
            asyncio.create_task(_retain(opened, retention, settings.retention_interval))
            if retention.active
            else None
        )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await sql.close()
            if owned:
                opened.close()

    openapi = OpenAPIConfig(
        title="DataCat",
        version=__version__,
        description="Test telemetry: sessions, state, events, metrics and test results.",
        render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        # The schema is a read like any other: it needs a token when tokens are set.
        openapi_router=Router("/schema", route_handlers=[], include_in_schema=False),
    )
    middleware: list[Any] = []
    if settings.rate_limit > 0:
        buckets = TokenBuckets(settings.rate_limit, settings.rate_burst)
        middleware.append(
            lambda app: RateLimitMiddleware(
                app, buckets=buckets, tokens=tokens, exclude=("/health",)
            )
        )
    app = Litestar(
        route_handlers=[
            health,
            SessionController,
            DataController,
            IngestController,
            RunController,
            InsightController,
            MetricController,
            SqlController,
            AdminController,
        ],
        guards=[guard],
        middleware=middleware,
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=[lifespan],
        openapi_config=openapi,
        plugins=[DashboardPlugin()],
        request_max_body_size=settings.max_body_size,
        request_class=SafeJsonRequest,
        state=State({"settings": settings, "tokens": tokens}),
        debug=settings.debug,
        after_exception=[_log_unexpected],
        logging_config=LoggingConfig(
            root={"level": "INFO", "handlers": ["queue_listener"]},
            # Expected errors become 4xx/503 answers; `_log_unexpected` logs the rest.
            log_exceptions="never",
        ),
    )
    document_errors(app)
    return app


async def _retain(store: Store, policy: RetentionPolicy, interval: float) -> None:
    """Apply the retention policy now and every ``interval`` seconds."""
    while True:
        try:
            result = await asyncio.to_thread(store.apply_retention, policy)
            if result.sessions:
                log.info("retention deleted %d sessions", result.sessions)
        except Exception:
            log.exception("retention failed")
        await asyncio.sleep(interval)


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
