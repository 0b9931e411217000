"""The window table's by-end index, kept current as windows arrive in and out of end order."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sketch_table import WindowTable
from precompute.config import load_config

YAML = """
aggregations:
- {aggregationId: 1, aggregationType: Sum, metric: x, windowSize: 60, labels: {grouping: [job]}}
"""


@pytest.mark.parametrize("seed", range(8))
def test_rows_at_finds_every_row_of_the_asked_ends_across_appends(seed):
    rng = np.random.default_rng(seed)
    table = WindowTable(load_config(YAML).aggregations[0])
    newest = 0
    for _ in range(6):
        old = table.end.shape[0]
        size = int(rng.integers(0, 40)) if rng.random() < 0.8 else 0
        if rng.random() < 0.7:  # in order, possibly continuing the newest end
            new = newest + 60_000 * np.sort(rng.integers(0, 4, size=size))
        else:  # late windows
            new = 60_000 * rng.integers(0, newest // 60_000 + 2, size=size)
        newest = max(newest, int(new.max(initial=0)))
        table.end = np.concatenate([table.end, new.astype(np.int64)])
        table._extend_index(old)
        ends = np.unique(60_000 * rng.integers(0, newest // 60_000 + 3, size=5))
        rows, col = table.rows_at(ends)
        want = np.flatnonzero(np.isin(table.end, ends))
        assert sorted(rows.tolist()) == want.tolist()
        np.testing.assert_array_equal(ends[col], table.end[rows])
        if table.end.shape[0]:
            assert table.span() == (int(table.end.min()), int(table.end.max()))
