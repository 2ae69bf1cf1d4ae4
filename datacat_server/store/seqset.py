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
