"""SeqSet behaves as a set of integers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from datacat_server.store.seqset import SeqSet


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_behaves_like_a_set(values: list[int]) -> None:
    seqs = SeqSet()
    seen: set[int] = set()
    for value in values:
        assert seqs.add(value) == (value not in seen)
        seen.add(value)
    assert len(seqs) == len(seen)
    for probe in range(-1, 202):
        assert (probe in seqs) == (probe in seen)
    lows = [lo for lo, _ in seqs.intervals]
    assert lows == sorted(lows)
    for (_, hi), (lo, _) in zip(seqs.intervals, seqs.intervals[1:], strict=False):
        assert lo > hi + 1  # merged: no touching intervals


def test_consecutive_numbers_collapse_into_one_interval() -> None:
    seqs = SeqSet(range(1_000_000, 1_001_000))
    assert seqs.intervals == [(1_000_000, 1_000_999)]


def test_copy_is_independent() -> None:
    seqs = SeqSet([1, 2, 3])
    other = seqs.copy()
    other.add(10)
    assert 10 not in seqs
    assert 10 in other
