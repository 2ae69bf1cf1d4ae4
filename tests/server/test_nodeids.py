"""Reading a test's parts off its pytest node id."""

from __future__ import annotations

import pytest

from datacat_server.store.nodeids import NodeParts, split_nodeid


@pytest.mark.parametrize(
    ("nodeid", "expected"),
    [
        ("tests/test_a.py::test_f", NodeParts("tests/test_a.py", "", "test_f", "")),
        ("t.py::TestC::test_f", NodeParts("t.py", "TestC", "test_f", "")),
        ("t.py::TestC::Inner::test_f[1-a]", NodeParts("t.py", "TestC::Inner", "test_f", "1-a")),
        ("t.py::test_f[x::y]", NodeParts("t.py", "", "test_f", "x::y")),
        ("t.py::test_f[a[b]]", NodeParts("t.py", "", "test_f", "a[b]")),
        ("t.py::test_f[<script>\nalert(1)]", NodeParts("t.py", "", "test_f", "<script>\nalert(1)")),
        ("t.py", NodeParts("t.py", "", "", "")),
        ("doc.txt::doc.txt", NodeParts("doc.txt", "", "doc.txt", "")),
    ],
)
def test_split(nodeid: str, expected: NodeParts) -> None:
    assert split_nodeid(nodeid) == expected
