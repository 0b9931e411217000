"""Vectorized array helpers against straightforward references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.arrays import (
    Runs,
    clip_ranges,
    delta_decode,
    delta_encode,
    mark_overlapping,
    merge_runs,
    merge_sorted_parts,
    ranges_index,
    sort_dedupe,
    xor_decode,
    xor_encode,
)

ROWS = st.lists(st.tuples(st.integers(0, 5), st.integers(-50, 50), st.floats(allow_nan=True)))


def reference_merge(parts) -> dict:
    last: dict = {}
    for g, t, v in parts:
        for gi, ti, vi in zip(g.tolist(), t.tolist(), v.view(np.uint64).tolist(), strict=True):
            last[(gi, ti)] = vi
    return dict(sorted(last.items()))


def as_rows(g, t, v) -> dict:
    return dict(
        zip(zip(g.tolist(), t.tolist(), strict=True), v.view(np.uint64).tolist(), strict=True)
    )


def to_part(rows):
    g = np.array([r[0] for r in rows], dtype=np.int64)
    t = np.array([r[1] for r in rows], dtype=np.int64)
    v = np.array([r[2] for r in rows], dtype=np.float64)
    return sort_dedupe(g, t, v)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROWS, min_size=1, max_size=4))
def test_merge_sorted_parts_keeps_newest_part_and_sorts(raw_parts):
    parts = [to_part(rows) for rows in raw_parts]
    g, t, v = merge_sorted_parts(parts, 6)
    order_ok = all((g[i], t[i]) < (g[i + 1], t[i + 1]) for i in range(len(g) - 1))
    assert order_ok
    assert as_rows(g, t, v) == reference_merge(parts)


def test_merge_of_time_ordered_parts_interleaves_series_without_sorting():
    older = (np.array([0, 0, 1]), np.array([1, 2, 1]), np.array([1.0, 2.0, 3.0]))
    newer = (np.array([0, 1, 1]), np.array([3, 2, 3]), np.array([4.0, 5.0, 6.0]))
    g, t, v = merge_sorted_parts([older, newer], 2)
    assert g.tolist() == [0, 0, 0, 1, 1, 1]
    assert t.tolist() == [1, 2, 3, 1, 2, 3]
    assert v.tolist() == [1.0, 2.0, 4.0, 3.0, 5.0, 6.0]


@given(st.lists(st.tuples(st.integers(-5, 20), st.integers(0, 6))))
def test_ranges_index_concatenates_aranges(pairs):
    starts = np.array([p[0] for p in pairs], dtype=np.int64)
    ends = starts + np.array([p[1] for p in pairs], dtype=np.int64)
    expected = [i for s, e in zip(starts.tolist(), ends.tolist(), strict=True) for i in range(s, e)]
    assert ranges_index(starts, ends).tolist() == expected


@given(st.lists(st.integers(-(2**63), 2**63 - 1)), st.lists(st.integers(0, 2**64 - 1)))
def test_delta_and_xor_encodings_round_trip_every_bit_pattern(ts, bits):
    t = np.array(ts, dtype=np.int64)
    assert delta_decode(delta_encode(t)).tolist() == ts
    v = np.array(bits, dtype=np.uint64).view(np.float64)
    assert xor_decode(xor_encode(v)).view(np.uint64).tolist() == bits


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.integers(-30, 30), max_size=12), max_size=6),
    st.integers(-35, 35),
    st.integers(0, 40),
)
def test_clip_ranges_keeps_exactly_the_samples_inside_the_time_range(series, mint, width):
    maxt = mint + width - 5  # also empty ranges (maxt < mint)
    runs = [sorted(set(s)) for s in series]
    ts = np.array([t for r in runs for t in r], dtype=np.int64)
    lengths = np.array([len(r) for r in runs], dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    lo, hi = clip_ranges(ts, starts, ends, mint, maxt)
    for r, a, b, s in zip(runs, lo.tolist(), hi.tolist(), starts.tolist(), strict=True):
        inside = [t for t in r if mint <= t <= maxt]
        assert ts[a:b].tolist() == inside
        assert a == s + sum(t < mint for t in r)


def _runs_of(part, rng):
    """A sorted part as runs into a padded copy of its arrays (runs need not start at row 0)."""
    g, t, v = part
    pad = int(rng.integers(0, 3))
    ts = np.r_[np.full(pad, 999, dtype=np.int64), t]
    vals = np.r_[np.full(pad, -1.0), v]
    r = Runs.of_sorted(g, t, v)
    return Runs(ts, vals, r.group, r.lo + pad, r.hi + pad)


@settings(max_examples=150, deadline=None)
@given(st.lists(ROWS, min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_merge_runs_copies_runs_into_group_offsets_keeping_the_newest_source(raw_parts, seed):
    rng = np.random.default_rng(seed)
    parts = [to_part(rows) for rows in raw_parts]
    offsets, t, v = merge_runs([_runs_of(p, rng) for p in parts], 6)
    g = np.repeat(np.arange(6), np.diff(offsets))
    assert offsets[0] == 0 and offsets[-1] == t.shape[0] == v.shape[0]
    assert all((g[i], t[i]) < (g[i + 1], t[i + 1]) for i in range(len(g) - 1))
    assert as_rows(g, t, v) == reference_merge(parts)


def test_merge_runs_keeps_stale_marker_bits_and_resolves_overlap_by_write_order():
    stale = np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0]
    older = Runs.of_sorted(np.array([0, 0]), np.array([1, 5]), np.array([1.0, 2.0]))
    newer = Runs.of_sorted(np.array([0, 1]), np.array([5, 2]), np.array([stale, 7.0]))
    newest = Runs.of_sorted(np.array([1]), np.array([3]), np.array([stale]))
    offsets, t, v = merge_runs([older, newer, newest], 3)
    assert offsets.tolist() == [0, 2, 4, 4]
    assert t.tolist() == [1, 5, 2, 3]
    bits = v.view(np.uint64).tolist()
    assert bits[1] == bits[3] == 0x7FF0000000000002 and v[0] == 1.0 and v[2] == 7.0


@pytest.mark.parametrize("seed", range(20))
def test_mark_overlapping_matches_a_whole_array_filter(seed):
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, 400, int(rng.integers(0, 200))))
    first = rng.integers(0, 1000, keys.shape[0])
    last = first + rng.integers(0, 300, keys.shape[0])
    wanted = np.unique(rng.integers(0, 450, int(rng.integers(1, 120))))
    lo = int(rng.integers(0, 1000))
    hi = lo + int(rng.integers(0, 400))
    out = np.zeros(wanted.shape[0], dtype=bool)
    mark_overlapping(keys, first, last, wanted, lo, hi, out)
    live = set(keys[(first <= hi) & (last >= lo)].tolist())
    assert out.tolist() == [w in live for w in wanted.tolist()]
    before = out.copy()
    mark_overlapping(keys[:0], first[:0], last[:0], wanted, lo, hi, out)  # marks, never clears
    assert out.tolist() == before.tolist()
