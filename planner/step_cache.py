"""Per-step answers of ``SummaryInfer`` kept across queries, valid while their windows are.

Why: a dashboard re-asks the same range queries every refresh; between two refreshes only the
newest windows close. The answer of a step (``rate``, ``avg_over_time``, ... of every series at
``t``) is a pure function of the stored windows that step spans, so once computed from windows
that were all complete, closed and clean, it stays right for as long as those windows are not
changed. Re-reading, merging and inferring a million cells per refresh — most of a
precomputed 1,000-step answer — is then only done for the new steps.

A step's answer is reused only when all of these still hold (checked on every query, vectorized
over steps), otherwise it is recomputed:

- same query series, in the same order (the labels list of the entry);
- the window table is the same one, not rebuilt (retention, configuration change);
- no stored record was added since to a block of window ends the step spans (late entries,
  several workers: the block's record count is snapshotted before the computation read it);
- no hole (windows with dropped or lost samples, ``precompute.holes``) now covers one of its
  windows.

Steps that needed raw data (uncovered or dirty cells) are never kept. Entries are bounded by a
byte budget, least recently used first out. ``TIDEMARK_STEP_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_BUDGET = 256 << 20
MIN_STEPS_KEPT = 4096  # per entry: the newest steps asked (see ``store``)

_LOCK = threading.Lock()
_ENTRIES: OrderedDict[Any, Entry] = OrderedDict()
_STATE = {"budget": int(os.environ.get("TIDEMARK_STEP_CACHE_BYTES", DEFAULT_BUDGET)), "bytes": 0}
_STATS = {"hits": 0, "misses": 0, "invalidated": 0, "evicted": 0}


def enabled() -> bool:
    return os.environ.get("TIDEMARK_STEP_CACHE", "1") != "0" and _STATE["budget"] > 0


@dataclass
class Entry:
    """Cached steps of one query shape: columns aligned with ``ends`` (sorted), rows with
    ``labels``."""

    labels: list
    table_first: Any  # the table's first record when computed (another one: rebuilt)
    ends: np.ndarray  # int64 [E]: each cached step's last window end (t − offset)
    values: np.ndarray  # float64 [n, E]
    present: np.ndarray  # bool [n, E]
    block_ms: int  # the window table's block of window ends (``records`` is per block)
    records: dict[int, int] = field(default_factory=dict)  # block → records when computed

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.present.nbytes + self.ends.nbytes)


@dataclass(frozen=True)
class Lookup:
    """The cached part of a query: ``hit[k]`` steps and their columns (``values``/``present``
    are [n, k] with only the hit columns filled)."""

    hit: np.ndarray
    values: np.ndarray
    present: np.ndarray


def lookup(
    key: Any,
    labels: list,
    table_first: Any,
    ends: np.ndarray,
    records_now: dict[int, int],
    added_ends: Callable[[int, int, int], np.ndarray],
    current_holes,
    range_ms: int,
    rows: int | None = None,
) -> Lookup:
    """The steps (last window ends ``ends``) answerable from the cache for these ``labels``
    (``rows``: rows per step when they are not the series themselves, e.g. their groups).
    ``records_now``: current record counts of the blocks the query spans; ``added_ends(block,
    old, now)``: the window ends of that block's records ``old..now`` (written since). It takes
    the window table's lock, so it is called outside this module's lock (a long decode holding
    one table must not stall every other query's lookup)."""
    n, k = len(labels) if rows is None else rows, int(ends.shape[0])
    values = np.zeros((n, k))
    present = np.zeros((n, k), dtype=bool)
    hit = np.zeros(k, dtype=bool)
    with _LOCK:
        entry = _ENTRIES.get(key)
        if entry is not None and (
            entry.table_first is not table_first or not _same_labels(entry.labels, labels)
        ):
            _remove(key)
            entry = None
        if entry is None:
            _STATS["misses"] += k
            return Lookup(hit, values, present)
        pending = [
            (b, old, records_now[b])
            for b, old in entry.records.items()
            if records_now.get(b, old) != old
        ]
    # Records written since: late entries or new windows. Only the steps spanning one of their
    # window ends change.
    added = [
        (b, old, now, np.asarray(added_ends(b, old, now), np.int64)) for b, old, now in pending
    ]
    with _LOCK:
        if _ENTRIES.get(key) is not entry:  # replaced or evicted meanwhile
            _STATS["misses"] += k
            return Lookup(hit, values, present)
        _ENTRIES.move_to_end(key)
        valid = np.ones(entry.ends.shape[0], dtype=bool)
        for b, old, now, new in added:
            if entry.records.get(b) != old:
                # Another query moved this block's mark meanwhile: drop every step spanning
                # the block (rare; exactness over reuse).
                first, last = b * entry.block_ms, (b + 1) * entry.block_ms - 1
                new = np.array([first, last], np.int64)
                valid &= ~_spans(entry.ends, range_ms, new[:1], new[1:])
                new = new[:0]
            if new.shape[0]:
                valid &= ~_spans(entry.ends, range_ms, new, new)
            entry.records[b] = max(now, entry.records.get(b, now))
        if current_holes:
            lo = np.array([h[0] for h in current_holes], dtype=np.int64)
            hi = np.array([h[1] for h in current_holes], dtype=np.int64)
            valid &= ~_spans(entry.ends, range_ms, lo + 1, hi)
        if not valid.all():
            _STATS["invalidated"] += int((~valid).sum())
            _keep_columns(entry, valid)
        if entry.ends.shape[0]:
            pos = np.minimum(np.searchsorted(entry.ends, ends), entry.ends.shape[0] - 1)
            hit = entry.ends[pos] == ends
            cols = np.flatnonzero(hit)
            src = pos[cols]
            if cols.shape[0] and _run(cols) and _run(src):  # the usual shape: one block
                c0, c1, p0, p1 = cols[0], cols[-1] + 1, src[0], src[-1] + 1
                values[:, c0:c1] = entry.values[:, p0:p1]
                present[:, c0:c1] = entry.present[:, p0:p1]
            elif cols.shape[0]:
                values[:, cols] = entry.values[:, src]
                present[:, cols] = entry.present[:, src]
        found = int(hit.sum())
        _STATS["hits"] += found
        _STATS["misses"] += k - found
    return Lookup(hit, values, present)


def store(
    key: Any,
    labels: list,
    table_first: Any,
    ends: np.ndarray,
    values: np.ndarray,
    present: np.ndarray,
    block_ms: int,
    range_ms: int,
    records_before: dict[int, int],
) -> None:
    """Keep the steps ``ends`` (columns of ``values``/``present``, all clean) for ``key``;
    ``labels`` are the query's series these answers were computed for.
    ``records_before``: block record counts read *before* the computation (a record added
    during it then invalidates the step at the next lookup)."""
    if ends.shape[0] == 0 or not enabled():
        return
    lo = (ends - range_ms + 1) // block_ms
    hi = ends // block_ms
    with _LOCK:
        entry = _ENTRIES.get(key)
        if (
            entry is None
            or entry.table_first is not table_first
            or not _same_labels(entry.labels, labels)
        ):
            if entry is not None:
                _STATE["bytes"] -= entry.nbytes
            n = values.shape[0]
            entry = Entry(
                list(labels), table_first, np.zeros(0, np.int64), np.zeros((n, 0)),
                np.zeros((n, 0), bool), block_ms,
            )  # fmt: skip
        else:
            _STATE["bytes"] -= entry.nbytes
        new = ~np.isin(ends, entry.ends)
        all_ends = np.concatenate([entry.ends, ends[new]])
        order = np.argsort(all_ends, kind="stable")
        entry.ends = all_ends[order]
        entry.values = np.concatenate([entry.values, values[:, new]], axis=1)[:, order]
        entry.present = np.concatenate([entry.present, present[:, new]], axis=1)[:, order]
        # A refreshing dashboard moves forward: keep its newest steps, not every step it ever
        # asked for (the oldest fall out of its range anyway).
        cap = max(MIN_STEPS_KEPT, 2 * int(ends.shape[0]))
        if entry.ends.shape[0] > cap:
            entry.ends = entry.ends[-cap:]
            entry.values, entry.present = entry.values[:, -cap:], entry.present[:, -cap:]
        for b in range(int(lo.min()), int(hi.max()) + 1):
            # A block read again later than the entry's snapshot: keep the older (smaller)
            # count, so whatever was added after either read invalidates.
            entry.records[b] = min(entry.records.get(b, 1 << 62), records_before.get(b, 0))
        _ENTRIES[key] = entry
        _ENTRIES.move_to_end(key)
        _STATE["bytes"] += entry.nbytes
        while _STATE["bytes"] > _STATE["budget"] and _ENTRIES:
            _, old = _ENTRIES.popitem(last=False)
            _STATE["bytes"] -= old.nbytes
            _STATS["evicted"] += 1


def stats() -> dict[str, int]:
    with _LOCK:
        return {
            **_STATS,
            "bytes": _STATE["bytes"],
            "budget": _STATE["budget"],
            "entries": len(_ENTRIES),
        }


def configure(budget_bytes: int) -> None:
    with _LOCK:
        _STATE["budget"] = int(budget_bytes)
        while _STATE["bytes"] > _STATE["budget"] and _ENTRIES:
            _, old = _ENTRIES.popitem(last=False)
            _STATE["bytes"] -= old.nbytes


def clear() -> None:
    with _LOCK:
        _ENTRIES.clear()
        _STATE["bytes"] = 0


def _same_labels(a: list, b: list) -> bool:
    return a == b  # element by element, identity first: C speed for the same label tuples


def _run(idx: np.ndarray) -> bool:
    """Consecutive integers."""
    return bool(idx[-1] - idx[0] == idx.shape[0] - 1)


def _spans(ends: np.ndarray, range_ms: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Steps whose window ends ``(e − range, e]`` meet one of the closed ranges ``[lo, hi]``."""
    return ((ends[:, None] - range_ms < hi[None, :]) & (lo[None, :] <= ends[:, None])).any(axis=1)


def _remove(key: Any) -> None:
    entry = _ENTRIES.pop(key, None)
    if entry is not None:
        _STATE["bytes"] -= entry.nbytes


def _keep_columns(entry: Entry, valid: np.ndarray) -> None:
    _STATE["bytes"] -= entry.nbytes
    entry.ends, entry.values, entry.present = (
        entry.ends[valid],
        entry.values[:, valid],
        entry.present[:, valid],
    )
    _STATE["bytes"] += entry.nbytes
