"""Pane and window arithmetic on the slide grid.

Windows are left-open, right-closed ``(end − size, end]`` — like Prometheus 3's range selectors —
and their ends are multiples of the slide, so precomputed windows tile a query's ``(t − range, t]``
exactly. The timeline is cut into panes ``(p − slide, p]`` identified by their end ``p``; a sample
updates exactly one pane, and window ``E`` is the merge of the panes ending in
``E − size + slide, …, E``. A tumbling window is the special case of one pane per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _counting_segments(gids, panes, slide, max_keys):
    """Counting sort of samples by key ``(gid − min gid) · n_panes + pane index``: ``(order,
    starts of the non-empty keys plus the total, those keys, min gid, min pane, n_panes)``.
    Stable, so the order is ``np.lexsort((panes, gids))``'s. An empty ``order`` when the key
    space passes ``max_keys`` (the caller sorts instead)."""
    n = gids.shape[0]
    g_lo, g_hi, p_lo, p_hi = gids[0], gids[0], panes[0], panes[0]
    for i in range(n):
        g_lo, g_hi = min(g_lo, gids[i]), max(g_hi, gids[i])
        p_lo, p_hi = min(p_lo, panes[i]), max(p_hi, panes[i])
    n_panes = (p_hi - p_lo) // slide + 1
    n_keys = (g_hi - g_lo + 1) * n_panes
    if n_keys > max_keys:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), 0, 0, 0
    # Pane ends are slide multiples: the index is a float product rounded, exact far past any
    # timestamp, and ~10× cheaper than an integer division per sample.
    inv = 1.0 / slide
    key = np.empty(n, np.int64)
    counts = np.zeros(n_keys + 1, np.int64)
    for i in range(n):
        k = (gids[i] - g_lo) * n_panes + np.int64((panes[i] - p_lo) * inv + 0.5)
        key[i] = k
        counts[k + 1] += 1
    n_seg = 0
    for k in range(n_keys):
        if counts[k + 1] > 0:
            n_seg += 1
        counts[k + 1] += counts[k]
    seg_keys = np.empty(n_seg, np.int64)
    starts = np.empty(n_seg + 1, np.int64)
    j = 0
    for k in range(n_keys):
        if counts[k + 1] > counts[k]:
            seg_keys[j] = k
            starts[j] = counts[k]
            j += 1
    starts[n_seg] = n
    order = np.empty(n, np.int64)
    for i in range(n):
        k = key[i]
        order[counts[k]] = i
        counts[k] += 1
    return order, starts, seg_keys, g_lo, p_lo, n_panes


def group_pane_segments(
    gids: np.ndarray, panes: np.ndarray, slide: int
) -> tuple[np.ndarray, list[int], list[int], list[int], list[int]]:
    """Samples grouped by (group, pane), stable (by group, then pane, then arrival):
    ``(order, segment starts, segment ends, their group ids, their pane ends)``, the segments
    as positions into ``order``. One compiled counting pass when the (group, pane) key space is
    small against the batch (the usual case: a batch spans one or two panes), else a sort."""
    n = gids.shape[0]
    order, starts, keys, g_lo, p_lo, n_panes = _counting_segments(gids, panes, slide, 4 * n + 4096)
    if n == 0 or order.shape[0]:
        seg_g = (keys // n_panes + g_lo).tolist()
        seg_p = (keys % n_panes * slide + p_lo).tolist()
        bounds = starts.tolist()
        return order.view(np.int64), bounds[:-1], bounds[1:], seg_g, seg_p
    order = group_pane_order(gids, panes, slide)
    g, p = gids[order], panes[order]
    change = np.ones(n, dtype=bool)
    change[1:] = (g[1:] != g[:-1]) | (p[1:] != p[:-1])
    first = np.flatnonzero(change)
    bounds = [*first.tolist(), n]
    return order, bounds[:-1], bounds[1:], g[first].tolist(), p[first].tolist()


def group_pane_order(gids: np.ndarray, panes: np.ndarray, slide: int) -> np.ndarray:
    """``np.lexsort((panes, gids))`` (stable: by group, then pane, then arrival) from one
    small-integer key: pane ends are multiples of the slide and a batch spans few of them, and
    a key under 2**16 sorts by radix (~15× faster than the two-key lexsort of 10k samples)."""
    lo, hi = int(panes.min()), int(panes.max())
    if (hi - lo) // slide > 64:  # panes far apart (a backfill): the general sort
        return np.lexsort((panes, gids))
    n_panes = (hi - lo) // slide + 1
    key = gids * n_panes + (panes - lo) // slide
    top = int(key.max())
    kind = np.uint16 if top < 1 << 16 else np.uint32 if top < 1 << 32 else np.int64
    return np.argsort(key.astype(kind, copy=False), kind="stable")
