"""Headers every dashboard answer carries: pages, error pages, static files."""

from __future__ import annotations

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS"]

#: What a page may load and do: only our own scripts, styles and forms, never framed.
#: Pages hold no inline script or style (chart data is JSON in a non-executed
#: ``<script type="application/json">``), so nothing needs ``'unsafe-inline'``: a
#: stored payload that escaping somehow missed still could not run.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
