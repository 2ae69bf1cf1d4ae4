"""The DuckLake store's foundation: a PostgreSQL catalog plus S3 (or shared-directory)
data, shared by many DataCat servers (see docs/lake-design.md)."""

from __future__ import annotations

from datacat_server.store.lake.connect import (
    LakeSettings,
    LakeUnavailableError,
    attach,
    connect,
    cursor,
    extension_file,
    load_extensions,
)

__all__ = [
    "LakeSettings",
    "LakeUnavailableError",
    "attach",
    "connect",
    "cursor",
    "extension_file",
    "load_extensions",
]
