"""DataCat client: log sessions, state, events, metrics and test results to a DataCat server.

    from datacat_client import create_session

    with create_session(product="myapp", version="1.2") as session:
        session.update_state({"phase": "start"})
        session.log_metric("latency_ms", 12.5, tags={"route": "/"})

`create_session` returns a `Session` whose calls never block on the network nor raise;
`DatacatClient` makes plain synchronous REST calls that raise `DatacatError`.
"""

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

# Public names say they live here (as httpx does): reprs and docs show the import path.
for _name in __all__:
    _member = globals()[_name]
    if _name != "wire":
        _member.__module__ = __name__
del _name, _member
