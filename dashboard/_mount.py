"""What the app mounts: the page router, the static files, the template configuration."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined
from litestar import Response, Router
from litestar.config.app import AppConfig
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from dashboard._errors import ERROR_HANDLERS, browser_not_found
from dashboard._format import FILTERS, metric_title, metric_value
from dashboard._headers import SECURITY_HEADERS
from dashboard._links import history_href, run_href, session_href, sql_download_href
from dashboard._params import href
from dashboard._static import STATIC_ERROR_HANDLERS, StaticFileSystem
from dashboard.pages import PAGES
from datacat_server.web import identity

__all__ = ["NAV", "DashboardPlugin", "page_router", "static_router", "template_config"]

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PATH = "/static"

#: The navigation bar: (path, label).
NAV = (
    ("/", "Overview"),
    ("/runs", "Runs"),
    ("/flaky", "Flaky"),
    ("/slow", "Slow"),
    ("/failures", "Failures"),
    ("/quarantine", "Quarantine"),
    ("/sessions", "Sessions"),
    ("/explore", "Metrics"),
    ("/sql", "SQL"),
)


@functools.cache
def asset(name: str) -> str:
    """A static file's URL, with a digest of its content so a new release is refetched."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"{STATIC_PATH}/{name}?v={digest}"


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.undefined = StrictUndefined  # a typo in a template fails loudly in tests
    env.trim_blocks = True
    env.lstrip_blocks = True
    env.filters.update(FILTERS)
    env.globals.update(
        nav=NAV,
        asset=asset,
        href=href,
        run_href=run_href,
        session_href=session_href,
        history_href=history_href,
        sql_download_href=sql_download_href,
        metric_title=metric_title,
        metric_value=metric_value,
        identity=identity,
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja over ``dashboard/templates``; autoescape is on (`directory=` sets it)."""
    return TemplateConfig(
        directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_configure
    )


def static_router() -> Router:
    """``/static``: our CSS and JS and the vendored libraries (public, even with tokens)."""
    return create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC],
        name="dashboard-static",
        file_system=StaticFileSystem(),
        exception_handlers=STATIC_ERROR_HANDLERS,
        opt={"public": True},
        after_request=_secure_headers,
        include_in_schema=False,
        # URLs carry a content digest (`asset`), so a day of caching is safe.
        cache_control=CacheControlHeader(max_age=86400, public=True),
    )


def _secure_headers(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def page_router() -> Router:
    """The pages, with HTML error pages instead of the API's JSON errors."""
    return Router(
        path="/",
        route_handlers=PAGES,
        exception_handlers=ERROR_HANDLERS,
        after_request=_secure_headers,
        include_in_schema=False,
    )


class DashboardPlugin(InitPluginProtocol):
    """Mounts the dashboard on an app: ``Litestar(..., plugins=[DashboardPlugin()])``."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([page_router(), static_router()])
        app_config.template_config = template_config()
        # A mistyped dashboard URL gets a page; the API's unknown paths stay JSON.
        app_config.exception_handlers.setdefault(NotFoundException, browser_not_found)
        return app_config
