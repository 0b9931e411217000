"""``histogram_quantile`` / ``histogram_fraction`` over classic ``le`` buckets.

Follows ``BucketQuantile`` / ``BucketFraction`` in Prometheus ``promql/quantile.go`` (main 2026):
buckets sorted by upper bound, a +Inf bucket required (else NaN), equal upper bounds coalesced
(counts added), for the quantile the monotonicity fix-up (``ensureMonotonicAndIgnoreSmallDeltas``
with tolerance 1e-12), then linear interpolation inside the bucket holding the rank (the first
bucket's lower bound is 0 unless its upper bound is <= 0).

Layout: the buckets of group ``g`` are rows ``group_offsets[g]:group_offsets[g+1]`` of
``counts[n_buckets, n_steps]``, sorted by ``upper_bounds``. ``present`` (optional) marks which
bucket series have a sample at each step; a group is output at a step when any bucket is. The
quantile walks each (group, step) cell in compiled code (``udfs.histogram_kernels``); the
fraction loops over *bucket position* (a few dozen), vectorized over all (group, step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udfs.histogram_kernels import quantile_cells

Result = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Cells:
    """Per (group, step) cell: its present buckets compacted and coalesced, as [cells, width]."""

    ub: np.ndarray
    count: np.ndarray
    size: np.ndarray  # valid buckets per cell
    present: np.ndarray  # [n_groups, n_steps]


def _compact(keep: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(~keep, axis=1, kind="stable")
    return [np.take_along_axis(a, order, axis=1) for a in arrays]


def _cells(
    upper_bounds: np.ndarray,
    counts: np.ndarray,
    group_offsets: np.ndarray,
    present: np.ndarray | None,
) -> _Cells:
    counts = np.asarray(counts, dtype=np.float64)
    n_buckets, n_steps = counts.shape
    pres = np.ones(counts.shape, bool) if present is None else np.asarray(present, bool)
    bounds = np.asarray(upper_bounds, np.float64)
    if n_buckets == 0:  # one absent dummy bucket keeps the gathers below well-formed
        bounds, counts, pres = np.zeros(1), np.zeros((1, n_steps)), np.zeros((1, n_steps), bool)
    offsets = np.asarray(group_offsets, dtype=np.int64)
    n_groups = offsets.shape[0] - 1
    sizes = np.diff(offsets)
    width = max(int(sizes.max()) if n_groups else 0, 1)
    # Row of bucket j of group g (padding points at row 0 and is masked out).
    j = np.arange(width)
    valid = j[None, :] < sizes[:, None]
    rows = np.where(valid, offsets[:-1, None] + j[None, :], 0)
    ub = np.broadcast_to(bounds[rows][:, :, None], (*rows.shape, n_steps))
    cnt = counts[rows]
    ok = pres[rows] & valid[:, :, None]

    # Cells as rows: [n_groups * n_steps, width].
    def flat(a: np.ndarray) -> np.ndarray:
        return a.transpose(0, 2, 1).reshape(n_groups * n_steps, width)

    ub, cnt, ok = flat(ub), flat(cnt), flat(ok)
    ub, cnt, ok = _compact(ok, ub, cnt, ok)
    size = ok.sum(axis=1)
    cell_present = (size > 0).reshape(n_groups, n_steps)
    # Coalesce equal upper bounds into the last bucket of each run, summing forward.
    dup = np.zeros(ok.shape, bool)
    dup[:, 1:] = ok[:, 1:] & (ub[:, 1:] == ub[:, :-1])
    if dup.any():
        cnt = cnt.copy()
        for k in range(1, width):
            d = dup[:, k]
            cnt[d, k] = cnt[d, k - 1] + cnt[d, k]
        keep = ok.copy()
        keep[:, :-1] &= ~dup[:, 1:]
        ub, cnt = _compact(keep, ub, cnt)
        size = keep.sum(axis=1)
    return _Cells(ub, cnt, size, cell_present)


def _at(a: np.ndarray, idx: np.ndarray | int) -> np.ndarray:
    i = np.broadcast_to(np.clip(idx, 0, a.shape[1] - 1), (a.shape[0],))
    return np.take_along_axis(a, i[:, None], axis=1)[:, 0]


def _has_inf_bucket(c: _Cells) -> np.ndarray:
    return (c.size > 0) & (_at(c.ub, c.size - 1) == np.inf)


def histogram_quantile(
    q: np.ndarray,
    upper_bounds: np.ndarray,
    counts: np.ndarray,
    group_offsets: np.ndarray,
    present: np.ndarray | None = None,
) -> Result:
    """φ-quantile per (group, step); ``q`` is per step. Returns ``(out, out_present)``."""
    counts = np.asarray(counts, dtype=np.float64)
    n_steps = counts.shape[1]
    offsets = np.ascontiguousarray(group_offsets, dtype=np.int64)
    n_groups = offsets.shape[0] - 1
    pres = np.ones(counts.shape, bool) if present is None else np.asarray(present, bool)
    out = np.empty((n_groups, n_steps))
    out_present = np.empty((n_groups, n_steps), bool)
    quantile_cells(
        np.ascontiguousarray(np.broadcast_to(np.asarray(q, np.float64), (n_steps,))),
        np.ascontiguousarray(upper_bounds, dtype=np.float64),
        counts,
        offsets,
        pres,
        out,
        out_present,
    )
    return out, out_present


def _fraction_cells(lower: np.ndarray, upper: np.ndarray, c: _Cells) -> np.ndarray:
    m = c.ub.shape[0]
    total = _at(c.count, c.size - 1)
    rank = np.zeros(m)
    lo_rank, up_rank = np.zeros(m), np.zeros(m)
    lo_set, up_set = np.zeros(m, bool), np.zeros(m, bool)
    first_lb = np.where(c.ub[:, 0] <= 0, -np.inf, 0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k in range(c.ub.shape[1]):
            live = k < c.size
            lb = first_lb if k == 0 else c.ub[:, k - 1]
            ub, bc = c.ub[:, k], c.count[:, k]

            def interp(v: np.ndarray, lb=lb, ub=ub, bc=bc, rank=rank) -> np.ndarray:
                # No interpolation inside a bucket starting at -Inf (upstream returns its count).
                return np.where(lb == -np.inf, bc, rank + (bc - rank) * (v - lb) / (ub - lb))

            for at_edge, rk, is_set in (
                (lb >= lower, lo_rank, lo_set),
                (lb >= upper, up_rank, up_set),
            ):
                edge = live & ~is_set & at_edge
                rk[:] = np.where(edge, rank, rk)
                is_set |= edge
            done = lo_set & up_set
            for within, rk, is_set, v in (
                ((lb < lower) & (ub > lower), lo_rank, lo_set, lower),
                ((lb < upper) & (ub > upper), up_rank, up_set, upper),
            ):
                w = live & ~done & ~is_set & within
                rk[:] = np.where(w, interp(v), rk)
                is_set |= w
            rank = np.where(live, bc, rank)
        lo_rank = np.where(~lo_set | (lo_rank > total), total, lo_rank)
        up_rank = np.where(~up_set | (up_rank > total), total, up_rank)
        out = (up_rank - lo_rank) / total
    out = np.where(lower >= upper, 0.0, out)
    bad = ~_has_inf_bucket(c) | (total == 0) | np.isnan(lower) | np.isnan(upper)
    return np.where(bad, np.nan, out)


def histogram_fraction(
    lower: np.ndarray,
    upper: np.ndarray,
    upper_bounds: np.ndarray,
    counts: np.ndarray,
    group_offsets: np.ndarray,
    present: np.ndarray | None = None,
) -> Result:
    """Estimated fraction of observations in ``[lower, upper]``; bounds are per step."""
    c = _cells(upper_bounds, counts, group_offsets, present)
    n_groups, n_steps = c.present.shape

    def per_cell(x: np.ndarray) -> np.ndarray:
        return np.tile(np.broadcast_to(np.asarray(x, np.float64), (n_steps,)), n_groups)

    out = _fraction_cells(per_cell(lower), per_cell(upper), c).reshape(n_groups, n_steps)
    return np.where(c.present, out, np.nan), c.present
