"""`wire.cut_text`: the one way long text is cut, by the plugin and by the server."""

from __future__ import annotations

import pytest

from datacat_client.wire import cut_text


def test_short_text_is_kept_whole() -> None:
    assert cut_text("x" * 500, 500, "cut {n}") == "x" * 500


@pytest.mark.parametrize("limit", [0, 50, 150, 1_000, 10_001])
def test_long_text_keeps_its_head_and_tail_and_says_how_much_went(limit: int) -> None:
    text = "".join(f"{i:06d}" for i in range(5_000))  # 30,000 characters, every cut visible
    cut = cut_text(text, limit, "gone: {n} characters")
    assert len(cut) <= max(limit, 100)
    head, _, rest = cut.partition("\n... [gone: ")
    number, _, tail = rest.partition(" characters] ...\n")
    assert text.startswith(head)
    assert text.endswith(tail)
    assert len(head) + int(number) + len(tail) == len(text)
    assert abs(len(head) - len(tail)) <= 1
