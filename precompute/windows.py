"""Pane and window arithmetic on the slide grid.

Windows are left-open, right-closed ``(end − size, end]`` — like Prometheus 3's range selectors —
and their ends are multiples of the slide, so precomputed windows tile a query's ``(t − range, t]``
exactly. The timeline is cut into panes ``(p − slide, p]`` identified by their end ``p``; a sample
updates exactly one pane, and window ``E`` is the merge of the panes ending in
``E − size + slide, …, E``. A tumbling window is the special case of one pane per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    size_ms: int
    slide_ms: int

    def __post_init__(self) -> None:
        if self.slide_ms <= 0 or self.size_ms <= 0 or self.size_ms % self.slide_ms:
            raise ValueError("window size must be a positive multiple of a positive slide")

    @property
    def panes_per_window(self) -> int:
        return self.size_ms // self.slide_ms

    def pane_ends(self, ts: np.ndarray) -> np.ndarray:
        """End of the pane holding each timestamp: the smallest slide multiple ≥ ts."""
        s = self.slide_ms
        return -((-np.asarray(ts, dtype=np.int64)) // s) * s

    def pane_end(self, ts: int) -> int:
        return -((-ts) // self.slide_ms) * self.slide_ms

    def grid_floor(self, t: int) -> int:
        """The largest window end ≤ t."""
        return (t // self.slide_ms) * self.slide_ms

    def last_window_end_of_pane(self, pane_end: int) -> int:
        """The last window (by end) that still contains the pane."""
        return pane_end + self.size_ms - self.slide_ms

    def window_ends_of_pane(self, pane_end: int) -> range:
        return range(pane_end, pane_end + self.size_ms, self.slide_ms)

    def pane_ends_of_window(self, window_end: int) -> range:
        return range(window_end - self.size_ms + self.slide_ms, window_end + 1, self.slide_ms)

    def start_of(self, window_end: int) -> int:
        return window_end - self.size_ms

    def windows_containing(self, ts: int) -> list[tuple[int, int]]:
        """All ``(start, end)`` windows whose ``(start, end]`` contains ``ts``."""
        return [(self.start_of(e), e) for e in self.window_ends_of_pane(self.pane_end(ts))]
