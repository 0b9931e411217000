"""Stored windows of one aggregation as columns, decoded lazily per block of window ends.

The sketch store keeps one serialized accumulator per (key, window) entry; decoding them for
every query would cost Python per entry per query, and decoding all of them up front costs
seconds and keeps every window in memory whatever queries read. A ``WindowTable`` indexes the
store's log by *block* of window ends (``block_ms``, ~15 min of slides; only references, no
decoding) and decodes a block the first time a query needs one of its window ends: rows of
window end, key id (grouping values + sub key), log position and the statistics (moments:
sum/count/min/max; counters: n, first/last time and value, resets; last: newest sample). A KLL
entry becomes a weighted segment (retained items sorted by value and their cumulative weights,
``udfs.weighted_quantile``). Rows go to one pool per column per table (a block is a contiguous
row range) and KLL items to one items pool, so a query spanning many blocks gathers each column
once and reads one ``Segments`` without copying items.

Decoded blocks are cached under one memory budget for all tables (``configure``; default an
eighth of the machine's memory within [256 MiB, 8 GiB], ``TIDEMARK_SKETCH_CACHE_BYTES`` or
``tidemark serve --sketch-cache-bytes``: ``planner.sketch_budget``), counted as their rows' and
items' bytes plus the pools' spare capacity and dead rows, least recently used evicted first by
a background evictor once the reads end (``planner.sketch_cache``): a query's read may overshoot
the budget, never waits for eviction. Evicting a block (``drop``) only marks its rows dead;
``compact`` frees them, copying the live rows without holding the table's lock. A block whose
window ends got new log records since it was decoded (late data) is decoded again; if the log was
rebuilt (retention, removal) the table starts over. Each table has its own lock (``lock``: hold
it around ``select``/``warm``); the cache's accounting has another, so a long decode in one table
delays no other table.

KLL blocks are decoded all windows at once (``planner.sketch_decode``); moments, counter and
last windows arrive as columns (``WindowBatch``) or keyed accumulators, read as they are (an
accumulator the engine emitted in this process is used directly, not serialized and parsed).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from planner import sketch_cache as cache
from planner.precompute_match import family
from planner.sketch_cache import _BUDGET, cache_stats, configure  # noqa: F401
from planner.sketch_decode import decode_kll
from planner.sketch_pool import Growing, compact_copy
from storage.sketch_store import SketchEntry
from udfs.weighted_quantile import Segments, local_cumsum, ramp

if TYPE_CHECKING:
    from precompute.config import AggregationConfig
    from storage.sketch_store import SketchStore

Key = tuple[str, ...]
COUNTER_COLS = ("n", "first_t", "first_v", "last_t", "last_v", "resets")
MOMENT_COLS = ("sum", "count", "min", "max")
LAST_COLS = ("last_t", "last_v", "stale")  # newest sample per key (MultipleLast)
_FAMILY_COLS = {"counter": COUNTER_COLS, "last": LAST_COLS}
_INT_COLS = frozenset({"count", "n", "first_t", "last_t", "stale", "seq", "kid", "end"})
_INT_COLS |= {"lo", "hi", "k"}
_SEG_COLS = ("lo", "hi", "exact", "k")  # KLL rows: the segment's items (pool range), exact, K
BLOCK_TARGET_MS = 900_000  # window ends per block: a dashboard's last hour reads ~5 blocks


@dataclass(frozen=True)
class Selection:
    """A query's rows (every stored row whose window end is one of the asked ``ends``), each
    array row-aligned: key id, position of its end in ``ends``, and for KLL the segments (items
    in the table's pool) and K. Statistics columns and ``seq`` (log position: written later →
    larger) are gathered by ``take`` for the rows the query keeps only: one gather per column
    from the table's row pool (``pool``: views taken at selection time, so later appends,
    evictions and compactions leave them valid)."""

    kid: np.ndarray
    col: np.ndarray
    pool: dict[str, np.ndarray]  # row columns of the table's pool
    rows: np.ndarray  # int64: each selection row's pool row
    segments: Segments | None = None
    seg_k: np.ndarray | None = None

    def take(self, sel: np.ndarray, names) -> dict[str, np.ndarray]:
        """The columns ``names`` at selection rows ``sel``."""
        at = self.rows[sel]
        return {n: np.take(self.pool[n], at) for n in names}


@dataclass
class _Listed:
    """A block's log records in log order and their log positions (two lists, not a list of
    pairs: one Python object per record fewer)."""

    pos: list[int]
    recs: list[Any]

    def __len__(self) -> int:
        return len(self.recs)


@dataclass(frozen=True)
class _Block:
    records: int  # log records decoded (more records listed now: late data, decode again)
    rows: tuple[int, int]  # the block's rows are the row pool's [a, b), contiguous
    by_end: tuple[np.ndarray, np.ndarray, np.ndarray]  # see _group_by_end (pool row ids)
    row_bytes: int  # bytes per pool row
    pool: tuple[int, int] = (0, 0)  # KLL: the block's items are pool[a:b], contiguous
    pool_bytes_per_item: int = 0

    @property
    def nbytes(self) -> int:
        rows = (self.rows[1] - self.rows[0]) * self.row_bytes
        items = (self.pool[1] - self.pool[0]) * self.pool_bytes_per_item
        return int(sum(a.nbytes for a in self.by_end)) + rows + items


class WindowTable:
    def __init__(self, config: AggregationConfig) -> None:
        self.config = config
        self.family = family(config.aggregation_type)
        self.names = _FAMILY_COLS.get(self.family, MOMENT_COLS)
        per_row = _SEG_COLS if self.family == "kll" else self.names
        self.row_names = ("end", "kid", "seq", *per_row)
        slide = config.slide_interval_ms
        self.block_ms = slide * max(1, round(BLOCK_TARGET_MS / slide))
        self.key_ids: dict[Key, int] = {}
        self.lock = threading.RLock()
        self.footprint = 0  # bytes of cached blocks + pool slack (read by sketch_cache)
        self.generation = 0  # bumped by every change of blocks or pools (see ``compact``)
        self.decoded_records = 0  # records decoded over the table's life (tests, ANALYZE)
        self._reset()

    def _reset(self) -> None:
        self.key_ids.clear()
        self.key_epoch = getattr(self, "key_epoch", 0) + 1  # key ids renumbered from here
        self.rows_kept: dict[int, tuple[dict, tuple[int, int], np.ndarray]] = {}
        self.seen = 0
        self.first: Any = None
        self.last: Any = None
        self.span_ends: tuple[int, int] | None = None
        self.index: dict[int, _Listed] = {}  # block → its records and their log positions
        self.blocks: dict[int, _Block] = {}
        cache.forget(self)
        self.generation += 1
        # Decoded rows of every cached block in one pool per column (each block a contiguous
        # range), so a query's selection is one gather per column however many blocks it reads.
        self.row_pool = {n: Growing(_dtype(n)) for n in self.row_names}
        self.items, self.cumw = Growing(np.float64), Growing(np.int32)
        self.dead_rows = 0  # pool rows of evicted or re-decoded blocks
        self.dead_items = 0  # pool items of evicted or re-decoded blocks
        self.sub_cache: dict[tuple[Key, tuple[Key, ...]], np.ndarray] = {}
        self.worker_maps: dict[tuple[int, Key], tuple[list[Key], np.ndarray]] = {}
        self.footprint = 0

    # --- following the store ----------------------------------------------------------------

    def sync(self, store: SketchStore) -> None:
        """Index records appended since the last sync by block (no decoding)."""
        # Columnar records (``WindowBatch``: every group whose window closed together) stay
        # unexpanded; stores without them give per-entry views.
        mark = getattr(store, "chunk_mark", None)
        if self.seen and mark is not None:
            # The usual refresh: nothing appended, and the log not rebuilt (no list copy).
            n, first, last = mark(self.config.aggregation_id, self.seen)
            if n == self.seen and first is self.first and last is self.last:
                return
        reader = getattr(store, "chunk_view", None) or store.log_view
        view = reader(self.config.aggregation_id)
        if self.seen and (
            len(view) < self.seen
            or view[0] is not self.first
            or view[self.seen - 1] is not self.last
        ):
            self._reset()  # the log was rebuilt (retention, removal): start over
        if len(view) == self.seen:
            return
        self._index_records(view)
        self.first, self.last, self.seen = view[0], view[-1], len(view)

    def _index_records(self, view: list) -> None:
        """Add ``view[seen:]`` to the block index: window bounds read once per record (~0.1 µs
        each), grouping by block with numpy."""
        cfg, n = self.config, len(view) - self.seen
        new = view[self.seen :]
        ends = np.fromiter((r.window_end for r in new), dtype=np.int64, count=n)
        starts = np.fromiter((r.window_start for r in new), dtype=np.int64, count=n)
        # Written under another definition of this aggregation id: not ours.
        ours = (ends - starts == cfg.window_size_ms) & (ends % cfg.slide_interval_ms == 0)
        pos = np.flatnonzero(ours)
        if pos.shape[0] == 0:
            return
        ends = ends[pos]
        blocks = ends // self.block_ms
        order = np.argsort(blocks, kind="stable")  # log order within a block
        blocks, pos = blocks[order], pos[order] + self.seen
        cut = [*np.flatnonzero(np.r_[True, blocks[1:] != blocks[:-1]]).tolist(), len(pos)]
        for a, z in itertools.pairwise(cut):
            at = pos[a:z].tolist()
            listed = self.index.setdefault(int(blocks[a]), _Listed([], []))
            listed.pos += at
            listed.recs += [view[p] for p in at]
        lo, hi = int(ends.min()), int(ends.max())
        if self.span_ends is not None:
            lo, hi = min(lo, self.span_ends[0]), max(hi, self.span_ends[1])
        self.span_ends = (lo, hi)

    def span(self) -> tuple[int, int] | None:
        """(oldest, newest) window end stored."""
        return self.span_ends

    def select(self, store: SketchStore, ends: np.ndarray) -> Selection:
        """Sync, decode the blocks holding ``ends`` (sorted) that are missing or stale, and
        gather their rows at those ends. Call with ``lock`` held."""
        with cache.reading():  # the warm-up waits while queries read
            return self._select(store, ends)

    def _select(self, store: SketchStore, ends: np.ndarray) -> Selection:
        self.sync(store)
        parts: list[tuple[_Block, np.ndarray, np.ndarray]] = []
        # Newest block first, so the query's oldest blocks are the most recently used: when its
        # blocks exceed the budget, the newest are evicted (they also change most, with new and
        # late windows) and the same query next time decodes only that overflow, instead of
        # every block in turn (LRU under a sequential scan).
        wanted = [b for b in np.unique(ends // self.block_ms)[::-1].tolist() if self.index.get(b)]
        stale = [b for b in wanted if not self._current(b)]
        for i, b in enumerate(stale):
            blk = self._decode(b, self.index[b])
            if i == 0 and len(stale) > 1:
                self._reserve_like(blk, sum(len(self.index[x]) for x in stale[1:]))
        cache.count("misses", len(stale))
        cache.count("hits", len(wanted) - len(stale))
        for b in wanted:
            blk = self.blocks[b]
            cache.touch(self, b, blk.nbytes)
            rows, col = _rows_at(blk.by_end, ends)
            parts.append((blk, rows, col))
        out = self._gather(parts[::-1])
        self._publish()
        # Eviction (dropping blocks, compacting pools) is the evictor's, after the reads end:
        # this query may hold more than the budget until then, it never waits for it.
        cache.request_eviction()
        return out

    def _current(self, b: int) -> bool:
        blk = self.blocks.get(b)
        return blk is not None and blk.records == len(self.index.get(b, ()))

    def _reserve_like(self, blk: _Block, records: int) -> None:
        """Make room in the pools for ``records`` more log records shaped like ``blk``'s: a
        query decoding many blocks grows each pool once instead of by a quarter per block
        (which copied the items ~5 times over: half of a cold quantile query's time)."""
        per = max(1, blk.records)
        rows = (blk.rows[1] - blk.rows[0]) * records // per
        for pool in self.row_pool.values():
            pool.reserve(rows + rows // 16)
        items = (blk.pool[1] - blk.pool[0]) * records // per
        for pool in (self.items, self.cumw):
            pool.reserve(items + items // 16)

    def blocks_newest_first(self, store: SketchStore) -> list[int]:
        """The blocks holding stored window ends, newest first (call with ``lock`` held)."""
        self.sync(store)
        return sorted(self.index, reverse=True)

    def warm(self, store: SketchStore, b: int) -> int:
        """Decode block ``b`` unless it is cached and current, as the least recently used block
        (a query's blocks outrank it). Records decoded (0: nothing to do). Call with ``lock``
        held."""
        self.sync(store)
        records = self.index.get(b)
        blk = self.blocks.get(b)
        if not records or (blk is not None and blk.records == len(records)):
            return 0
        blk = self._decode(b, records)
        cache.touch(self, b, blk.nbytes, coldest=True)
        self._publish()
        return len(records)

    def _publish(self) -> None:
        self.footprint = sum(blk.nbytes for blk in self.blocks.values()) + self.slack_bytes()

    def _gather(self, parts: list[tuple[_Block, np.ndarray, np.ndarray]]) -> Selection:
        rows = _cat([p[1] for p in parts], np.int64)
        col = _cat([p[2] for p in parts], np.int64)
        pool = {n: g.view() for n, g in self.row_pool.items()}
        kid = np.take(pool["kid"], rows)
        if self.family != "kll":
            return Selection(kid, col, pool, rows)
        seg = {n: np.take(pool[n], rows) for n in _SEG_COLS}
        segments = Segments(self.items.view(), self.cumw.view(), seg["lo"], seg["hi"], seg["exact"])
        return Selection(kid, col, pool, rows, segments, seg["k"])

    def rows_for(self, keys: dict[Key, int], n_series: int) -> np.ndarray:
        """Per key id, the query's series row (-1: not asked for); read-only. Kept per ``keys``
        mapping (the same object each refresh, ``precomputed_scan``'s memo) while no key id
        was added or renumbered: a dict walk per series was ~0.4 ms at 1,000 series."""
        state = (len(self.key_ids), self.key_epoch)
        kept = self.rows_kept.get(id(keys))
        if kept is not None and kept[0] is keys and kept[1] == state:
            return kept[2]
        out = np.full(len(self.key_ids), -1, dtype=np.int64)
        for key, row in keys.items():
            kid = self.key_ids.get(key)
            if kid is not None:
                out[kid] = row
        out.flags.writeable = False
        if len(self.rows_kept) >= 16:
            self.rows_kept.clear()
        self.rows_kept[id(keys)] = (keys, state, out)
        return out

    # --- decoding ---------------------------------------------------------------------------

    def _decode(self, b: int, records: _Listed) -> _Block:
        self.generation += 1  # an unlocked compaction's copy no longer matches
        old = self.blocks.pop(b, None)
        if old is not None:
            self.dead_rows += old.rows[1] - old.rows[0]
            self.dead_items += old.pool[1] - old.pool[0]
        builder = _Builder(self)
        if self.family == "kll":
            builder.add_entries(records)
        else:
            for pos, rec in zip(records.pos, records.recs, strict=True):
                builder.add(pos, rec)
        cols, extra = builder.build()
        a = self.row_pool["end"].size
        for n, pool in self.row_pool.items():
            pool.extend(cols[n])
        z = self.row_pool["end"].size
        by_end = _group_by_end(cols["end"], a)
        blk = _Block(len(records), (a, z), by_end, self._row_bytes(), **extra)
        self.blocks[b] = blk
        self.decoded_records += len(records)
        cache.count("decoded_records", len(records))
        return blk

    def _kid(self, key: Key) -> int:
        kid = self.key_ids.get(key)
        if kid is None:
            kid = self.key_ids[key] = len(self.key_ids)
        return kid

    def batch_kids(self, keys) -> np.ndarray:
        """Key ids of a batch's rows. Keys named by row ids into a worker's key table
        (``KeyRows``) map through a per-table array extended only for new rows; plain key lists
        are mapped once per distinct list."""
        table, rows = getattr(keys, "table", None), getattr(keys, "rows", None)
        if table is not None and rows is not None:
            return self.table_kids(table, rows)
        return self.list_kids((), tuple(keys))

    def table_kids(self, table: list[Key], rows: np.ndarray, prefix: Key = ()) -> np.ndarray:
        """Key ids of ``prefix + table[r]`` for rows ``r`` of a worker's append-only key table,
        through a per-(table, prefix) array extended only for rows not seen before."""
        mapping = self.worker_maps.get((id(table), prefix))
        if mapping is None or mapping[0] is not table:
            mapping = (table, np.zeros(0, dtype=np.int64))
        known = mapping[1]
        if rows.shape[0] and int(rows.max()) >= known.shape[0]:
            new = table[known.shape[0] : int(rows.max()) + 1]
            extra = np.array([self._kid(prefix + k) for k in new], dtype=np.int64)
            known = np.concatenate([known, extra])
        self.worker_maps[(id(table), prefix)] = (table, known)
        return known[np.asarray(rows, dtype=np.int64)]

    def list_kids(self, prefix: Key, subs: tuple[Key, ...]) -> np.ndarray:
        """Key ids of ``prefix + s`` for each sub key; consecutive windows usually list the
        same keys, so each distinct list is mapped once."""
        kids = self.sub_cache.get((prefix, subs))
        if kids is None:
            kids = np.array([self._kid(prefix + s) for s in subs], dtype=np.int64)
            self.sub_cache[(prefix, subs)] = kids
        return kids

    def drop(self, b: int) -> bool:
        """Evict block ``b`` (call with ``lock`` held): its rows and items stay in the pools, dead,
        until ``compact`` (the evictor's, once per pass). False if it was not cached."""
        blk = self.blocks.pop(b, None)
        if blk is None:
            return False
        self.dead_rows += blk.rows[1] - blk.rows[0]
        self.dead_items += blk.pool[1] - blk.pool[0]
        self.generation += 1
        self._publish()
        return True

    def compact(self) -> bool | None:
        """Copy the live blocks' rows and items into exactly sized pools, freeing dead rows and
        spare capacity. The copy runs without ``lock`` (held only to look and to install), so a
        query on this table need not wait for it; if the table changed meanwhile, nothing is
        installed and the result is None (call again). False: nothing to free. Selections
        handed out earlier keep the old buffers (their views), so they stay valid."""
        with self.lock:
            if self.slack_bytes() == 0:
                return False
            generation = self.generation
            live = sorted(self.blocks.items(), key=lambda kv: kv[1].rows[0])
            rows = {n: g.view() for n, g in self.row_pool.items()}
            kll = self.family == "kll"
            items = (self.items.view(), self.cumw.view()) if kll else None
        row_ranges = np.array([blk.rows for _, blk in live], dtype=np.int64).reshape(-1, 2)
        item_ranges = np.array([blk.pool for _, blk in live], dtype=np.int64).reshape(-1, 2)
        got = compact_copy(rows, row_ranges, items, item_ranges if kll else None)
        with self.lock:
            if self.generation != generation:
                return None
            for i, (b, blk) in enumerate(live):
                ra, ia = int(got.row_at[i]), int(got.item_at[i])
                uniq, starts, order = blk.by_end
                self.blocks[b] = _replace(
                    blk,
                    rows=(ra, ra + blk.rows[1] - blk.rows[0]),
                    by_end=(uniq, starts, order + (ra - blk.rows[0])),
                    pool=(ia, ia + blk.pool[1] - blk.pool[0]),
                )
            self.row_pool, self.dead_rows, self.dead_items = got.rows, 0, 0
            if got.items is not None and got.cumw is not None:
                self.items, self.cumw = got.items, got.cumw
            self.generation += 1
            self._publish()
        return True

    def dead_bytes(self) -> int:
        """Pool bytes of evicted or re-decoded blocks (what ``compact`` frees besides spare
        capacity)."""
        per_item = self.items.buf.dtype.itemsize + self.cumw.buf.dtype.itemsize
        return self.dead_rows * self._row_bytes() + self.dead_items * per_item

    def _row_bytes(self) -> int:
        return sum(g.buf.dtype.itemsize for g in self.row_pool.values())

    def slack_bytes(self) -> int:
        """Pool bytes no cached block accounts for: spare capacity and evicted blocks' rows
        and items."""
        per_item = self.items.buf.dtype.itemsize + self.cumw.buf.dtype.itemsize
        # A snapshot: the evictor asks without the table's lock while a query may add blocks.
        blocks = tuple(self.blocks.values())
        live_items = sum(blk.pool[1] - blk.pool[0] for blk in blocks)
        live_rows = sum(blk.rows[1] - blk.rows[0] for blk in blocks)
        rows = (self.row_pool["end"].buf.shape[0] - live_rows) * self._row_bytes()
        return (self.items.buf.shape[0] - live_items) * per_item + rows


def _replace(blk: _Block, **changes) -> _Block:
    import dataclasses

    return dataclasses.replace(blk, **changes)


def _dtype(name: str):
    if name == "exact":
        return np.bool_
    return np.int64 if name in _INT_COLS else np.float64


class _Builder:
    """Rows of one block, decoded record by record in log order."""

    def __init__(self, table: WindowTable) -> None:
        self.t = table
        self.pending: list[tuple[int, int, np.ndarray, dict[str, np.ndarray]]] = []
        self.scalars: list[tuple[int, int, int, tuple]] = []  # (end, pos, key id, statistics)
        self.kll: list[bytes] = []  # serialized KLL accumulators, decoded together in build
        self.kll_rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # end, pos, kid

    def add_entries(self, records: _Listed) -> None:
        """KLL windows (entries, never window batches): keys and serialized bytes only, the
        decoding is ``build``'s, for all of them at once (no Python object per window kept:
        a block's ~5 k tuples would cost more in garbage collection than in building)."""
        kid, recs, n = self.t._kid, records.recs, len(records)
        ends = np.fromiter((r.window_end for r in recs), dtype=np.int64, count=n)
        kids = np.fromiter((kid(r.key) for r in recs), dtype=np.int64, count=n)
        self.kll_rows.append((ends, np.array(records.pos, dtype=np.int64), kids))
        self.kll += [r.data for r in recs]

    def add(self, pos: int, entry: Any) -> None:
        from planner.nodes.precomputed_scan import _keyed_columns, _scalar_columns

        t, end = self.t, entry.window_end
        if not isinstance(entry, SketchEntry):  # a WindowBatch
            cols = {n: np.asarray(entry.columns[n]) for n in t.names}
            self.pending.append((end, pos, t.batch_kids(entry.keys), cols))
            return
        if t.family == "kll":
            self.add_entries(_Listed([pos], [entry]))
            return
        # An entry the engine emitted in this process still holds its accumulator (never
        # changed after emit): reading it saves serializing and parsing it again.
        acc = getattr(entry, "_acc", None) or entry.accumulator()
        if not acc.keyed:
            cols = _scalar_columns(acc, t.family)
            stats = tuple(cols[n][0] for n in t.names)
            self.scalars.append((end, pos, t._kid(entry.key), stats))
            return
        table = getattr(getattr(acc, "interner", None), "table", None)
        if t.family == "counter" and table is not None and hasattr(acc, "_present"):
            # Still in its worker's key table (emitted in this process): rows are table ids,
            # mapped through an array instead of listing and hashing every window's keys.
            got = acc.columns()  # the rows holding samples, as ``_present()`` lists them
            kids = t.table_kids(table, acc._present(), entry.key)
            self.pending.append((end, pos, kids, {n: getattr(got, n) for n in t.names}))
            return
        subs, rows, cols = _keyed_columns(acc, t.family)
        kids = t.list_kids(entry.key, subs)
        self.pending.append((end, pos, kids, {n: cols[n][rows] for n in t.names}))

    def build(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The block's row columns (``WindowTable.row_names``) and, for KLL, its item range."""
        t = self.t
        ends, seqs, kids = [], [], []
        cols: dict[str, list[np.ndarray]] = {n: [] for n in t.names}
        for end_, pos_, kid_ in self.kll_rows:
            ends.append(end_)
            seqs.append(pos_)
            kids.append(kid_)
        for end, pos, k, c in self.pending:
            ends.append(np.full(k.shape[0], end, np.int64))
            seqs.append(np.full(k.shape[0], pos, np.int64))
            kids.append(k)
            for n in t.names:
                cols[n].append(c[n])
        if self.scalars:
            ends.append(np.array([s[0] for s in self.scalars], dtype=np.int64))
            seqs.append(np.array([s[1] for s in self.scalars], dtype=np.int64))
            kids.append(np.array([s[2] for s in self.scalars], dtype=np.int64))
            if t.family != "kll":
                for i, n in enumerate(t.names):
                    cols[n].append(np.array([s[3][i] for s in self.scalars], dtype=_dtype(n)))
        out = {"end": _cat(ends, np.int64), "kid": _cat(kids, np.int64)}
        out["seq"] = _cat(seqs, np.int64)
        if t.family != "kll":
            return out | {n: _cat(v, _dtype(n)) for n, v in cols.items()}, {}
        seg, extra = self._segments()
        return out | seg, extra

    def _segments(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Append the block's segments to the table's pool (contiguously)."""
        assert not self.pending, "KLL windows arrive as entries, not window batches"
        t = self.t
        a = t.items.size
        if not self.kll:
            z = np.zeros(0, np.int64)
            return {"lo": z, "hi": z, "exact": z.astype(bool), "k": z}, {"pool": (a, a)}
        got = decode_kll(self.kll, t.items.claim)  # items decoded into the pool
        cumw = local_cumsum(got.weights, got.sizes[got.order])
        if cumw.dtype != t.cumw.buf.dtype:  # a window of 2^31+ values: widen, once
            t.cumw.widen(cumw.dtype)
        lo = a + got.starts
        t.cumw.extend(cumw)
        seg = {"lo": lo, "hi": lo + got.sizes, "exact": got.exact, "k": got.k}
        per_item = 8 + t.cumw.buf.dtype.itemsize
        return seg, {"pool": (a, t.items.size), "pool_bytes_per_item": per_item}


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _rows_at(by_end, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose window end is one of ``ends`` (sorted), and the position of that end: work in
    proportion to the rows read, not to the block."""
    uniq, starts, order = by_end
    if uniq.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(uniq, ends), uniq.shape[0] - 1)
    hit = np.flatnonzero(uniq[pos] == ends)
    a, b = starts[pos[hit]], starts[pos[hit] + 1]
    return order[ramp(a, b - a)], np.repeat(hit, b - a)


def _group_by_end(end: np.ndarray, base: int = 0):
    """(distinct ends, start of each one's rows in ``order`` + a final end, ``order``: row ids
    (``base`` + block row) sorted by end, stable — so rows of one end stay in log order)."""
    if end.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64)
    order = np.argsort(end, kind="stable")
    sorted_end = end[order]
    cut = np.flatnonzero(np.r_[True, sorted_end[1:] != sorted_end[:-1]])
    starts = np.append(cut, end.shape[0]).astype(np.int64)
    return sorted_end[cut], starts, order.astype(np.int64) + base


# --- one table per (store, aggregation definition) ----------------------------------------

_TABLES: weakref.WeakKeyDictionary[Any, dict[AggregationConfig, WindowTable]] = (
    weakref.WeakKeyDictionary()
)
_GUARD = threading.Lock()


def table_for(store: SketchStore, config: AggregationConfig) -> WindowTable:
    with _GUARD:
        per_store = _TABLES.setdefault(store, {})
        table = per_store.get(config)
        if table is None:
            table = per_store[config] = WindowTable(config)
    return table
