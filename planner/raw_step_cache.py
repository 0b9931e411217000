"""Raw answers of a precomputed query's newest steps, kept while no sample they read can change.

Why: a precomputed answer's newest steps are past the newest closed window, so every refresh
reads them raw (``SummaryInfer``'s stitch, ``cached_aggregate``'s open steps): ~0.2 ms for a
histogram panel's 220 buckets, ~20 ms for ``quantile_over_time(0.99, x[1h])`` over 1,000
series. Grafana asks the same aligned steps again until the next step begins, and under live
ingest the samples written meanwhile are newer than those steps.

An entry holds the pushed-down exact subtree's answer on its sub-grid, the storage's write mark
taken before it was read, and the newest timestamp any of its ``SeriesScan``s reads. It is used
only while the earliest sample written since that mark (``storage.append_log``) is newer than
that: a sample at or before it, a new series with one, a late or out-of-order write, or a
retention deletion makes it computed again. Annotations the evaluation raised are kept with it
and raised again. Entries are bounded by a byte budget, least recently used out first;
``TIDEMARK_RAW_STEP_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from planner.nodes.series_scan import SeriesScan
from planner.rules.pushdown import pushed
from planner.values import InstantVector
from storage.append_log import ReadMark

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.nodes.base import PlanNode
    from planner.stmt import Grid
    from planner.values import Value

BUDGET_BYTES = 64 << 20
ENTRY_MAX_BYTES = 8 << 20

_LOCK = threading.Lock()
_ENTRIES: OrderedDict[tuple[int, int], _Entry] = OrderedDict()
_STATE = {"bytes": 0}
_STATS = {"hits": 0, "misses": 0, "stale": 0}


@dataclass(frozen=True)
class _Entry:
    plan: PlanNode  # held: the key is its id
    read: ReadMark  # the storage's write mark before the read, and the newest timestamp read
    value: InstantVector
    warnings: tuple[str, ...]
    infos: tuple[str, ...]
    nbytes: int


def enabled() -> bool:
    return os.environ.get("TIDEMARK_RAW_STEP_CACHE", "1") != "0"


def run_exact(ex: Executor, exact: PlanNode, sub: Grid) -> Value:
    """``exact`` on ``sub`` with its ranges pushed down: kept, or evaluated (and kept)."""
    plan = pushed(exact, sub)
    appends = getattr(ex.storage, "appends", None)
    if appends is None or not enabled():
        return ex.run(plan, sub)
    key = (id(plan), id(ex.storage))
    with _LOCK:
        entry = _ENTRIES.get(key)
        if entry is not None and (entry.plan is not plan or entry.read.log() is not appends):
            entry = None  # the id of a plan or storage gone since
        fresh = entry is not None and entry.read.holds(appends)
        if fresh:
            _ENTRIES.move_to_end(key)
        _STATS["hits" if fresh else "stale" if entry is not None else "misses"] += 1
    if entry is not None and fresh:
        ex.warnings.update(dict.fromkeys(entry.warnings))
        ex.infos.update(dict.fromkeys(entry.infos))
        v = entry.value
        return InstantVector(list(v.labels), v.values, v.present, v.drop_name, v.sample_ts)
    until = reads_until(plan)
    if until is None:
        return ex.run(plan, sub)
    read = appends.before_read(until)  # before anything is read: a write meanwhile voids it
    outer = ex.warnings, ex.infos
    ex.warnings, ex.infos = {}, {}
    try:
        value = ex.run(plan, sub)
        raised = tuple(ex.warnings), tuple(ex.infos)
    finally:
        inner_warnings, inner_infos = ex.warnings, ex.infos
        ex.warnings, ex.infos = outer
        ex.warnings.update(inner_warnings)
        ex.infos.update(inner_infos)
    if isinstance(value, InstantVector):
        _keep(key, plan, read, value, raised)
    return value


def reads_until(plan: PlanNode) -> int | None:
    """The newest sample timestamp ``plan`` can read (None: it reads storage other than
    through pushed-down ``SeriesScan``s, or reads nothing)."""
    scans: list[SeriesScan] = []
    if not _scans(plan, scans) or not scans or any(s.maxt_ms is None for s in scans):
        return None
    return max(s.maxt_ms for s in scans if s.maxt_ms is not None)


def _scans(plan: PlanNode, into: list[SeriesScan]) -> bool:
    """Collect ``plan``'s ``SeriesScan``s; False when another node reads storage itself."""
    if isinstance(plan, SeriesScan):
        into.append(plan)
        return True
    return not plan.READS_STORAGE and all(_scans(child, into) for child in plan.inputs)


def _keep(key, plan, read: ReadMark, value: InstantVector, raised) -> None:
    nbytes = value.values.nbytes + value.present.nbytes
    if value.sample_ts is not None:
        nbytes += value.sample_ts.nbytes
    if nbytes > ENTRY_MAX_BYTES:
        return
    # Shared with every later hit: a consumer writing into them would corrupt the entry.
    for arr in (value.values, value.present, value.drop_name, value.sample_ts):
        if arr is not None:
            arr.flags.writeable = False
    entry = _Entry(plan, read, value, *raised, nbytes)
    with _LOCK:
        old = _ENTRIES.pop(key, None)
        if old is not None:
            _STATE["bytes"] -= old.nbytes
        _ENTRIES[key] = entry
        _STATE["bytes"] += nbytes
        while _STATE["bytes"] > BUDGET_BYTES and _ENTRIES:
            _, gone = _ENTRIES.popitem(last=False)
            _STATE["bytes"] -= gone.nbytes


def stats() -> dict[str, int]:
    with _LOCK:
        return {**_STATS, "entries": len(_ENTRIES), "bytes": _STATE["bytes"]}


def clear() -> None:
    with _LOCK:
        _ENTRIES.clear()
        _STATE["bytes"] = 0
