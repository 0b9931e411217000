"""A block's by-end index finds every row of the asked window ends, in log order."""

from __future__ import annotations

import numpy as np
import pytest

from planner.sketch_table import _group_by_end, _rows_at


@pytest.mark.parametrize("seed", range(8))
def test_rows_at_finds_every_row_of_the_asked_ends_in_log_order(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 60))
    end = 60_000 * rng.integers(0, 12, size=size).astype(np.int64)  # late rows: out of order
    index = _group_by_end(end)
    ends = np.unique(60_000 * rng.integers(0, 14, size=5))
    rows, col = _rows_at(index, ends)
    want = np.flatnonzero(np.isin(end, ends))
    assert sorted(rows.tolist()) == want.tolist()
    np.testing.assert_array_equal(ends[col], end[rows])
    for e in ends.tolist():  # rows of one end keep their log order (later entry later)
        of_e = rows[end[rows] == e]
        assert of_e.tolist() == sorted(of_e.tolist())
