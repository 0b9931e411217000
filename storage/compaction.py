"""Compaction and retention planning: pure functions over block metadata.

The store executes the plans (``Storage._compact_and_retain``). Two kinds of compaction:

1. *Overlap*: blocks whose time ranges overlap (late samples cut after their window's block was
   written, or a crash between a cut and its WAL checkpoint) are merged into one; the newer
   block's sample wins a duplicate ``(series, ts)``.
2. *Levels*: blocks lying entirely inside an aligned window of ``block_duration * 3**level`` that
   is complete (it ends before ``safe_before``, the head's oldest time) are merged, like
   Prometheus' 2h -> 6h -> 18h ranges, so long queries touch few blocks.

Retention deletes whole blocks whose newest sample is older than ``newest - retention_ms``,
where ``newest`` is the newest sample the store holds (as Prometheus measures it).
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.block import BlockMeta


def overlapping_group(metas: Sequence[BlockMeta]) -> list[int]:
    """Sequence numbers of the first group of >= 2 transitively overlapping blocks, or []."""
    ordered = sorted(metas, key=lambda m: (m.mint, m.seq))
    group: list[BlockMeta] = []
    group_maxt = None
    for m in ordered:
        if group and group_maxt is not None and m.mint <= group_maxt:
            group.append(m)
            group_maxt = max(group_maxt, m.maxt)
            continue
        if len(group) >= 2:
            break
        group, group_maxt = [m], m.maxt
    return sorted(m.seq for m in group) if len(group) >= 2 else []


def level_group(
    metas: Sequence[BlockMeta], block_ms: int, levels: int, safe_before: int | None
) -> tuple[list[int], int]:
    """The first set of >= 2 blocks filling one complete window of a higher level, and that
    level; ``([], 0)`` when there is none."""
    for level in range(1, levels):
        width = block_ms * 3**level
        windows: dict[int, list[BlockMeta]] = {}
        for m in metas:
            w = m.mint // width
            if m.maxt // width != w or m.level >= level:
                continue
            if safe_before is not None and (w + 1) * width > safe_before:
                continue
            windows.setdefault(w, []).append(m)
        for w in sorted(windows):
            if len(windows[w]) >= 2:
                return sorted(m.seq for m in windows[w]), level
    return [], 0


def retention_victims(
    metas: Sequence[BlockMeta], retention_ms: int | None, newest: int | None
) -> list[int]:
    """Blocks entirely older than ``newest - retention_ms``."""
    if retention_ms is None or newest is None:
        return []
    limit = newest - retention_ms
    return sorted(m.seq for m in metas if m.maxt < limit)
