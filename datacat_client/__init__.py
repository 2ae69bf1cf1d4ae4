"""DataCat client: log sessions, state, events, metrics and test results to a DataCat server.

    from datacat_client import create_session

    with create_session(product="myapp", version="1.2") as session:
        session.update_state({"phase": "start"})
        session.log_metric("latency_ms", 12.5, tags={"route": "/"})

`create_session` returns a `Session` whose calls never block on the network nor raise;
`DatacatClient` makes plain synchronous REST calls that raise `DatacatError`.
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from . import wire
    from ._capture import exception_data, thread_stacks
    from ._client import DatacatClient
    from ._config import default_spool_dir
    from ._errors import APIError, DatacatError, NotFound, RateLimited, TransportError
    from ._heartbeat import HeartbeatMonitor
    from ._replay import UploadReport, upload_spool
    from ._sender import BackgroundSender, SenderStats
    from ._session import Session, create_session
    from ._transport import HttpTransport, Transport

#: Public name → the private module that defines it. Imported on first use (PEP 562),
#: so that importing one small module of the package (the pytest plugin reads
#: `_config` in every run, recorded or not) does not load the sender and the transport.
_HOMES = {
    "APIError": "._errors",
    "BackgroundSender": "._sender",
    "DatacatClient": "._client",
    "DatacatError": "._errors",
    "HeartbeatMonitor": "._heartbeat",
    "HttpTransport": "._transport",
    "NotFound": "._errors",
    "RateLimited": "._errors",
    "SenderStats": "._sender",
    "Session": "._session",
    "Transport": "._transport",
    "TransportError": "._errors",
    "UploadReport": "._replay",
    "create_session": "._session",
    "default_spool_dir": "._config",
    "exception_data": "._capture",
    "thread_stacks": "._capture",
    "upload_spool": "._replay",
}

__all__ = [
    "APIError",
    "BackgroundSender",
    "DatacatClient",
    "DatacatError",
    "HeartbeatMonitor",
    "HttpTransport",
    "NotFound",
    "RateLimited",
    "SenderStats",
    "Session",
    "Transport",
    "TransportError",
    "UploadReport",
    "create_session",
    "default_spool_dir",
    "exception_data",
    "thread_stacks",
    "upload_spool",
    "wire",
]


def __getattr__(name: str) -> _typing.Any:
    if name == "wire":
        return _importlib.import_module(".wire", __name__)
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    member = getattr(_importlib.import_module(home, __name__), name)
    # Public names say they live here (as httpx does): reprs and docs show this path.
    member.__module__ = __name__
    globals()[name] = member
    return member


def __dir__() -> list[str]:
    return list(__all__)
