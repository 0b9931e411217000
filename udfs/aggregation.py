"""PromQL aggregation operators over a series × steps matrix.

Inputs: ``values[n_series, n_steps]``, ``present[n_series, n_steps]`` (absent ≠ NaN), per-series
``group_ids`` in ``[0, n_groups)``. Outputs ``(out[n_groups, n_steps], out_present)``; a group is
present at a step when at least one of its series is. Series order is the input row order, which
is the order upstream folds them in (``evaluator.aggregation`` in ``promql/engine.go``, main 2026).

Sequential folds (Kahan ``sum``, ``avg`` with its overflow fallback, Welford ``stddev``) walk the
*rank within group*: step ``r`` folds the ``r``-th series of every group at once, for all steps,
so the number of numpy calls is the largest group's size. Order-free reductions (count, min, max,
group, integer-exact sums) use one ``reduceat`` over rows sorted by group.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from promql.lexing import format_number
from udfs.quantile import go_sort_rows, quantile_rows
from udfs.scan import exact_integer_sums_possible, kahan_inc

Result = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class GroupLayout:
    """Rows sorted by group (stable), with each group's start and size."""

    order: np.ndarray  # row ids sorted by group, input order within a group
    starts: np.ndarray  # [n_groups] first position in ``order``
    sizes: np.ndarray  # [n_groups]

    @staticmethod
    def of(group_ids: np.ndarray, n_groups: int) -> GroupLayout:
        gids = np.asarray(group_ids, dtype=np.int64)
        order = np.argsort(gids, kind="stable")
        sizes = np.bincount(gids, minlength=n_groups).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return GroupLayout(order, starts, sizes)

    def ranks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(r, groups, rows)``: the ``r``-th row of every group that has one."""
        by_size = np.argsort(-self.sizes, kind="stable")
        neg = -self.sizes[by_size]
        for r in range(int(self.sizes.max()) if self.sizes.shape[0] else 0):
            n = int(np.searchsorted(neg, -r, side="left"))
            groups = by_size[:n]
            yield r, groups, self.order[self.starts[groups] + r]

    def reduce(self, ufunc: np.ufunc, data: np.ndarray, empty: float) -> np.ndarray:
        """``ufunc`` over each group's rows (axis 0); ``empty`` for groups without rows."""
        out = np.full((self.sizes.shape[0], data.shape[1]), empty, dtype=np.float64)
        nz = np.flatnonzero(self.sizes > 0)
        if nz.shape[0]:
            out[nz] = ufunc.reduceat(data[self.order], self.starts[nz], axis=0)
        return out


def _seen(present: np.ndarray, layout: GroupLayout) -> np.ndarray:
    return layout.reduce(np.add, present.astype(np.float64), 0.0) > 0


def count(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    layout = GroupLayout.of(group_ids, n_groups)
    out = layout.reduce(np.add, present.astype(np.float64), 0.0)
    return out, out > 0


def group(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    seen = _seen(present, GroupLayout.of(group_ids, n_groups))
    return np.where(seen, 1.0, np.nan), seen


def _extreme(
    ufunc: np.ufunc, values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int
) -> Result:
    # fmax/fmin skip NaN unless all are NaN: upstream's "replace a NaN accumulator" rule.
    layout = GroupLayout.of(group_ids, n_groups)
    data = np.where(present, values, np.nan)
    return layout.reduce(ufunc, data, np.nan), _seen(present, layout)


def max_(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    return _extreme(np.fmax, values, present, group_ids, n_groups)


def min_(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    return _extreme(np.fmin, values, present, group_ids, n_groups)


def _kahan_fold(
    values: np.ndarray, present: np.ndarray, layout: GroupLayout, n_steps: int, mean: bool
) -> Result:
    """Upstream's SUM / AVG fold: Kahan sum, AVG switching to an incremental mean on overflow."""
    g_n = layout.sizes.shape[0]
    s, c, mu = (np.zeros((g_n, n_steps)) for _ in range(3))
    cnt = np.zeros((g_n, n_steps))
    inc = np.zeros((g_n, n_steps), dtype=bool)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for _, groups, rows in layout.ranks():
            x, p = values[rows], present[rows]
            first = p & (cnt[groups] == 0)
            more = p & ~first
            cg = cnt[groups] + p
            new_s, new_c = kahan_inc(x, s[groups], c[groups])
            if not mean:
                s[groups] = np.where(first, x, np.where(more, new_s, s[groups]))
                c[groups] = np.where(more, new_c, c[groups])
                cnt[groups] = cg
                continue
            ig = inc[groups]
            ok = more & ~ig & ~np.isinf(new_s)
            switch = more & ~ig & np.isinf(new_s)
            sg = np.where(first, x, np.where(ok, new_s, s[groups]))
            kc = np.where(ok, new_c, c[groups])
            mg = np.where(switch, sg / (cg - 1), mu[groups])
            kc = np.where(switch, kc / (cg - 1), kc)
            ig = ig | switch
            q = (cg - 1) / cg
            m2, c2 = kahan_inc(x / cg, q * mg, q * kc)
            step = more & ig
            s[groups], cnt[groups], inc[groups] = sg, cg, ig
            mu[groups] = np.where(step, m2, mg)
            c[groups] = np.where(step, c2, kc)
        seen = cnt > 0
        out = np.where(inc, mu + c, s / cnt + c / cnt) if mean else s + c
    return np.where(seen, out, np.nan), seen


def _kahan_by_prefix(
    values: np.ndarray, present: np.ndarray, layout: GroupLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Upstream's sequential Kahan sum per (group, step) without a loop over series.

    Kahan–Neumaier's running sum is the plain running sum, so ``np.cumsum`` along the series
    axis (sequential, same rounding) gives every intermediate sum; each step's compensation term
    is then a vectorized Fast2Sum error, and their sequential sum is upstream's ``c``. Groups are
    padded to a cube; returns None when padding would be wasteful (unbalanced groups).
    Returns ``(sum, compensation, count, overflowed)`` per (group, step).
    """
    n_series, n_steps = values.shape
    n_groups = layout.sizes.shape[0]
    width = int(layout.sizes.max()) if n_groups else 0
    if width < 2 or n_groups * width > 4 * n_series + 1024:
        return None
    gid_sorted = np.repeat(np.arange(n_groups), layout.sizes)
    rank = np.arange(n_series) - layout.starts[gid_sorted]
    cube = np.zeros((n_groups, width, n_steps))
    cube[gid_sorted, rank] = np.where(present, values, 0.0)[layout.order]
    with np.errstate(invalid="ignore", over="ignore"):
        run = np.cumsum(cube, axis=1)
        prev, x, t = run[:, :-1], cube[:, 1:], run[:, 1:]
        big = np.abs(prev) >= np.abs(x)
        err = np.where(big, (prev - t) + x, (x - t) + prev)
        err[~np.isfinite(t)] = 0.0  # upstream resets c on overflow; the sum is then ±Inf/NaN
        comp = np.add.reduce(err, axis=1)  # reduced axis is not innermost: sequential
    count = layout.reduce(np.add, present.astype(np.float64), 0.0)
    return run[:, -1], comp, count, np.isinf(run).any(axis=1)


def sum_(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    n_steps = values.shape[1]
    total = np.zeros((n_groups, n_steps))
    comp = np.zeros((n_groups, n_steps))
    count = np.zeros((n_groups, n_steps), dtype=np.int64)
    gids = np.ascontiguousarray(group_ids, dtype=np.int64)
    _kahan_sum_rows(values, np.asarray(present, dtype=bool), gids, total, comp, count)
    seen = count > 0
    with np.errstate(invalid="ignore"):
        return np.where(seen, total + comp, np.nan), seen


@numba.njit(cache=True, nogil=True)
def _kahan_sum_rows(values, present, group_ids, total, comp, count):
    """Upstream's fold for ``sum``: series in input order, per (group, step) the first value,
    then ``kahanSumInc`` (Neumaier; the compensation restarts when the sum overflows). One pass
    over the matrix; the rank-by-rank numpy fold cost ~10 array passes per group rank."""
    n, k = values.shape
    for i in range(n):
        g = group_ids[i]
        for j in range(k):
            if not present[i, j]:
                continue
            x = values[i, j]
            if count[g, j] == 0:
                total[g, j] = x
            else:
                s = total[g, j]
                t = s + x
                if np.isinf(t):
                    comp[g, j] = 0.0
                elif abs(s) >= abs(x):
                    comp[g, j] += (s - t) + x
                else:
                    comp[g, j] += (x - t) + s
                total[g, j] = t
            count[g, j] += 1


def warm_up() -> None:
    """Compile the fold (or load it from numba's cache) before the first request."""
    sum_(np.ones((2, 2)), np.ones((2, 2), dtype=bool), np.zeros(2, np.int64), 1)


def avg(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    layout = GroupLayout.of(group_ids, n_groups)
    data = np.where(present, values, 0.0)
    if exact_integer_sums_possible(data.ravel()):
        seen = _seen(present, layout)
        n = layout.reduce(np.add, present.astype(np.float64), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = layout.reduce(np.add, data, 0.0) / n
        return np.where(seen, out, np.nan), seen
    fast = _kahan_by_prefix(values, present, layout)
    if fast is None:
        return _kahan_fold(values, present, layout, values.shape[1], mean=True)
    total, comp, count, overflowed = fast
    seen = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count + comp / count
    redo = np.flatnonzero(overflowed.any(axis=1))
    if redo.shape[0]:
        # Overflow switches upstream to an incremental mean: fold those groups exactly.
        rows = np.flatnonzero(np.isin(group_ids, redo))
        local = np.searchsorted(redo, np.asarray(group_ids)[rows])
        sub, _ = _kahan_fold(
            values[rows],
            present[rows],
            GroupLayout.of(local, redo.shape[0]),
            values.shape[1],
            mean=True,
        )
        out[redo] = sub
    return np.where(seen, out, np.nan), seen


def _welford(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int
) -> Result:
    layout = GroupLayout.of(group_ids, n_groups)
    shape = (n_groups, values.shape[1])
    m2, mean, cnt = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for _, groups, rows in layout.ranks():
            x, p = values[rows], present[rows]
            first = p & (cnt[groups] == 0)
            more = p & ~first
            cg = cnt[groups] + p
            d = x - mean[groups]
            new_mean = mean[groups] + d / cg
            new_m2 = m2[groups] + d * (x - new_mean)
            # The first sample starts M2 at 0, or NaN when it is NaN/±Inf (upstream).
            m2_first = np.where(np.isfinite(x), 0.0, np.nan)
            m2[groups] = np.where(first, m2_first, np.where(more, new_m2, m2[groups]))
            mean[groups] = np.where(first, x, np.where(more, new_mean, mean[groups]))
            cnt[groups] = cg
        seen = cnt > 0
        return np.where(seen, m2 / cnt, np.nan), seen


def stdvar(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    return _welford(values, present, group_ids, n_groups)


def stddev(values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int) -> Result:
    var, seen = _welford(values, present, group_ids, n_groups)
    with np.errstate(invalid="ignore"):
        return np.sqrt(var), seen


def quantile(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int, phi: np.ndarray
) -> Result:
    """φ-quantile per (group, step); ``phi`` is a per-step float64 array."""
    layout = GroupLayout.of(group_ids, n_groups)
    n_steps = values.shape[1]
    width = int(layout.sizes.max()) if n_groups and layout.sizes.shape[0] else 0
    cube = np.full((n_groups, max(width, 1), n_steps), np.nan)
    pcube = np.zeros(cube.shape, dtype=bool)
    for r, groups, rows in layout.ranks():  # one numpy call per rank, not per series
        cube[groups, r] = values[rows]
        pcube[groups, r] = present[rows]
    # Compact present values to the front of each (group, step), keeping input order.
    front = np.argsort(~pcube, axis=1, kind="stable")
    cube = np.take_along_axis(np.where(pcube, cube, np.nan), front, axis=1)
    sizes = pcube.sum(axis=1)  # [n_groups, n_steps]
    rows2 = cube.transpose(0, 2, 1).reshape(n_groups * n_steps, -1)
    flat_sizes = sizes.reshape(-1)
    q = np.broadcast_to(np.asarray(phi, dtype=np.float64), (n_steps,))
    out = quantile_rows(np.tile(q, n_groups), go_sort_rows(rows2, flat_sizes), flat_sizes)
    seen = sizes > 0
    return np.where(seen, out.reshape(n_groups, n_steps), np.nan), seen


def _k_per_step(k: np.ndarray, n_steps: int, n_series: int) -> np.ndarray:
    kf = np.broadcast_to(np.asarray(k, dtype=np.float64), (n_steps,))
    with np.errstate(invalid="ignore"):
        # Go's int64(NaN) is the minimum int64, i.e. "k < 1": nothing is kept.
        ki = np.where(np.isnan(kf), -1, np.clip(kf, -1, n_series + 1)).astype(np.int64)
    return np.minimum(ki, n_series)


def _sortable(values: np.ndarray) -> np.ndarray:
    """int64 keys ordered like the floats (``-0`` equal to ``0``); NaN must be masked by caller."""
    with np.errstate(invalid="ignore"):
        bits = (np.where(np.isnan(values), 0.0, values) + 0.0).view(np.int64)
    return np.where(bits < 0, bits ^ np.int64(0x7FFFFFFFFFFFFFFF), bits)


def _rank_in_group(key: np.ndarray, group_ids: np.ndarray) -> np.ndarray:
    """Per step, each series' 0-based rank within its group by ``key`` (ties: input order)."""
    n_series, n_steps = key.shape
    order = np.argsort(key, axis=0, kind="stable")
    gid = np.asarray(group_ids, dtype=np.int64)
    small = gid.astype(np.int16) if gid.max(initial=0) < 2**15 else gid  # radix-sortable
    g_perm = small[order]
    order = np.take_along_axis(order, np.argsort(g_perm, axis=0, kind="stable"), axis=0)
    g_sorted = gid[order]
    pos = np.broadcast_to(np.arange(n_series)[:, None], (n_series, n_steps))
    new_group = np.ones((n_series, n_steps), dtype=bool)
    new_group[1:] = g_sorted[1:] != g_sorted[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=0)
    rank = np.empty((n_series, n_steps), dtype=np.int64)
    np.put_along_axis(rank, order, pos - group_start, axis=0)
    return rank


def _select_k(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, k: np.ndarray, descending: bool
) -> np.ndarray:
    n_series, n_steps = values.shape
    if n_series == 0:
        return np.zeros((0, n_steps), dtype=bool)
    key = _sortable(values)
    if descending:
        key = ~key  # reverses the order without overflow
    # Real numbers first, NaN after them (upstream evicts NaN first), absent last.
    top = np.iinfo(np.int64).max
    key = np.where(np.isnan(values), top - 1, key)
    key = np.where(present, key, top)
    rank = _rank_in_group(key, group_ids)
    return present & (rank < _k_per_step(k, n_steps, n_series)[None, :])


def topk(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int, k: np.ndarray
) -> np.ndarray:
    """Selection mask of the k largest per (group, step); ties keep the earlier series."""
    return _select_k(values, present, group_ids, k, descending=True)


def bottomk(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int, k: np.ndarray
) -> np.ndarray:
    return _select_k(values, present, group_ids, k, descending=False)


def limitk(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int, k: np.ndarray
) -> np.ndarray:
    """The first k present series per (group, step), in input order."""
    n_series, n_steps = values.shape
    if n_series == 0:
        return np.zeros((0, n_steps), dtype=bool)
    rank = _rank_in_group((~present).astype(np.int64), group_ids)
    return present & (rank < _k_per_step(k, n_steps, n_series)[None, :])


def limit_ratio(
    values: np.ndarray,
    present: np.ndarray,
    group_ids: np.ndarray,
    n_groups: int,
    ratio: np.ndarray,
    hashes: np.ndarray,
) -> np.ndarray:
    """Series whose label hash offset falls inside the ratio (``HashRatioSampler``).

    ``hashes`` are the series' uint64 label-set hashes (``labels.Hash()`` upstream).
    """
    n_steps = values.shape[1]
    r = np.clip(np.broadcast_to(np.asarray(ratio, dtype=np.float64), (n_steps,)), -1.0, 1.0)
    offset = np.asarray(hashes, dtype=np.uint64).astype(np.float64) / float(2**64 - 1)
    off = offset[:, None]
    with np.errstate(invalid="ignore"):
        keep = ((r >= 0) & (off < r)) | ((r < 0) & (off >= 1.0 + r))
    return present & keep & (r != 0)[None, :]


def count_values(
    values: np.ndarray, present: np.ndarray, group_ids: np.ndarray, n_groups: int
) -> tuple[np.ndarray, ...]:
    """Distinct values per (group, step) and their counts.

    Returns ``(out_group[n_out], out_value[n_out], counts[n_out, n_steps], out_present)``: one
    output series per distinct (group, value); all NaNs are one value, ``-0`` and ``0`` differ
    (upstream keys by the formatted value). Format ``out_value`` with ``format_value_label``.
    """
    n_series, n_steps = values.shape
    canon = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    bits = np.ascontiguousarray(canon).view(np.uint64)
    gid = np.broadcast_to(np.asarray(group_ids, dtype=np.uint64)[:, None], (n_series, n_steps))
    sel = present.ravel()
    pairs = np.stack([gid.ravel()[sel], bits.ravel()[sel]], axis=1)
    steps = np.broadcast_to(np.arange(n_steps)[None, :], (n_series, n_steps)).ravel()[sel]
    if pairs.shape[0] == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, np.zeros((0, n_steps)), np.zeros((0, n_steps), bool)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    counts = np.zeros((uniq.shape[0], n_steps))
    np.add.at(counts, (inverse.ravel(), steps), 1.0)
    out_value = uniq[:, 1].copy().view(np.float64)
    return uniq[:, 0].astype(np.int64), out_value, counts, counts > 0


def format_value_label(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest round-trip digits, never exponent.

    The digits are the shortest that round-trip, then zero padding: ``4.006582132000296e46``
    prints as ``40065821320002960000...``, not as the float's exact decimal expansion.
    """
    return format_number(float(v))
