"""A paged list: which page this is, how many there are, and the numbers to link to."""

from __future__ import annotations

import dataclasses

__all__ = ["Paging"]


@dataclasses.dataclass(frozen=True)
class Paging:
    """Page ``page`` (from 1) of ``total`` items shown ``per_page`` at a time."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1, even for an empty list)."""
        return max(1, -(-self.total // self.per_page))

    @property
    def offset(self) -> int:
        """How many items come before this page."""
        return (self.page - 1) * self.per_page

    @property
    def first(self) -> int:
        """The number of this page's first item (from 1)."""
        return self.offset + 1

    @property
    def last(self) -> int:
        """The number of this page's last item."""
        return min(self.total, self.page * self.per_page)

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def shown(self) -> bool:
        """Whether there is anywhere to go: more than one page, or a page past the end."""
        return self.pages > 1 or self.page > 1

    def numbers(self, around: int = 2) -> list[int | None]:
        """The page numbers to link: the first, the last, and ``around`` either side of
        this one; None where some are left out (``1 … 4 5 6 7 8 … 40``)."""
        last = self.pages
        keep = {1, last, *range(self.page - around, self.page + around + 1)}
        out: list[int | None] = []
        for number in sorted(n for n in keep if 1 <= n <= last):
            if out and out[-1] is not None and number > out[-1] + 1:
                # One missing page is shown as itself; more as a gap.
                out.append(number - 1 if number == out[-1] + 2 else None)
            out.append(number)
        return out
