"""What a pytest node id says about its test, for results that do not spell it out."""

from __future__ import annotations

import dataclasses

__all__ = ["NodeParts", "split_nodeid"]


@dataclasses.dataclass(frozen=True, slots=True)
class NodeParts:
    file: str
    cls: str
    func: str
    param_id: str


def split_nodeid(nodeid: str) -> NodeParts:
    """Split ``path/test_x.py::TestC::test_f[a-1]`` into file, class, function, param id.

    Brackets are matched from the first ``[`` of the last part, so parameter ids that
    themselves contain ``::`` or ``]`` stay whole.
    """
    head, sep, params = nodeid.partition("[")
    param_id = params[:-1] if sep and params.endswith("]") else (params if sep else "")
    parts = head.split("::")
    file = parts[0]
    func = parts[-1] if len(parts) > 1 else ""
    cls = "::".join(parts[1:-1])
    return NodeParts(file=file, cls=cls, func=func, param_id=param_id)
