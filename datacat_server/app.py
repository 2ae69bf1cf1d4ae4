"""The app factory: the one place where the server is wired together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import Scope

from dashboard import DashboardPlugin, asset
from datacat_server import __version__
from datacat_server.api.admin import AdminController
from datacat_server.api.classify import ClassificationController
from datacat_server.api.deps import DEPENDENCIES
from datacat_server.api.errors import EXCEPTION_HANDLERS
from datacat_server.api.explore import MetricController
from datacat_server.api.health import health
from datacat_server.api.ingest import IngestController
from datacat_server.api.insights import InsightController
from datacat_server.api.junit import JunitController
from datacat_server.api.openapi import document_errors
from datacat_server.api.prometheus import PATH as PROMETHEUS_PATH
from datacat_server.api.prometheus import prometheus
from datacat_server.api.quarantine import QuarantineController
from datacat_server.api.requests import SafeJsonRequest
from datacat_server.api.runs import RunController
from datacat_server.api.sessions import DataController, SessionController
from datacat_server.api.sql import SqlController
from datacat_server.auth import IdentityMiddleware, TokenSet, guard
from datacat_server.errors import DatacatServerError
from datacat_server.ratelimit import RateLimitMiddleware, TokenBuckets
from datacat_server.settings import Settings
from datacat_server.sqlpool.pool import open_sql_pool
from datacat_server.store import StoreBase, open_store, quarantine
from datacat_server.store.retention import RetentionPolicy
from datacat_server.telemetry import Telemetry

__all__ = ["create_app"]

log = logging.getLogger("datacat")


def create_app(
    settings: Settings | None = None,
    *,
    store: StoreBase | None = None,
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
    telemetry = Telemetry(exposition_path=PROMETHEUS_PATH)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = store is None
        opened = store or open_store(settings)
        app.state.store = opened
        telemetry.attach(opened)
        app.state.sql = sql = open_sql_pool(opened, settings)
        tasks = [asyncio.create_task(_keep_quarantine(opened, settings.quarantine_interval))]
        if retention.active:
            tasks.append(
                asyncio.create_task(_retain(opened, retention, settings.retention_interval))
            )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            telemetry.detach(opened)
            await sql.close()
            if owned:
                opened.close()

    openapi = OpenAPIConfig(
        title="DataCat",
        version=__version__,
        description="Test telemetry: sessions, state, events, metrics and test results.",
        render_plugins=[_api_docs()],
        # The schema is a read like any other: it needs a token when tokens are set.
        openapi_router=Router("/schema", route_handlers=[], include_in_schema=False),
    )
    # The token is read once, first; the rate limiter and the guard use what it found.
    middleware: list[Any] = [lambda app: IdentityMiddleware(app, tokens)]
    if settings.rate_limit > 0:
        buckets = TokenBuckets(settings.rate_limit, settings.rate_burst)
        middleware.append(
            lambda app: RateLimitMiddleware(app, buckets=buckets, exclude=("/health",))
        )
    app = Litestar(
        route_handlers=[
            health,
            SessionController,
            DataController,
            IngestController,
            JunitController,
            RunController,
            ClassificationController,
            QuarantineController,
            InsightController,
            MetricController,
            SqlController,
            AdminController,
            prometheus,
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
        state=State({"settings": settings, "tokens": tokens, "telemetry": telemetry}),
        debug=settings.debug,
        after_exception=[_log_unexpected, telemetry.after_exception],
        before_send=[telemetry.before_send],
        logging_config=LoggingConfig(
            root={"level": "INFO", "handlers": ["queue_listener"]},
            # Expected errors become 4xx/503 answers; `_log_unexpected` logs the rest.
            log_exceptions="never",
        ),
    )
    document_errors(app)
    return app


def _api_docs() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema``, from the dashboard's vendored copy: the docs work offline
    (Litestar's default loads it, and Scalar, from a CDN)."""
    return SwaggerRenderPlugin(
        js_url=asset("vendor/swagger-ui/swagger-ui-bundle.js"),
        css_url=asset("vendor/swagger-ui/swagger-ui.css"),
        standalone_preset_js_url=asset("vendor/swagger-ui/swagger-ui-standalone-preset.js"),
        favicon=f'<link rel="icon" type="image/svg+xml" href="{asset("favicon.svg")}">',
    )


async def _retain(store: StoreBase, policy: RetentionPolicy, interval: float) -> None:
    """Apply the retention policy now and every ``interval`` seconds (on a lake: on the
    server that leads its background work)."""
    while True:
        try:
            if store.leads():
                result = await asyncio.to_thread(store.apply_retention, policy)
                if result.sessions:
                    log.info("retention deleted %d sessions", result.sessions)
        except Exception:
            log.exception("retention failed")
        await asyncio.sleep(interval)


def _flaky_of_auto_projects(store: StoreBase) -> dict[str, list[str]]:
    return quarantine.flaky_of_auto_projects(store.reader())


async def _keep_quarantine(store: StoreBase, interval: float) -> None:
    """Every ``interval`` seconds, quarantine the flaky tests of projects that asked for
    it, and release those that passed enough times in a row."""
    while True:
        await asyncio.sleep(interval)
        if not store.leads():
            continue
        try:
            # The worker thread's own cursor: `store.reader()` is per thread.
            flaky = await asyncio.to_thread(_flaky_of_auto_projects, store)
            if flaky:
                changes = await store.maintain(partial(quarantine.keep_up, flaky=flaky))
                for change in changes:
                    log.info("quarantine: %s", change)
        except Exception:
            log.exception("the automatic quarantine failed")


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
