"""Untrusted window-end intervals: merging and membership."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute import holes


def test_overlapping_and_touching_intervals_merge_and_empty_ones_vanish():
    got = holes.merge([(10, 20)], np.array([15, 20, 40, 50]), np.array([30, 25, 45, 50]))
    assert got == [(10, 30), (40, 45)]


def test_the_number_of_holes_is_bounded_by_joining_the_closest():
    lo = np.arange(0, 10 * (holes.MAX_HOLES + 5), 10)
    got = holes.merge([], lo, lo + 1 + (lo % 70 == 0))
    assert len(got) == holes.MAX_HOLES
    covered = holes.inside(lo + 1, got)
    assert covered.all()  # joining only ever widens


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(0, 20)), max_size=12))
def test_inside_matches_membership_in_any_interval(pairs):
    lo = np.array([a for a, _ in pairs], dtype=np.int64)
    hi = lo + np.array([b for _, b in pairs], dtype=np.int64)
    merged = holes.merge([], lo, hi)
    ends = np.arange(-60, 80)
    want = np.array([any(a < e <= b for a, b in zip(lo, hi, strict=True)) for e in ends])
    assert (holes.inside(ends, merged) == want).all()
