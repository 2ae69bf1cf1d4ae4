"""``GET /metrics``: the server's metrics for Prometheus (see `telemetry.py`).

Where Prometheus looks by default. A browser asking for a page there (``Accept:
text/html``, which no scraper sends) is sent to the dashboard's metrics explorer,
``/explore``, which lived at ``/metrics`` before, with its query kept: old links work.
A read like any other: it needs a ``read`` token when tokens are set.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect

from datacat_server.telemetry import Telemetry

__all__ = ["PATH", "prometheus"]

PATH = "/metrics"
#: The dashboard's metrics explorer, where a browser asking for ``/metrics`` goes.
EXPLORER = "/explore"


@get(
    PATH,
    sync_to_thread=True,  # reads the store for the per-project gauges
    summary="Metrics for Prometheus",
    description="The server's health and per-project gauges, in Prometheus' text format"
    " (OpenMetrics when the Accept header asks for it).",
    tags=["health"],
    media_type="text/plain",
)
def prometheus(request: Request[Any, Any, Any]) -> Response[bytes] | Redirect:
    accept = request.headers.get("accept", "")
    if "text/html" in accept and "text/plain" not in accept and "openmetrics" not in accept:
        query = request.url.query
        return Redirect(EXPLORER + (f"?{query}" if query else ""), status_code=303)
    telemetry: Telemetry = request.app.state.telemetry
    body, content_type = telemetry.exposition(request.headers.get("accept", ""))
    # As given: Litestar would add a second charset to a text/ media type.
    return Response(body, headers={"content-type": content_type})
