"""Bookkeeping shared by the two-stack sliding merges of panes (KLL sketches, counter columns).

A window of panes ``j..w`` is ``back[j] ⊕ front``: ``back`` holds suffix merges of an older block
of panes ``a..b`` (``back[j]`` = panes ``j..b``), ``front`` the merge of panes ``b+1..w``. A
close extends ``front`` by its new pane and combines once; when the window start passes ``b``
the block is rebuilt from the window's own panes. Subclasses say how a pane is merged into the
front (``_extend(pane, source)``) and how blocks are rebuilt; this class keeps which panes are
merged where, and drops exactly the merges a pane with new samples invalidates.
"""

from __future__ import annotations

from typing import Any


class TwoStackMerge:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.back: dict[int, Any] = {}
        self.block_end = 0
        self.front: Any = None
        self.front_end = 0
        self.front_stale = False
        self.merged: set[int] = set()

    def touch(self, pane: int) -> None:
        """Pane ``pane`` got new samples (late or reordered batches): drop the merges that
        include it — back suffixes starting at or before it, or the front — and keep the rest."""
        if pane not in self.merged:
            return
        if pane > self.block_end:
            self.front_stale = True
            return
        for j in [j for j in self.back if j <= pane]:
            del self.back[j]

    def _extend(self, pane: int, source: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _catch_up(self, ends: list[int], source: Any) -> None:
        """Bring the front to the end of the window ``ends``: re-merge its panes when one of
        them changed, then extend it by the panes it does not hold yet."""
        if self.front_stale:  # the back block is still good
            step = ends[1] - ends[0]
            self.front, self.front_stale = None, False
            for p in range(self.block_end + step, self.front_end + 1, step):
                self._extend(p, source)
        for p in ends:
            if p > self.front_end:
                self._extend(p, source)
                self.front_end = p
