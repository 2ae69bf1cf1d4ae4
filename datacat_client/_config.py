"""Where the client finds its server, token and spool directory.

Arguments win, then the environment, then defaults. The environment is read when a
function is called, never at import, so tests and applications may set it late.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_BASE_URL", "default_spool_dir", "resolve_base_url", "resolve_token"]

#: The server's default address (the seed service's port).
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url``, else ``$DATACAT_URL``, else `DEFAULT_BASE_URL`; no trailing slash."""
    url = base_url or os.environ.get("DATACAT_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


def resolve_token(token: str | None = None) -> str | None:
    """``token``, else ``$DATACAT_TOKEN``, else None (no ``Authorization`` header)."""
    return token or os.environ.get("DATACAT_TOKEN") or None


def default_spool_dir() -> Path:
    """``$DATACAT_SPOOL_DIR``, else ``$XDG_CACHE_HOME/datacat/spool``, else ``~/.cache/...``."""
    explicit = os.environ.get("DATACAT_SPOOL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "datacat" / "spool"
