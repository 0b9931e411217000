"""KLL sliding windows through the two-stack merge, and the worker's compiled per-item passes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.accumulators.kll import KLLAccumulator, SlidingKLLMerge
from precompute.windows import WindowSpec, group_pane_segments
from precompute.worker import _ingest_marks, _window_ends
from tests.precompute.helpers import Harness

SLIDE = 10_000


def _pane(values: np.ndarray, k: int = 200) -> KLLAccumulator:
    acc = KLLAccumulator(k)
    acc.update(values, np.zeros(0, np.int64))
    return acc


def _chain(panes: dict[int, KLLAccumulator], ends: list[int]) -> KLLAccumulator:
    """The reference: the window's panes merged left to right into an empty accumulator."""
    acc = KLLAccumulator(200)
    for p in ends:
        if p in panes:
            acc.merge(panes[p])
    return acc


def _ends(w: int, width: int) -> list[int]:
    return list(range(w - (width - 1) * SLIDE, w + 1, SLIDE))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), width=st.integers(3, 8), skip=st.integers(0, 3))
def test_two_stack_windows_of_few_values_hold_the_left_to_right_merge_s_values_in_order(
    seed, width, skip
):
    rng = np.random.default_rng(seed)
    # ≤ 8 values per pane, ≤ 8 panes: every window holds ≤ 64 values, so stays exact; some
    # panes are absent (no data), and windows sometimes skip ahead by several slides.
    panes = {
        p * SLIDE: _pane(rng.normal(size=int(rng.integers(1, 9))))
        for p in range(40)
        if rng.random() > 0.2
    }
    sliding = SlidingKLLMerge()
    w = (width - 1) * SLIDE
    while w < 40 * SLIDE:
        ends = _ends(w, width)
        got = sliding.window(ends, panes)
        want = _chain(panes, ends)
        if want.n == 0:
            assert got is None
        else:
            assert got is not None and got.is_exact
            assert np.array_equal(got.exact, want.exact)  # same values, same (time) order
        w += SLIDE * (1 + (int(rng.integers(0, 4)) == 0) * skip)


def test_two_stack_windows_past_k_keep_count_extremes_and_the_rank_error_bound():
    rng = np.random.default_rng(7)
    raw = {p * SLIDE: rng.lognormal(size=1000) for p in range(30)}
    panes = {p: _pane(v) for p, v in raw.items()}
    sliding = SlidingKLLMerge()
    for w in range(5 * SLIDE, 30 * SLIDE, SLIDE):
        ends = _ends(w, 6)
        got = sliding.window(ends, panes)
        values = np.sort(np.concatenate([raw[p] for p in ends]))
        assert got is not None and not got.is_exact
        assert got.n == values.shape[0]
        assert got.stats()["min"] == values[0] and got.stats()["max"] == values[-1]
        bound = got.rank_error()
        for q in (0.1, 0.5, 0.9, 0.99):
            rank = np.searchsorted(values, got.quantile(q), side="right") / values.shape[0]
            assert abs(rank - q) <= bound + 1.0 / values.shape[0]


def test_windows_handed_out_are_independent_of_the_panes_and_of_each_other():
    rng = np.random.default_rng(3)
    panes = {p * SLIDE: _pane(rng.normal(size=5)) for p in range(12)}
    sliding = SlidingKLLMerge()
    first = sliding.window(_ends(5 * SLIDE, 6), panes)
    assert first is not None
    before = first.exact.copy()
    second = sliding.window(_ends(6 * SLIDE, 6), panes)
    assert second is not None
    second.update(np.array([99.0]), np.zeros(0, np.int64))
    panes[5 * SLIDE].update(np.array([-99.0]), np.zeros(0, np.int64))
    sliding.touch(5 * SLIDE)
    assert np.array_equal(first.exact, before)
    third = sliding.window(_ends(7 * SLIDE, 6), panes)
    assert third is not None and -99.0 in third.exact and 99.0 not in third.exact


@pytest.mark.parametrize("late_pane", [4, 5, 6, 7])
def test_new_samples_in_a_pane_already_merged_reach_the_next_windows(late_pane):
    """Panes 4 and 5 sit in the back block's suffixes, 6 and 7 in the front: each case fails
    if ``touch`` does not drop the merges holding the pane."""
    rng = np.random.default_rng(late_pane)
    panes = {p * SLIDE: _pane(rng.normal(size=4)) for p in range(12)}
    sliding = SlidingKLLMerge()
    for w in (5, 6, 7):  # rebuild at 5 (back block panes 1..5), front 6..7
        sliding.window(_ends(w * SLIDE, 5), panes)
    p = late_pane * SLIDE
    panes[p].update(np.array([1e6, 2e6]), np.zeros(0, np.int64))
    sliding.touch(p)
    for w in (8, 9, 10):
        ends = _ends(w * SLIDE, 5)
        got, want = sliding.window(ends, panes), _chain(panes, ends)
        assert got is not None and np.array_equal(got.exact, want.exact)


TWO_AGGS = """
aggregations:
  - {aggregationId: 1, aggregationType: DatasketchesKLL, parameters: {K: 200},
     labels: {grouping: [job]}, metric: m, windowSize: 60, slideInterval: 10,
     windowType: sliding}
  - {aggregationId: 2, aggregationType: MinMax, labels: {grouping: [job]}, metric: m,
     windowSize: 60, slideInterval: 10, windowType: sliding}
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kll_windows_count_the_same_samples_as_minmax_under_late_drops_and_reordering(seed):
    """Batches swapped past the allowed lateness: a late sample is dropped from closed windows
    but still counts in the open ones, so it lands in panes the two-stack merge already holds.
    The columnar MinMax windows over the same stream are the reference (count, min, max)."""
    rng = np.random.default_rng(seed)
    h = Harness(TWO_AGGS, allowed_lateness_ms=2_000, late_data_policy="Drop")
    scrapes = []
    for k in range(60):
        rows = []
        for s in range(6):
            t = k * 3_000 + int(rng.integers(0, 3_000))
            rows.append(({"__name__": "m", "job": f"j{s % 2}", "instance": f"i{s}"}, t,
                         float(rng.normal())))  # fmt: skip
        scrapes.append(rows)
    order = list(range(len(scrapes)))
    for i in range(0, len(order) - 8, 5):  # move a scrape up to 8 positions later
        j = i + int(rng.integers(1, 9))
        order[i], order[j] = order[j], order[i]
    for i in order:
        h.send(scrapes[i])
    h.close_all()
    assert h.worker.status()[1]["dropped_late"] > 0
    kll, minmax = {}, {}
    for out, acc in h.emits:
        key = (out.key, out.window_start, out.window_end)
        target = kll if out.aggregation_id == 1 else minmax
        assert key not in target  # Drop policy: one entry per window
        target[key] = acc.stats()
    assert kll.keys() == minmax.keys() and len(kll) > 20
    for key, stats in kll.items():
        assert stats["exact"]
        assert (stats["count"], stats["min"], stats["max"]) == (
            minmax[key]["count"], minmax[key]["min"], minmax[key]["max"],
        )  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 400),
    groups=st.sampled_from([1, 3, 50, 5_000]),
    spread=st.sampled_from([1, 3, 200]),
)
def test_group_pane_segments_equal_a_lexsort_by_group_then_pane(seed, n, groups, spread):
    rng = np.random.default_rng(seed)
    gids = rng.integers(0, groups, n).astype(np.int64)
    panes = (rng.integers(-spread, spread, n) * SLIDE).astype(np.int64)
    order, starts, ends, seg_g, seg_p = group_pane_segments(gids, panes, SLIDE)
    want = np.lexsort((panes, gids))
    assert np.array_equal(order, want)
    g, p = gids[want], panes[want]
    first = [0] + [i for i in range(1, n) if (g[i], p[i]) != (g[i - 1], p[i - 1])]
    assert starts == first and ends == [*first[1:], n]
    assert seg_g == g[first].tolist() and seg_p == p[first].tolist()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    slide=st.sampled_from([1, 7, 10_000, 60_000]),
    groups=st.integers(1, 40),
    base=st.sampled_from([0, -5_000_000, 1_700_000_000_000]),
)
def test_ingest_marks_equal_the_numpy_pane_late_and_watermark_passes(seed, slide, groups, base):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    gids = rng.integers(0, groups, n).astype(np.int64)
    ts = base + rng.integers(-30, 30, n) * slide + rng.choice([0, 1, slide - 1], n)
    ts = ts.astype(np.int64)
    closed = np.where(rng.random(groups) < 0.3, np.iinfo(np.int64).min,
                      base + rng.integers(-10, 10, groups) * slide).astype(np.int64)  # fmt: skip
    max_t = np.full(groups, np.iinfo(np.int64).min, np.int64)
    max_t[: groups // 2] = base
    touched = np.zeros(groups, bool)
    reach = 5 * slide
    want_max, want_touched = max_t.copy(), touched.copy()
    np.maximum.at(want_max, gids, ts)
    want_touched[gids] = True
    spec = WindowSpec(6 * slide, slide)
    want_panes = spec.pane_ends(ts)
    panes, late, n_late, alive, n_dead, seen = _ingest_marks(
        gids, ts, closed, max_t, touched, slide, reach, groups
    )
    assert np.array_equal(panes, want_panes)
    assert np.array_equal(late, want_panes <= closed[gids]) and n_late == late.sum()
    assert np.array_equal(alive, want_panes + reach > closed[gids]) and n_dead == (~alive).sum()
    assert np.array_equal(max_t, want_max) and np.array_equal(touched, want_touched)
    assert np.array_equal(seen, np.unique(gids))


@settings(max_examples=100, deadline=None)
@given(
    panes=st.sets(st.integers(-50, 50), min_size=1, max_size=12),
    width=st.integers(1, 8),
    old=st.integers(-60, 60) | st.just(None),
    span=st.integers(0, 80),
)
def test_window_ends_of_a_close_equal_every_pane_s_windows_in_range(panes, width, old, span):
    spec = WindowSpec(width * SLIDE, SLIDE)
    group = {p * SLIDE: None for p in panes}
    lo = np.iinfo(np.int64).min if old is None else old * SLIDE
    target = (min(panes) if old is None else old) * SLIDE + span * SLIDE
    want = sorted({w for p in group for w in spec.window_ends_of_pane(p) if lo < w <= target})
    assert _window_ends(spec, group, lo, target) == want
