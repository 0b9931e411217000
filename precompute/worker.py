"""One shared-nothing worker: panes, per-group event-time watermarks, lateness, late-data policy,
window closing, idle advancement and snapshot/restore.

Keyed types (MultipleSum, MultipleMinMax, MultipleIncrease, MultipleLast) run columnar over
*cells*, the distinct (group, sub key) pairs (``precompute/cells.py``): samples update cell rows,
and closing a group closes its cells with the group's window ends.

A group is one (aggregation, key); each group lives on exactly one worker (the router hashes
groups). Each sample updates one pane; a group's watermark is ``max event time −
allowed_lateness_ms`` (or the idle floor set by the flush timer), and every window whose end is at
or below the watermark is closed by merging its panes and emitted. A sample is late *for a
window* when that window has already closed: ``Drop`` leaves it out of closed windows (still
counting it in windows that are open), ``ForwardToStore`` emits a mini-accumulator to every closed
window that contains it. Python runs per (group, pane) segment of a batch, never per sample.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from precompute import holes
from precompute.accumulators.base import Accumulator
from precompute.accumulators.kll import SlidingKLLMerge
from precompute.accumulators.registry import BY_NAME, make_accumulator
from precompute.cells import CellTable, ColumnarLast
from precompute.columnar import (
    MOMENT_TYPES,
    ColumnarCounters,
    ColumnarPanes,
    SlidingCounterMerge,
    keyed_counter_window,
)
from precompute.config import AggregationConfig, EngineOptions, LateDataPolicy
from precompute.output import PrecomputedOutput
from precompute.router import WorkItem
from precompute.window_batch import CELL_KINDS, KeyRows, WindowBatch, count_windows
from precompute.windows import WindowSpec, group_pane_order, group_pane_segments

Key = tuple[str, ...]
# Columnar aggregations emit one WindowBatch per window-close event; others one pair per window.
Emit = tuple[PrecomputedOutput, Accumulator] | WindowBatch
_MIN = np.iinfo(np.int64).min
# Keyed types whose every group holds one key (no aggregated labels) are their plain twin.
_PLAIN_TWIN = {"MultipleSum": "Sum", "MultipleMinMax": "MinMax", "MultipleIncrease": "Increase"}
_group_pane_order = group_pane_order  # the tests' name for it
# Object-path types whose updates read only the values: their samples' times are not gathered.
_VALUES_ONLY = frozenset({"DatasketchesKLL"})
_NO_TIMES = np.zeros(0, np.int64)


def columnar_kind(config: AggregationConfig) -> str:
    """The accumulator type the worker runs for ``config``: a keyed type without aggregated
    labels keeps one key, the empty one, per group, so its windows are the plain twin's, held
    as columns over groups instead of one keyed object per group (~100× faster ingest when
    grouped per series). The query side reads both the same way (rows per series key)."""
    kind = config.aggregation_type
    if kind in _PLAIN_TWIN and not config.labels.aggregated:
        return _PLAIN_TWIN[kind]
    return kind


@dataclass
class AggCounters:
    samples_in: int = 0
    dropped_late: int = 0
    forwarded_late: int = 0
    windows_emitted: int = 0


@dataclass
class AggState:
    config: AggregationConfig
    spec: WindowSpec
    group_keys: list[Key] = field(default_factory=list)
    sub_keys: list[Key] = field(default_factory=list)
    max_t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    closed: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    floor: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    panes: dict[int, dict[int, Accumulator]] = field(default_factory=dict)
    counters: AggCounters = field(default_factory=AggCounters)
    # Moments family and Increase: panes as arrays over group ids (see precompute/columnar.py).
    columnar: ColumnarPanes | ColumnarCounters | ColumnarLast | None = None
    # Keyed types run columnar over cells (group, sub key): the cell table, rows of ``columnar``.
    cells: CellTable | None = None
    # Keyed counter groups (MultipleIncrease), sliding: cached partial merges per group id.
    # DatasketchesKLL groups, sliding (3+ panes per window): the same, over KLL panes.
    sliding: dict[int, SlidingCounterMerge | SlidingKLLMerge] = field(default_factory=dict)
    # Window ends whose windows lack samples dropped as late (precompute/holes.py).
    holes: list[tuple[int, int]] = field(default_factory=list)
    # A new empty accumulator of the config's type and parameters (object-path panes).
    fresh_accumulator: Callable[[], Accumulator] | None = None

    def add_keys(self, groups: Iterable[Key], subs: Iterable[Key]) -> None:
        self.group_keys.extend(groups)
        self.sub_keys.extend(subs)
        extra = len(self.group_keys) - self.max_t.shape[0]
        if extra > 0:
            self.max_t = np.append(self.max_t, np.full(extra, _MIN))
            self.closed = np.append(self.closed, np.full(extra, _MIN))
            self.floor = np.append(self.floor, np.full(extra, _MIN))
            self.touched = np.append(self.touched, np.zeros(extra, bool))


def _window_ends(spec: WindowSpec, group: dict[int, Any], old: int, target: int) -> list[int]:
    """Ends in ``(old, target]`` of the windows holding at least one of ``group``'s panes
    (pane ends), ascending. Usually one candidate end is checked against the sorted panes;
    after a long gap in a group's data, the panes' own window ends are collected instead."""
    slide, size = spec.slide_ms, spec.size_ms
    panes = sorted(group)
    first = max(old + slide, panes[0])
    last = min(target, panes[-1] + size - slide)
    if first > last:
        return []
    if (last - first) // slide + 1 > len(panes) * spec.panes_per_window:
        ends = {w for p in panes for w in spec.window_ends_of_pane(p) if old < w <= target}
        return sorted(ends)
    out = []
    for w in range(first, last + 1, slide):
        i = bisect.bisect_right(panes, w)  # the newest pane ≤ w is inside (w − size, w]?
        if i and panes[i - 1] > w - size:
            out.append(w)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ingest_marks(gids, ts, closed, max_t, touched, slide, reach, n_groups):
    """One pass over a work item: each sample's pane end (the smallest slide multiple ≥ its
    time); which samples are late (pane already closed for their group) and which still feed an
    open window, with counts; ``max_t`` and ``touched`` updated in place; and, when
    ``n_groups`` > 0, the distinct group ids, ascending (a mark table of that size)."""
    n = gids.shape[0]
    panes = np.empty(n, np.int64)
    late = np.empty(n, np.bool_)
    alive = np.empty(n, np.bool_)
    mark = np.zeros(n_groups, np.bool_)
    n_late, n_dead, n_seen = 0, 0, 0
    inv = 1.0 / slide
    for i in range(n):
        t, g = ts[i], gids[i]
        # A float quotient corrected by whole slides: exact, without an integer division.
        p = np.int64(t * inv) * slide
        while p < t:
            p += slide
        while p - slide >= t:
            p -= slide
        panes[i] = p
        c = closed[g]
        late[i] = p <= c
        alive[i] = p + reach > c
        n_late += late[i]
        n_dead += not alive[i]
        if t > max_t[g]:
            max_t[g] = t
        touched[g] = True
        if n_groups and not mark[g]:
            mark[g] = True
            n_seen += 1
    seen = np.empty(n_seen, np.int64)
    j = 0
    for g in range(n_groups):
        if mark[g]:
            seen[j] = g
            j += 1
    return panes, late, n_late, alive, n_dead, seen


def _distinct(ids: np.ndarray, size: int) -> np.ndarray:
    """Sorted distinct ids in ``[0, size)``: a mark table beats hashing/sorting per batch."""
    if ids.shape[0] * 8 < size:
        return np.unique(ids)
    mark = np.zeros(size, dtype=bool)
    mark[ids] = True
    return np.flatnonzero(mark)


class Worker:
    def __init__(
        self, configs: Iterable[AggregationConfig], options: EngineOptions, cells: bool = True
    ) -> None:
        """``cells=False`` keeps keyed types on one keyed accumulator object per (group, pane)
        (the reference the cell path is tested against)."""
        self.options = options
        self.use_cells = cells
        self.aggs: dict[int, AggState] = {}
        for config in configs:
            self.add_config(config)

    # --- configuration --------------------------------------------------------------------

    def add_config(self, config: AggregationConfig) -> None:
        spec = WindowSpec(config.window_size_ms, config.slide_interval_ms)
        st = AggState(config, spec)
        st.fresh_accumulator = make_accumulator(
            config, self.options.max_buffer_per_series
        ).empty_like
        kind = columnar_kind(config)
        if kind in MOMENT_TYPES:
            st.columnar = ColumnarPanes(BY_NAME[kind], spec)  # type: ignore[arg-type]
        elif kind == "Increase":
            st.columnar = ColumnarCounters(spec, self.options.max_buffer_per_series)
        elif kind in CELL_KINDS and self.use_cells:
            st.cells = CellTable()
            if kind == "MultipleIncrease":
                st.columnar = ColumnarCounters(spec, self.options.max_buffer_per_series)
            elif kind == "MultipleLast":
                st.columnar = ColumnarLast(spec)
            else:  # the keyed moments: sum/count/min/max rows, as the plain moments
                st.columnar = ColumnarPanes(BY_NAME["Sum"], spec)  # type: ignore[arg-type]
        self.aggs[config.aggregation_id] = st

    def remove_config(self, aggregation_id: int) -> None:
        self.aggs.pop(aggregation_id, None)

    # --- ingest ---------------------------------------------------------------------------

    def process(self, item: WorkItem) -> list[Emit]:
        st = self.aggs.get(item.aggregation_id)
        if st is None:
            return []  # the aggregation was removed while this item was queued
        st.add_keys(item.new_group_keys, item.new_sub_keys)
        n = len(item)
        if n == 0:
            return []
        st.counters.samples_in += n
        gids, ts, vals = item.group_ids, item.timestamps, item.values
        subs = item.sub_ids
        spec = st.spec
        n_groups = len(st.group_keys)
        # One compiled pass: pane ends, late/alive against the closes before this item, the
        # groups' newest times and touched flags (watermarks read them only when closing).
        few = n * 8 < n_groups  # a few groups of a big table: np.unique beats a mark table
        panes, late, n_late, alive, n_dead, seen = _ingest_marks(
            gids, ts, st.closed, st.max_t, st.touched, spec.slide_ms,
            spec.size_ms - spec.slide_ms, 0 if few else n_groups,
        )  # fmt: skip
        panes, late, alive = panes.view(np.int64), late.view(np.bool_), alive.view(np.bool_)
        out: list[Emit] = []
        if n_late:
            out += self._late(st, late, gids, panes, ts, vals, subs)
        if n_dead:
            idx = np.flatnonzero(alive)
            gids_a, panes_a, ts_a, vals_a = gids[idx], panes[idx], ts[idx], vals[idx]
            subs_a = None if subs is None else subs[idx]
        else:
            gids_a, panes_a, ts_a, vals_a, subs_a = gids, panes, ts, vals, subs
        self._apply(st, gids_a, panes_a, ts_a, vals_a, subs_a)
        out += self._close_due(st, np.unique(gids) if few else seen.view(np.int64))
        return out

    def _apply(self, st: AggState, gids, panes, ts, vals, subs) -> None:
        if gids.shape[0] == 0:
            return
        if st.cells is not None:
            cells = st.cells.intern(gids, subs, st.group_keys, st.sub_keys)
            st.columnar.update(cells, panes, ts, vals, len(st.cells))  # type: ignore[union-attr]
            return
        if st.columnar is not None:
            st.columnar.update(gids, panes, ts, vals, len(st.group_keys))
            return
        order, starts, ends, seg_g, seg_p = group_pane_segments(gids, panes, st.spec.slide_ms)
        vals = vals[order]
        values_only = st.config.aggregation_type in _VALUES_ONLY
        ts = _NO_TIMES if values_only else ts[order]
        subs = None if subs is None else subs[order]
        fresh, all_panes, sliding = st.fresh_accumulator, st.panes, st.sliding
        for s, e, g, p in zip(starts, ends, seg_g, seg_p, strict=True):
            group = all_panes.get(g)
            if group is None:
                group = all_panes[g] = {}
            acc = group.get(p)
            if acc is None:
                acc = group[p] = fresh()
            if values_only:
                acc.update(vals[s:e], ts)
            else:
                acc.update(vals[s:e], ts[s:e], st.sub_keys, None if subs is None else subs[s:e])
            if g in sliding:  # new samples in a pane it may have merged already
                sliding[g].touch(p)

    def _late(self, st: AggState, late, gids, panes, ts, vals, subs) -> list[Emit]:
        idx = np.flatnonzero(late)
        if self.options.late_data_policy != LateDataPolicy.FORWARD_TO_STORE:
            st.counters.dropped_late += int(idx.shape[0])
            # The group's closed windows holding these panes miss the samples: the query side
            # must answer them from raw data (ends from the pane's own to the group's closed).
            p, spec = panes[idx], st.spec
            reach = np.minimum(p + (spec.size_ms - spec.slide_ms), st.closed[gids[idx]])
            st.holes = holes.merge(st.holes, p - spec.slide_ms, reach)
            return []
        st.counters.forwarded_late += int(idx.shape[0])
        gids, panes, ts, vals = gids[idx], panes[idx], ts[idx], vals[idx]
        subs = None if subs is None else subs[idx]
        order, starts, ends, seg_g, seg_p = group_pane_segments(gids, panes, st.spec.slide_ms)
        ts, vals = ts[order], vals[order]
        subs = None if subs is None else subs[order]
        out: list[Emit] = []
        for s, e, g, p in zip(starts, ends, seg_g, seg_p, strict=True):
            mini = st.fresh_accumulator()
            mini.update(vals[s:e], ts[s:e], st.sub_keys, None if subs is None else subs[s:e])
            closed_ends = [w for w in st.spec.window_ends_of_pane(p) if w <= st.closed[g]]
            for i, w in enumerate(closed_ends):
                acc = mini if i == len(closed_ends) - 1 else mini.snapshot()
                out.append((self._output(st, g, w), acc))
        st.counters.windows_emitted += len(out)
        return out

    def _output(self, st: AggState, gid: int, window_end: int) -> PrecomputedOutput:
        return PrecomputedOutput(
            st.config.aggregation_id, st.group_keys[gid], st.spec.start_of(window_end), window_end
        )

    # --- closing --------------------------------------------------------------------------

    def _watermarks(self, st: AggState, gids: np.ndarray) -> np.ndarray:
        own = st.max_t[gids]
        own = np.where(own == _MIN, _MIN, own - self.options.allowed_lateness_ms)
        return np.maximum(own, st.floor[gids])

    def _close_due(self, st: AggState, gids: np.ndarray) -> list[Emit]:
        if gids.shape[0] == 0:
            return []
        wm = self._watermarks(st, gids)
        slide = st.spec.slide_ms
        # A window (s, e] closes once the watermark is past e: a sample at exactly the watermark
        # time (another series of the group at the same scrape) is still on time.
        target = np.where(wm == _MIN, _MIN, ((wm - 1) // slide) * slide)
        due = np.flatnonzero(target > st.closed[gids])
        return self._close_groups(st, gids[due], target[due])

    def _close_groups(self, st: AggState, gids: np.ndarray, targets: np.ndarray) -> list[Emit]:
        if gids.shape[0] == 0:
            return []
        out: list[Emit] = []
        old = st.closed[gids].copy()
        st.closed[gids] = targets
        if st.panes:
            # The key table holds every group of the aggregation, most of them on other workers:
            # only groups with open panes here need Python. (Keyed object panes restored into a
            # cell-path worker from an older snapshot close here too.)
            pos = {g: i for i, g in enumerate(gids.tolist())}
            for g in sorted(st.panes.keys() & pos.keys()):
                i = pos[g]
                out += self._close_group(st, g, int(old[i]), int(targets[i]))
        if st.columnar is None:
            return out
        emitted = len(out)
        agg_id, kind, keys = st.config.aggregation_id, columnar_kind(st.config), st.group_keys
        max_buffer = self.options.max_buffer_per_series
        rows_of, n_rows, width = gids, len(st.group_keys), None
        if st.cells is not None:  # a group's close closes its cells with its window ends
            rows_of, old, targets = st.cells.of_groups(gids, old, targets, len(st.group_keys))
            keys, n_rows, width = st.cells.keys, len(st.cells), len(st.config.labels.grouping)
        for rows, w, columns in st.columnar.close(rows_of, old, targets, n_rows):
            out.append(
                WindowBatch(agg_id, kind, st.spec.start_of(w), w, KeyRows(keys, rows), columns,
                            max_buffer, width)
            )  # fmt: skip
        if st.cells is None:
            st.counters.windows_emitted += count_windows(out[emitted:])
        else:  # a window is a (group, window end), not a cell row
            gid_of, n = st.cells.cell_gid, len(st.group_keys)
            for b in out[emitted:]:
                st.counters.windows_emitted += _distinct(gid_of[b.keys.rows], n).shape[0]
        return out

    def _close_group(self, st: AggState, g: int, old: int, target: int) -> list[Emit]:
        """Emit every window of group ``g`` ending in ``(old, target]``, evict spent panes."""
        spec = st.spec
        group = st.panes.get(g)
        if not group:
            return []
        out: list[Emit] = []
        single = spec.panes_per_window == 1
        for w in _window_ends(spec, group, old, target):
            merged = group.pop(w) if single else self._window(st, g, w, group)
            out.append((self._output(st, g, w), merged))
        cut = target - (spec.size_ms - spec.slide_ms)  # panes whose last window has closed
        for p in [p for p in group if p <= cut]:
            del group[p]
        if not group:
            del st.panes[g]
            st.sliding.pop(g, None)
        st.counters.windows_emitted += len(out)
        return out

    def _window(self, st: AggState, g: int, w: int, group: dict[int, Accumulator]) -> Accumulator:
        """The merge of group ``g``'s panes of window ``w`` (a new accumulator): the two-stack
        sliding merges for KLL and keyed counter panes, else pane by pane."""
        ends = list(st.spec.pane_ends_of_window(w))
        if len(ends) >= 3 and st.config.aggregation_type == "DatasketchesKLL":
            sliding = st.sliding.get(g)
            if sliding is None:
                sliding = st.sliding[g] = SlidingKLLMerge()
            merged = sliding.window(ends, group)  # type: ignore[union-attr, arg-type]
            if merged is not None:
                return merged
        else:
            merged = self._keyed_window(st, g, ends, group)
            if merged is not None:
                return merged
        parts = [group[p] for p in ends if p in group]
        merged = parts[0].empty_like()
        for part in parts:
            merged.merge(part)
        return merged

    def _keyed_window(self, st: AggState, g: int, ends: list[int], group: dict[int, Accumulator]):
        """Keyed counter panes: the two-stack sliding merge (3+ panes per window) or one
        ``merge_pair`` chain; None for other types (merged pane by pane)."""
        if len(ends) >= 3 and getattr(type(next(iter(group.values()))), "table_of", None):
            sliding = st.sliding.get(g)
            if sliding is None:
                sliding = st.sliding[g] = SlidingCounterMerge()
            merged = keyed_counter_window(sliding, ends, group)  # type: ignore[arg-type]
            if merged is not None:
                return merged
        parts = [group[p] for p in ends if p in group]
        fast = getattr(type(parts[0]), "merged_panes", None) if parts else None
        return fast(parts) if fast is not None else None

    def max_event_times(self) -> dict[int, int]:
        """Per aggregation, the newest event time this worker has seen (None-free: MIN if none)."""
        return {
            a: int(st.max_t.max()) if st.max_t.shape[0] else _MIN for a, st in self.aggs.items()
        }

    def flush(self, agg_event_times: dict[int, int] | None = None) -> list[Emit]:
        """Flush-timer tick: groups idle since the last tick advance to the aggregation's event-time
        watermark (never beyond it, so idle groups do not creep ahead of the data)."""
        own = self.max_event_times()
        out: list[Emit] = []
        for agg_id, st in self.aggs.items():
            # The engine's figure covers every worker (and is capped against far-future
            # samples); without one (tests driving a worker directly) use this worker's own.
            newest = (agg_event_times or {}).get(agg_id, own[agg_id])
            if newest != _MIN:
                floor = newest - self.options.allowed_lateness_ms
                idle = np.flatnonzero(~st.touched)
                st.floor[idle] = np.maximum(st.floor[idle], floor)
                out += self._close_due(st, idle)
            st.touched[:] = False
        return out

    def close_all(self) -> list[Emit]:
        """Close every window that has data (end of a finite stream; tests and benchmarks)."""
        out: list[Emit] = []
        for st in self.aggs.values():
            if st.columnar is not None:
                reach = st.columnar.groups_with_data(len(st.group_keys))
                if st.cells is not None:
                    reach = st.cells.group_reach(reach)
                gids = np.array(sorted(reach), dtype=np.int64)
                targets = np.array([reach[g] for g in gids.tolist()], dtype=np.int64)
                targets = np.maximum(targets, st.closed[gids]) if gids.shape[0] else targets
                out += self._close_groups(st, gids, targets)
                if not st.panes:
                    continue
            gids = np.array(sorted(st.panes), dtype=np.int64)
            last = [
                max(st.spec.last_window_end_of_pane(p) for p in st.panes[g]) for g in gids.tolist()
            ]
            targets = np.maximum(np.array(last, dtype=np.int64), st.closed[gids]) if last else gids
            out += self._close_groups(st, gids, targets)
        return out

    # --- observability and persistence ---------------------------------------------------

    def _group_marks(self, st: AggState) -> tuple[np.ndarray, np.ndarray]:
        """(groups that saw a sample, mask over all groups; their watermarks)."""
        has = st.max_t != _MIN
        wm = self._watermarks(st, np.flatnonzero(has)) if has.any() else np.zeros(0, np.int64)
        return has, wm

    def coverage(self) -> dict[int, dict[str, Any]]:
        """Per aggregation, what the query side asks on every query (``PrecomputeEngine.
        coverage``): the smallest group watermark and the holes, without ``status``' counts
        (which walk every group's panes)."""
        out = {}
        for agg_id, st in self.aggs.items():
            wm = self._group_marks(st)[1]
            out[agg_id] = {
                "min_watermark_ms": int(wm.min()) if wm.shape[0] else None,
                "holes": list(st.holes),
            }
        return out

    def status(self) -> dict[int, dict[str, Any]]:
        out = {}
        for agg_id, st in self.aggs.items():
            has, wm = self._group_marks(st)
            out[agg_id] = {
                **st.counters.__dict__,
                "groups": len(st.group_keys),
                "open_panes": (
                    st.columnar.open_cells()
                    if st.columnar is not None
                    else sum(len(g) for g in st.panes.values())
                ),
                "max_event_time_ms": int(st.max_t[has].max()) if has.any() else None,
                "watermark_ms": int(wm.max()) if wm.shape[0] else None,
                "min_watermark_ms": int(wm.min()) if wm.shape[0] else None,
                "holes": list(st.holes),
            }
        return out

    def snapshot(self) -> dict[int, dict[str, Any]]:
        """Plain-data state of every aggregation (open panes serialized with ``to_bytes``)."""
        return {
            agg_id: {
                "config": st.config,
                "group_keys": list(st.group_keys),
                "sub_keys": list(st.sub_keys),
                "max_t": st.max_t.copy(),
                "closed": st.closed.copy(),
                "floor": st.floor.copy(),
                "touched": st.touched.copy(),
                "panes": [
                    (g, p, acc.to_bytes())
                    for g, group in st.panes.items()
                    for p, acc in group.items()
                ],
                "counters": dict(st.counters.__dict__),
                "holes": list(st.holes),
                "columnar": (
                    st.columnar.snapshot(len(st.group_keys)) if st.columnar is not None else None
                ),
                "cells": st.cells.snapshot() if st.cells is not None else None,
            }
            for agg_id, st in self.aggs.items()
        }

    def restore(self, snapshot: dict[int, dict[str, Any]]) -> None:
        """Load state for aggregations whose config is unchanged since the snapshot."""
        for agg_id, data in snapshot.items():
            st = self.aggs.get(agg_id)
            if st is None or st.config != data["config"]:
                continue
            st.group_keys, st.sub_keys = list(data["group_keys"]), list(data["sub_keys"])
            st.max_t, st.closed = data["max_t"].copy(), data["closed"].copy()
            st.floor, st.touched = data["floor"].copy(), data["touched"].copy()
            st.panes, st.sliding = {}, {}
            for g, p, raw in data["panes"]:
                st.panes.setdefault(g, {})[p] = Accumulator.from_bytes(raw)
            st.counters = AggCounters(**data["counters"])
            st.holes = list(data.get("holes", []))
            if st.columnar is not None and data.get("columnar") is not None:
                st.columnar.restore(data["columnar"])
            if st.cells is not None:
                cells = data.get("cells")
                # A snapshot of the keyed object path (an older build): its open panes above are
                # keyed accumulators, the cell table starts empty and they are closed by
                # ``_close_group`` as before.
                st.cells = (
                    CellTable.restore(cells, st.group_keys, st.sub_keys)
                    if cells is not None
                    else CellTable()
                )
