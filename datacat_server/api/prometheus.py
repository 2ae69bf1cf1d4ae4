"""``GET /api/prometheus``: the server's metrics for Prometheus (see `telemetry.py`).

Not at ``/metrics``, where Prometheus looks by default: that path is the dashboard's
metrics explorer. A scrape config names this one (``metrics_path``; README,
"Prometheus"). A read like any other: it needs a ``read`` token when tokens are set.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from datacat_server.telemetry import Telemetry

__all__ = ["PATH", "prometheus"]

PATH = "/api/prometheus"


@get(
    PATH,
    sync_to_thread=True,  # reads the store for the per-project gauges
    summary="Metrics for Prometheus",
    description="The server's health and per-project gauges, in Prometheus' text format"
    " (OpenMetrics when the Accept header asks for it).",
    tags=["health"],
    media_type="text/plain",
)
def prometheus(request: Request[Any, Any, Any]) -> Response[bytes]:
    telemetry: Telemetry = request.app.state.telemetry
    body, content_type = telemetry.exposition(request.headers.get("accept", ""))
    # As given: Litestar would add a second charset to a text/ media type.
    return Response(body, headers={"content-type": content_type})
