"""Evaluation times of a selector: the grid, pinned by ``@`` and shifted back by ``offset``."""

from __future__ import annotations

import numpy as np

from planner.stmt import Grid


def selector_times(grid: Grid, offset_ms: int, at_ms: int | None) -> np.ndarray:
    """Per step, the time the selector looks at: ``(at or t) - offset``."""
    if at_ms is not None:
        return np.full(grid.n_steps, at_ms - offset_ms, dtype=np.int64)
    return grid.times() - offset_ms


def describe_at(offset_ms: int, at_ms: int | None) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    if offset_ms:
        out.append(("offset", offset_ms))
    if at_ms is not None:
        out.append(("at", at_ms))
    return out
