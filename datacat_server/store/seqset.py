"""A set of sequence numbers kept as sorted, merged intervals."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["SeqSet"]


class SeqSet:
    """Which sequence numbers of one session are stored.

    A client numbers its records consecutively, so a whole session usually collapses
    into one interval and both checks and inserts are O(log intervals).
    """

    __slots__ = ("_highs", "_lows")

    def __init__(self, seqs: Iterable[int] = ()) -> None:
        self._lows: list[int] = []
        self._highs: list[int] = []
        for seq in sorted(seqs):
            self.add(seq)

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self._lows, seq) - 1
        return i >= 0 and seq <= self._highs[i]

    def __len__(self) -> int:
        return sum(h - lo + 1 for lo, h in zip(self._lows, self._highs, strict=True))

    @property
    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self._lows, self._highs, strict=True))

    def copy(self) -> SeqSet:
        other = SeqSet()
        other._lows = self._lows.copy()
        other._highs = self._highs.copy()
        return other

    def add_all(self, seqs: list[int]) -> list[int] | None:
        """Add every number of ``seqs``; None if all were new, else the indexes of
        those that were (a repeat within ``seqs`` counts once).

        A run of consecutive numbers that overlaps nothing stored, as a client sends
        them, costs O(log intervals), not a step per number.
        """
        n = len(seqs)
        if not n:
            return None
        lo, hi = seqs[0], seqs[-1]
        if hi - lo == n - 1 and seqs == list(range(lo, hi + 1)) and not self._overlaps(lo, hi):
            self._add_range(lo, hi)
            return None
        fresh = [i for i, seq in enumerate(seqs) if self.add(seq)]
        return None if len(fresh) == n else fresh

    def _overlaps(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_right(self._lows, hi) - 1
        return i >= 0 and self._highs[i] >= lo

    def _add_range(self, lo: int, hi: int) -> None:
        """Add [lo, hi], which overlaps nothing stored, merging with neighbours."""
        lows, highs = self._lows, self._highs
        i = bisect.bisect_right(lows, lo)  # the new interval goes before index i
        joins_left = i > 0 and highs[i - 1] == lo - 1
        joins_right = i < len(lows) and lows[i] == hi + 1
        if joins_left and joins_right:
            highs[i - 1] = highs[i]
            del lows[i]
            del highs[i]
        elif joins_left:
            highs[i - 1] = hi
        elif joins_right:
            lows[i] = lo
        else:
            lows.insert(i, lo)
            highs.insert(i, hi)

    def add(self, seq: int) -> bool:
        """Add ``seq``; return False if it was already present."""
        lows, highs = self._lows, self._highs
        # Fast path: the next number after the newest interval.
        if highs and seq == highs[-1] + 1:
            highs[-1] = seq
            return True
        i = bisect.bisect_right(lows, seq) - 1
        if i >= 0 and seq <= highs[i]:
            return False
        joins_left = i >= 0 and highs[i] == seq - 1
        joins_right = i + 1 < len(lows) and lows[i + 1] == seq + 1
        if joins_left and joins_right:
            highs[i] = highs[i + 1]
            del lows[i + 1]
            del highs[i + 1]
        elif joins_left:
            highs[i] = seq
        elif joins_right:
            lows[i + 1] = seq
        else:
            lows.insert(i + 1, seq)
            highs.insert(i + 1, seq)
        return True
