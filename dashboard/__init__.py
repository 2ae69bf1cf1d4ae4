"""DataCat's dashboard: HTML pages over the server's query layer (Jinja2, htmx, Chart.js).

Mount it with the plugin, or take its parts::

    Litestar(..., plugins=[DashboardPlugin()])
    Litestar(route_handlers=[page_router(), static_router(), ...],
             template_config=template_config())
"""

from __future__ import annotations

from dashboard._mount import DashboardPlugin, asset, page_router, static_router, template_config

__all__ = ["DashboardPlugin", "asset", "page_router", "static_router", "template_config"]
