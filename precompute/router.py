"""Routing ingested samples to workers: metric + spatial filter, grouping, hash partitioning.

For every aggregation the router interns group keys (grouping-label values) and sub-keys
(aggregated-label values) as tuples, and caches per store series id which group and sub-key the
series feeds, so a batch is routed with numpy fancy indexing; Python runs once per new series.
Groups are hash-partitioned (blake2b of aggregation id + key, stable across processes and restarts)
over the workers, so each group lives on exactly one worker. Work items carry the key-table
entries the receiving worker has not seen yet, so workers in other processes can name their keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from precompute.accumulators.keyhash import key_hash128
from precompute.config import AggregationConfig
from precompute.filters import LabelFilter
from storage.model import METRIC_NAME, STALE_NAN_BITS, DurableBatch, Labels

Key = tuple[str, ...]
KEEPS_STALE = frozenset({"MultipleLast"})
_UNRESOLVED = -2
_UNMATCHED = -1


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _unresolved(series_gid, series_ids):
    """Positions of ``series_ids`` with no cached group yet (beyond the cache: not seen)."""
    size = series_gid.shape[0]
    count = 0
    for i in range(series_ids.shape[0]):
        s = series_ids[i]
        if s >= size or series_gid[s] == _UNRESOLVED:
            count += 1
    out = np.empty(count, np.int64)
    j = 0
    for i in range(series_ids.shape[0]):
        s = series_ids[i]
        if s >= size or series_gid[s] == _UNRESOLVED:
            out[j] = i
            j += 1
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _select(series_gid, sids, ts, vals, keep_stale):
    """One aggregation's samples of a batch: ``(group ids, series ids, times, values)`` of the
    samples whose series matched it, stale markers dropped unless ``keep_stale``; new arrays
    (work items outlive the batch)."""
    size = series_gid.shape[0]
    bits = vals.view(np.uint64)
    keep = np.empty(sids.shape[0], np.bool_)
    count = 0
    for i in range(sids.shape[0]):
        s = sids[i]
        g = series_gid[s] if 0 <= s < size else _UNMATCHED  # resolve() covered the batch
        keep[i] = g >= 0 and (keep_stale or bits[i] != STALE_NAN_BITS)
        count += keep[i]
    gids = np.empty(count, np.int64)
    s_out = np.empty(count, sids.dtype)
    t_out = np.empty(count, ts.dtype)
    v_out = np.empty(count, vals.dtype)
    j = 0
    for i in range(sids.shape[0]):
        if keep[i]:
            gids[j] = series_gid[sids[i]]
            s_out[j] = sids[i]
            t_out[j] = ts[i]
            v_out[j] = vals[i]
            j += 1
    return gids, s_out, t_out, v_out


@dataclass(frozen=True)
class WorkItem:
    """Samples of one aggregation for one worker; ``sub_ids`` only for keyed aggregations."""

    aggregation_id: int
    group_ids: np.ndarray
    sub_ids: np.ndarray | None
    timestamps: np.ndarray
    values: np.ndarray
    new_group_keys: tuple[Key, ...]
    new_sub_keys: tuple[Key, ...]

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


class _Table:
    """Append-only key interner."""

    def __init__(self, keys: list[Key] | None = None) -> None:
        self.keys: list[Key] = list(keys or [])
        self.index: dict[Key, int] = {k: i for i, k in enumerate(self.keys)}

    def intern(self, key: Key) -> int:
        idx = self.index.get(key)
        if idx is None:
            idx = self.index[key] = len(self.keys)
            self.keys.append(key)
        return idx


def worker_of(aggregation_id: int, key: Key, num_workers: int) -> int:
    return key_hash128((str(aggregation_id), *key))[0] % num_workers


class AggregationRoutes:
    def __init__(self, config: AggregationConfig, num_workers: int, groups=None, subs=None) -> None:
        self.config = config
        self.filter = LabelFilter.from_matchers(config.matchers)
        self.num_workers = num_workers
        self.groups = _Table(groups)
        self.subs = _Table(subs)
        self.group_worker = np.array(
            [worker_of(config.aggregation_id, k, num_workers) for k in self.groups.keys],
            dtype=np.int64,
        )
        self.series_gid = np.full(0, _UNRESOLVED, dtype=np.int64)
        self.series_sub = np.full(0, 0, dtype=np.int64)
        self.sent = [(0, 0)] * num_workers  # key-table lengths each worker already has
        self._series_per_group: dict[int, int] = {}
        self.warnings: list[str] = []

    def _grow(self, max_series_id: int) -> None:
        size = self.series_gid.shape[0]
        if max_series_id < size:
            return
        new = max(max_series_id + 1, size * 2, 1024)
        self.series_gid = np.concatenate(
            [self.series_gid, np.full(new - size, _UNRESOLVED, dtype=np.int64)]
        )
        self.series_sub = np.concatenate([self.series_sub, np.zeros(new - size, dtype=np.int64)])

    def resolve(self, series_ids: np.ndarray, series: list[Labels]) -> None:
        """Fill the cache for the batch's series not seen before (Python once per new series)."""
        if series_ids.shape[0] == 0:
            return
        todo = _unresolved(self.series_gid, series_ids)
        if todo.shape[0] == 0:  # the steady state: every series seen before
            return
        self._grow(int(series_ids.max()))
        cfg = self.config
        for i in todo.tolist():
            labels = series[i]
            values = dict(labels)
            sid = int(series_ids[i])
            if values.get(METRIC_NAME) != cfg.metric or not self.filter.matches(labels):
                self.series_gid[sid] = _UNMATCHED
                continue
            gid = self.groups.intern(tuple(values.get(n, "") for n in cfg.labels.grouping))
            if gid == self.group_worker.shape[0]:
                worker = worker_of(cfg.aggregation_id, self.groups.keys[gid], self.num_workers)
                self.group_worker = np.append(self.group_worker, worker)
            self.series_gid[sid] = gid
            if cfg.aggregation_type == "Increase":
                self._check_single_series(gid)
            if cfg.keyed:
                sub = tuple(values.get(n, "") for n in cfg.labels.aggregated)
                self.series_sub[sid] = self.subs.intern(sub)

    def _check_single_series(self, gid: int) -> None:
        # Increase keeps one counter state per group: two series in one group mix their counters.
        count = self._series_per_group[gid] = self._series_per_group.get(gid, 0) + 1
        if count == 2 and len(self.warnings) < 10:
            self.warnings.append(
                f"aggregation {self.config.aggregation_id}: group {self.groups.keys[gid]!r} "
                "receives several series; Increase needs one series per group (use "
                "MultipleIncrease with the distinguishing labels as 'aggregated')"
            )

    def split(self, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray):
        """Yield ``(worker, WorkItem)`` for this aggregation's samples of one batch (its
        resolved series; stale markers only for ``KEEPS_STALE`` types)."""
        keep_stale = self.config.aggregation_type in KEEPS_STALE
        selected = _select(self.series_gid, sids, ts, vals, keep_stale)
        # numpy's builtin dtype objects, not numba's equal copies: the worker's
        # ``np.maximum.at`` over these times is ~30× slower with the latter.
        gids, sids, ts, vals = (x.view(x.dtype.type) for x in selected)
        if gids.shape[0] == 0:
            return
        subs = self.series_sub[sids] if self.config.keyed else None
        workers = self.group_worker[gids] if self.num_workers > 1 else None
        # Workers that get samples: a bincount over the few worker ids (np.unique sorted the
        # whole batch, ~130 µs per 10k samples).
        used = (
            np.flatnonzero(np.bincount(workers, minlength=self.num_workers)).tolist()
            if workers is not None
            else [0]
        )
        for w in used:
            pick = np.flatnonzero(workers == w) if workers is not None else slice(None)
            ng, ns = self.sent[w]
            self.sent[w] = (len(self.groups.keys), len(self.subs.keys))
            yield (
                w,
                WorkItem(
                    self.config.aggregation_id,
                    gids[pick],
                    None if subs is None else subs[pick],
                    ts[pick],
                    vals[pick],
                    tuple(self.groups.keys[ng:]),
                    tuple(self.subs.keys[ns:]),
                ),
            )


class Router:
    def __init__(self, configs: list[AggregationConfig], num_workers: int) -> None:
        self.num_workers = num_workers
        self.routes: dict[int, AggregationRoutes] = {
            c.aggregation_id: AggregationRoutes(c, num_workers) for c in configs
        }

    def set_routes(self, routes: AggregationRoutes) -> None:
        self.routes[routes.config.aggregation_id] = routes

    def remove(self, aggregation_id: int) -> None:
        self.routes.pop(aggregation_id, None)

    def route(self, durable: DurableBatch) -> list[list[WorkItem]]:
        """Per worker, the work items of one durable batch (stale markers removed, except for
        ``KEEPS_STALE`` types)."""
        batch = durable.batch
        out: list[list[WorkItem]] = [[] for _ in range(self.num_workers)]
        if len(batch) == 0 or not self.routes:
            return out
        sids = np.ascontiguousarray(durable.sample_series_ids, dtype=np.int64)
        ts = np.ascontiguousarray(batch.timestamps, dtype=np.int64)
        vals = np.ascontiguousarray(batch.values, dtype=np.float64)
        series_ids = np.asarray(durable.series_ids, dtype=np.int64)
        for routes in list(self.routes.values()):
            routes.resolve(series_ids, batch.series)
            # Only newest-sample states (instant selectors) need stale markers: a marker ends a
            # series there. Every other accumulator never sees them (``split``).
            for w, item in routes.split(sids, ts, vals):
                out[w].append(item)
        return out
