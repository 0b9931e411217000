"""Untrusted window ends: sorted, disjoint ``(lo, hi]`` intervals.

A window whose end lies in a hole may lack samples the raw store has (samples dropped as late,
or folded into panes a crash lost), so queries answer it from raw data. Holes are kept merged
and bounded: past ``MAX_HOLES`` the closest neighbours are joined (a wider hole only sends more
windows to raw data, never a wrong one to the sketch path).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Hole = tuple[int, int]
MAX_HOLES = 256


def merge(holes: Iterable[Hole], lo: np.ndarray | None = None, hi: np.ndarray | None = None):
    """``holes`` plus the intervals ``(lo[i], hi[i]]``, merged (touching intervals join)."""
    old = list(holes)
    los = np.array([h[0] for h in old], dtype=np.int64)
    his = np.array([h[1] for h in old], dtype=np.int64)
    if lo is not None and hi is not None and lo.shape[0]:
        los = np.concatenate([los, np.asarray(lo, dtype=np.int64)])
        his = np.concatenate([his, np.asarray(hi, dtype=np.int64)])
    keep = his > los
    los, his = los[keep], his[keep]
    if los.shape[0] == 0:
        return []
    order = np.argsort(los, kind="stable")
    los, his = los[order], his[order]
    reach = np.maximum.accumulate(his)
    # A new interval starts where its lo is past everything before it.
    starts = np.ones(los.shape[0], dtype=bool)
    starts[1:] = los[1:] > reach[:-1]
    first = np.flatnonzero(starts)
    last = np.append(first[1:], los.shape[0]) - 1
    out_lo, out_hi = los[first], reach[last]
    while out_lo.shape[0] > MAX_HOLES:
        gap = out_lo[1:] - out_hi[:-1]
        j = int(np.argmin(gap))
        out_hi = np.delete(out_hi, j)
        out_lo = np.delete(out_lo, j + 1)
    return list(zip(out_lo.tolist(), out_hi.tolist(), strict=True))


def inside(ends: np.ndarray, holes: Iterable[Hole]) -> np.ndarray:
    """Which ``ends`` lie in some hole ``(lo, hi]`` (holes sorted and disjoint, as ``merge``)."""
    hs = list(holes)
    if not hs:
        return np.zeros(np.shape(ends), dtype=bool)
    los = np.array([h[0] for h in hs], dtype=np.int64)
    his = np.array([h[1] for h in hs], dtype=np.int64)
    j = np.searchsorted(los, ends, side="left") - 1  # the last hole with lo < end
    ok = j >= 0
    return ok & (ends <= his[np.maximum(j, 0)])
