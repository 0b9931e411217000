from __future__ import annotations

import numpy as np

from planner.nodes.bucket_checks import forced_monotonicity


def test_forced_monotonicity_reports_only_the_groups_whose_counts_fall() -> None:
    # Group 0: buckets 1, 2, +Inf rising; group 1: bucket 2 falls below bucket 1 at steps 1 and 2
    # (by 3 and by 5), +Inf rises again; group 2: a fall within 1e-12 relative is not reported.
    upper = np.array([1.0, 2.0, np.inf, 1.0, 2.0, np.inf, 1.0, np.inf])
    counts = np.array(
        [
            [1, 1, 1],
            [2, 2, 2],
            [3, 3, 3],
            [5, 5, 5],
            [6, 2, 0],
            [9, 9, 9],
            [1.0, 1.0, 1.0],
            [1.0 - 1e-15, 1.0, 1.0],
        ]
    )
    present = np.ones(counts.shape, dtype=bool)
    present[4, 0] = False  # an absent bucket is skipped, not read as zero
    offsets = np.array([0, 3, 6, 8])
    times = np.array([1000, 2000, 3000])
    found = forced_monotonicity(upper, counts, present, offsets, times)
    assert found[0] is None and found[2] is None
    fixed = found[1]
    assert fixed is not None
    assert (fixed.cells, fixed.min_bucket, fixed.max_bucket, fixed.max_diff) == (2, 2.0, 2.0, 5.0)
    assert (fixed.min_ts, fixed.max_ts) == (2000, 3000)


def test_a_nan_count_restarts_the_comparison_at_the_next_bucket() -> None:
    upper = np.array([1.0, 2.0, 3.0, np.inf])
    counts = np.array([[5.0], [np.nan], [4.0], [3.0]])
    found = forced_monotonicity(
        upper, counts, np.ones((4, 1), bool), np.array([0, 4]), np.array([0])
    )
    assert found[0] is not None
    assert (found[0].min_bucket, found[0].max_bucket, found[0].max_diff) == (np.inf, np.inf, 1.0)
