"""The decoded-window cache across window tables: one byte budget, least recently used evicted
off the query's clock.

Each ``WindowTable`` has its own lock (a long decode of one aggregation no longer delays queries
on others); this module keeps the shared accounting under one small lock (``_ACCOUNT``, held only
for dictionary updates, never while decoding or copying): the blocks in use order (``_LRU``), the
budget, the counters, and each table's ``footprint`` (bytes its cached blocks and pool slack
hold, which the table publishes after every change under its own lock).

A query never evicts. Its read may overshoot the budget; at its end it only *asks* for eviction
(``request_eviction``: a flag and a notify). One background thread, the evictor, at a lower CPU
priority (``NICE``), waits until no query is running (``reading``: the engine marks each query's
whole run, ``WindowTable.select`` its read, so eviction starts once results are computed) — or
``IDLE_WAIT_S`` at most, so a server that is never idle still keeps its budget. Then it evicts:
least recently used blocks until what they hold covers the excess down to ``LOW_WATER`` of the
budget, dropped per table, and each table that lost blocks compacted once (its pools copied into
exactly sized buffers, which is what actually frees memory), most bytes freed per byte copied
first, stopping as soon as the footprint is down: no pool is compacted that the budget does not
need. The copy runs without the table's lock (``WindowTable.compact``); a query that changes the
table meanwhile wins, and the copy is redone.

Lock order: a table's lock, then ``_ACCOUNT``. Nothing takes a table's lock while holding
``_ACCOUNT``; the evictor only *tries* a table's lock (a busy table keeps its victims, which go
back to the cold end of ``_LRU``, and the evictor tries again ``RETRY_S`` later), so no thread
ever waits for a lock while holding another: no deadlock. Synchronous passes (``configure``, the
warm-up) try locks the same way and leave what they could not drop to the evictor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from planner.sketch_budget import Budget, resolve_budget

IDLE_WAIT_S = 1.0  # the longest an eviction waits for the queries in flight to end
RETRY_S = 0.05  # a table was busy: try its victims again after this
COMPACT_TRIES = 3  # optimistic (unlocked) copies before compacting under the table's lock
# A pass evicts down to this share of the budget: a compaction copies a whole table however
# little it frees, so each pass makes room for the next few queries' decodes, not only this one's.
LOW_WATER = 0.9
# The evictor's nice value: below the query threads, not so low that a busy machine starves it
# (it could not raise its priority again to catch up: that needs privileges).
NICE = 5

log = logging.getLogger("tidemark")

_ACCOUNT = threading.Lock()
_WAKE = threading.Condition(_ACCOUNT)  # the evictor waits on it: requests, reads ending, passes
# (id(table), block) → (table, block bytes), least recently used first.
_LRU: OrderedDict[tuple[int, int], tuple[weakref.ref, int]] = OrderedDict()
_MEMBERS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_STATS = {"hits": 0, "misses": 0, "evictions": 0, "decoded_records": 0, "compactions": 0}
_BUDGET_INFO = [resolve_budget(None, os.environ, strict=False)]
_BUDGET = [_BUDGET_INFO[0].bytes]
_READS = [0]  # queries and table reads running now (the warm-up and the evictor wait for none)
_EVICTOR: dict[str, Any] = {"thread": None, "requested": False, "since": 0.0, "running": False}


@contextmanager
def reading() -> Iterator[None]:
    """Mark a query (``Engine`` around its whole run) or a read of a table (``WindowTable.select``)
    while it runs: the warm-up and the evictor wait for none to be running. Nests."""
    with _ACCOUNT:
        _READS[0] += 1
    try:
        yield
    finally:
        with _ACCOUNT:
            _READS[0] -= 1
            if _READS[0] == 0:
                _WAKE.notify_all()


def reads_in_flight() -> int:
    return _READS[0]


def budget() -> int:
    return _BUDGET[0]


def budget_info() -> Budget:
    """The effective budget and its source (flag, env, machine, configured)."""
    return _BUDGET_INFO[0]


def configure(budget_bytes: int | Budget) -> None:
    """Set the decoded-window budget (bytes, all tables together) and evict down to it: what
    busy tables hold is left to the evictor."""
    info = budget_bytes if isinstance(budget_bytes, Budget) else Budget(int(budget_bytes), "set")
    with _ACCOUNT:
        _BUDGET[0], _BUDGET_INFO[0] = info.bytes, info
    if not evict_now():
        request_eviction()


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


# --- the evictor --------------------------------------------------------------------------------


def request_eviction() -> None:
    """Ask the evictor for a pass if the footprint exceeds the budget; never waits (a query
    calls it at the end of its read)."""
    with _ACCOUNT:
        if _held_locked() <= _BUDGET[0]:
            return
        if not _EVICTOR["requested"]:
            _EVICTOR["requested"], _EVICTOR["since"] = True, time.monotonic()
        thread = _EVICTOR["thread"]
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=_evictor, name="sketch-evictor", daemon=True)
            _EVICTOR["thread"] = thread
            thread.start()
        _WAKE.notify_all()


def settle(timeout: float = 30.0) -> bool:
    """Wait until no eviction is asked for or running (tests, benchmarks). False on timeout."""
    with _ACCOUNT:
        return _WAKE.wait_for(
            lambda: not _EVICTOR["requested"] and not _EVICTOR["running"], timeout
        )


def _evictor() -> None:
    _background_priority()
    while True:
        with _ACCOUNT:
            while True:
                if _EVICTOR["requested"]:
                    waited = time.monotonic() - _EVICTOR["since"]
                    if _READS[0] == 0 or waited >= IDLE_WAIT_S:
                        break
                    _WAKE.wait(IDLE_WAIT_S - waited)
                else:
                    _WAKE.wait()
            _EVICTOR["requested"], _EVICTOR["running"] = False, True
        fits = True
        try:
            fits = evict_now()
        except Exception:  # the evictor must survive; the next request tries again
            log.exception("sketch cache eviction failed")
        finally:
            with _ACCOUNT:
                _EVICTOR["running"] = False
                if not fits and not _EVICTOR["requested"]:
                    _EVICTOR["requested"], _EVICTOR["since"] = True, time.monotonic()
                _WAKE.notify_all()
        if not fits:
            time.sleep(RETRY_S)  # a busy table: give its holder time to finish


def _background_priority() -> None:
    """Run this thread at a lower CPU priority (Linux: threads are tasks with their own nice
    value), so its copies, which release the GIL, leave the cores to queries first."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux / not permitted: as is
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)


def evict_now() -> bool:
    """One eviction pass in the calling thread (call with no table lock held, or only tables
    whose locks this thread may re-enter). True when the footprint fits the budget or nothing
    more can be evicted; False when a busy table kept blocks that had to go."""
    victims = _pick_victims()
    if victims is None:
        return True
    order = sorted(victims.values(), key=_worth, reverse=True)
    fits, busy, goal = False, False, int(budget() * LOW_WATER)
    for i, (table, blocks, _) in enumerate(order):
        if held_bytes() <= goal:  # earlier compactions freed enough: keep the rest
            _restore(order[i:])
            fits = True
            break
        if not table.lock.acquire(blocking=False):
            _restore([(table, blocks, 0)])
            busy = True
            continue
        try:
            dropped = sum(1 for b in _still_cold(table, blocks) if table.drop(b))
        finally:
            table.lock.release()
        if dropped:
            count("evictions", dropped)
        busy |= not _compact(table)
    return fits or not busy or held_bytes() <= budget()


def _pick_victims() -> dict[int, tuple[Any, list[int], int]] | None:
    """By table, the least recently used blocks (popped from ``_LRU``) that, with the slack their
    tables' compaction frees too, cover the excess over ``LOW_WATER`` of the budget; tables holding
    dead rows come first (compacting them frees without evicting). None when within budget."""
    with _ACCOUNT:
        held = _held_locked()
        if held <= _BUDGET[0]:
            return None
        excess = held - int(_BUDGET[0] * LOW_WATER)
        tables = list(_MEMBERS.items())
        out = {tid: (t, [], 0) for tid, t in tables if t.dead_bytes() > 0}
        freed = sum(t.slack_bytes() for t, _, _ in out.values())
        while _LRU and freed < excess:
            (tid, b), (ref, nbytes) = _LRU.popitem(last=False)
            table = ref()
            if table is None:
                continue
            if tid not in out:
                out[tid] = (table, [], 0)
                freed += table.slack_bytes()
            got = out[tid]
            out[tid] = (table, [*got[1], b], got[2] + nbytes)
            freed += nbytes
        if freed < excess:  # every block picked: spare capacity must go too
            for tid, table in tables:
                if tid not in out and table.footprint > 0:
                    out[tid] = (table, [], 0)
        return out


def _worth(victim: tuple[Any, list[int], int]) -> float:
    """Bytes freed per byte copied by dropping the victims and compacting their table."""
    table, _, nbytes = victim
    freed = nbytes + table.slack_bytes()
    return freed / max(1, table.footprint - freed)


def _still_cold(table: Any, blocks: list[int]) -> list[int]:
    """The victims no query used since they were picked (a use put them back in ``_LRU``)."""
    with _ACCOUNT:
        return [b for b in blocks if (id(table), b) not in _LRU]


def _restore(victims: list[tuple[Any, list[int], int]]) -> None:
    """Put victims not dropped back at the cold end of ``_LRU`` (in their order), unless a query
    used them meanwhile."""
    with _ACCOUNT:
        for table, blocks, _ in reversed(victims):
            for b in reversed(blocks):
                key = (id(table), b)
                blk = table.blocks.get(b)
                if key not in _LRU and blk is not None:
                    _LRU[key] = (weakref.ref(table), blk.nbytes)
                    _LRU.move_to_end(key, last=False)


def _compact(table: Any) -> bool:
    """Compact ``table``'s pools if it has dead rows or spare capacity: copying without its lock
    first, under it if queries kept changing the table. False if the table stayed busy."""
    for _ in range(COMPACT_TRIES):
        done = table.compact()
        if done is not None:
            if done:
                count("compactions")
            return True
    if not table.lock.acquire(blocking=False):
        return False
    try:
        if table.compact():
            count("compactions")
    finally:
        table.lock.release()
    return True


def cache_stats() -> dict[str, float]:
    """Bytes and blocks held, budget, and lifetime hits/misses/evictions/compactions/decoded
    records. Never waits for a table's decode."""
    with _ACCOUNT:
        return {
            "bytes": float(_held_locked()),
            "blocks": float(sum(1 for ref, _ in _LRU.values() if ref() is not None)),
            "budget_bytes": float(_BUDGET[0]),
            **{k: float(v) for k, v in _STATS.items()},
        }


def status() -> dict[str, Any]:
    """``cache_stats`` plus where the budget came from (``/api/v1/precompute/status``)."""
    info = budget_info()
    return cache_stats() | {
        "budget_source": info.source,
        "budget_memory_bytes": info.memory_bytes,
        "eviction_pending": bool(_EVICTOR["requested"] or _EVICTOR["running"]),
    }
