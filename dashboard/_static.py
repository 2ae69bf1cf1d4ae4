"""Serving ``dashboard/static``: odd paths are a plain 404, never a 500 or a local path."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.exceptions import NotFoundException
from litestar.file_system import BaseLocalFileSystem
from litestar.types.file_types import FileInfo

__all__ = ["STATIC_ERROR_HANDLERS", "StaticFileSystem"]


class StaticFileSystem(BaseLocalFileSystem):
    """The local file system, where a path that cannot name a file is simply not found.

    Litestar turns any ``OSError`` but "not found" into a 500: a NUL byte (``%00``), a
    name too long for the file system, a file used as a directory (``app.css/x``).
    """

    async def info(self, path: Any, **kwargs: Any) -> FileInfo:
        try:
            return await super().info(path, **kwargs)
        except FileNotFoundError:
            raise
        except (ValueError, OSError):
            raise FileNotFoundError(str(path)) from None


def _not_found(_: Request[Any, Any, Any], __: NotFoundException) -> Response[Any]:
    # Litestar's own message names the file's absolute path on the server.
    return Response({"status_code": 404, "detail": "Not Found"}, status_code=404)


STATIC_ERROR_HANDLERS: dict[Any, Any] = {NotFoundException: _not_found}
