"""The decoded-window cache across window tables: one byte budget, least recently used evicted.

Each ``WindowTable`` has its own lock (a long decode of one aggregation no longer delays queries
on others); this module keeps the shared accounting under one small lock (``_ACCOUNT``, held only
for dictionary updates, never while decoding): the blocks in use order (``_LRU``), the budget,
the counters, and each table's ``footprint`` (bytes its cached blocks and pool slack hold, which
the table publishes after every change under its own lock).

Eviction may pick another table's block. Lock order is "table lock, then ``_ACCOUNT``"; an
evictor never waits for another table's lock: it tries it, and if that table is busy (a query or
the warm-up is decoding in it) the block is queued in the table's ``pending_drops``, which the
table applies itself under its own lock (at the end of its current read, or its next). A block
used again before that is kept (it is back in ``_LRU``). So the budget can be overshot by what
busy tables hold until they finish their read, never deadlocked.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_BUDGET = 512 << 20  # the benchmark's 6 h of 1 h quantile sketches (~320 MB) fit

_ACCOUNT = threading.Lock()
# (id(table), block) → (table, block bytes), least recently used first.
_LRU: OrderedDict[tuple[int, int], tuple[weakref.ref, int]] = OrderedDict()
_MEMBERS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_STATS = {"hits": 0, "misses": 0, "evictions": 0, "decoded_records": 0}
_BUDGET = [int(os.environ.get("TIDEMARK_SKETCH_CACHE_BYTES", DEFAULT_BUDGET))]
_READS = [0]  # queries reading a table now (the warm-up waits for none)


@contextmanager
def reading() -> Iterator[None]:
    """Mark a query's read of a table (``WindowTable.select``) while it runs."""
    with _ACCOUNT:
        _READS[0] += 1
    try:
        yield
    finally:
        with _ACCOUNT:
            _READS[0] -= 1


def reads_in_flight() -> int:
    return _READS[0]


def budget() -> int:
    return _BUDGET[0]


def configure(budget_bytes: int) -> None:
    """Set the decoded-window budget (bytes, all tables together); evicts down to it."""
    with _ACCOUNT:
        _BUDGET[0] = int(budget_bytes)
    enforce()


def count(name: str, n: int = 1) -> None:
    with _ACCOUNT:
        _STATS[name] += n


def touch(table: Any, block: int, nbytes: int, *, coldest: bool = False) -> None:
    """Record a use of ``block`` of ``table`` (most recently used, or least with ``coldest``:
    the warm-up's blocks go first when a query's need room)."""
    key = (id(table), block)
    with _ACCOUNT:
        _MEMBERS[id(table)] = table
        _LRU[key] = (weakref.ref(table), nbytes)
        _LRU.move_to_end(key, last=not coldest)


def forget(table: Any) -> None:
    """Drop every entry of ``table`` (it starts over)."""
    with _ACCOUNT:
        for key in [k for k in _LRU if k[0] == id(table)]:
            del _LRU[key]


def _held_locked() -> int:
    return sum(int(t.footprint) for t in list(_MEMBERS.values()))


def held_bytes() -> int:
    with _ACCOUNT:
        return _held_locked()


def enforce() -> None:
    """Evict least recently used blocks until the tables' footprints fit the budget. Call with
    no table lock held but the caller's own (that one is re-entered, not waited for)."""
    for _ in range(64):  # each round drops at least one block or stops
        victims: list[tuple[Any, int]] = []
        with _ACCOUNT:
            total = _held_locked()
            while _LRU and total > _BUDGET[0]:
                (_, b), (ref, nbytes) = _LRU.popitem(last=False)
                table = ref()
                if table is not None:
                    victims.append((table, b))
                    total -= nbytes
        if not victims:
            return
        if not any([_drop(table, b) for table, b in victims]):
            return  # every victim's table is busy: it drops them itself when done


def _drop(table: Any, block: int) -> bool:
    """Drop now if the table's lock is free (or ours); else queue it for the table."""
    if table.lock.acquire(blocking=False):
        try:
            if table.drop(block):
                count("evictions")
        finally:
            table.lock.release()
        return True
    with _ACCOUNT:
        table.pending_drops.add(block)
    return False


def apply_pending(table: Any) -> None:
    """Drop the blocks other threads evicted while ``table`` was busy (its lock held), unless a
    read used them again since."""
    if not table.pending_drops:
        return
    with _ACCOUNT:
        todo = [b for b in table.pending_drops if (id(table), b) not in _LRU]
        table.pending_drops.clear()
    dropped = sum(1 for b in todo if table.drop(b))
    if dropped:
        count("evictions", dropped)


def cache_stats() -> dict[str, float]:
    """Bytes and blocks held, budget, and lifetime hits/misses/evictions/decoded records. Never
    waits for a table's decode."""
    with _ACCOUNT:
        return {
            "bytes": float(_held_locked()),
            "blocks": float(sum(1 for ref, _ in _LRU.values() if ref() is not None)),
            "budget_bytes": float(_BUDGET[0]),
            **{k: float(v) for k, v in _STATS.items()},
        }
