"""Tidemark's own metrics for ``/metrics``, rendered in Prometheus text format 0.0.4.

Counters are updated on the event loop (after the worker thread returns), so a plain dict is
enough. Storage gauges and counters are read from ``Storage.stats()`` at scrape time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from planner.raw_step_cache import stats as raw_step_cache_stats
from planner.sketch_table import cache_stats
from planner.sketch_warmup import warmup_stats
from planner.step_cache import stats as step_cache_stats

_STORAGE_METRICS: dict[str, tuple[str, str, str]] = {
    # stats key: (metric name, type, help)
    "series": ("tidemark_storage_series", "gauge", "Series in the label index."),
    "head_samples": ("tidemark_storage_head_samples", "gauge", "Samples in the in-memory head."),
    "blocks": ("tidemark_storage_blocks", "gauge", "Persisted blocks."),
    "block_samples": ("tidemark_storage_block_samples", "gauge", "Samples in persisted blocks."),
    "block_bytes": ("tidemark_storage_block_bytes", "gauge", "Bytes of persisted blocks on disk."),
    "wal_bytes": ("tidemark_storage_wal_bytes", "gauge", "Bytes of write-ahead log on disk."),
    "samples_appended": (
        "tidemark_storage_samples_appended_total",
        "counter",
        "Samples appended to the store.",
    ),
    "compactions": ("tidemark_storage_compactions_total", "counter", "Block compactions run."),
    "compaction_seconds": (
        "tidemark_storage_compaction_seconds_total",
        "counter",
        "Time spent compacting blocks.",
    ),
    "blocks_cut": ("tidemark_storage_blocks_cut_total", "counter", "Blocks cut from the head."),
    "blocks_deleted": (
        "tidemark_storage_blocks_deleted_total",
        "counter",
        "Blocks deleted by retention.",
    ),
    "wal_truncated_bytes": (
        "tidemark_storage_wal_truncated_bytes",
        "gauge",
        "Bytes of torn WAL tail truncated at the last start.",
    ),
}


_SKETCH_CACHE_METRICS: dict[str, tuple[str, str, str]] = {
    # planner.sketch_table.cache_stats key: (metric name, type, help)
    "bytes": ("tidemark_sketch_cache_bytes", "gauge", "Bytes of decoded sketch windows held."),
    "blocks": ("tidemark_sketch_cache_blocks", "gauge", "Decoded blocks of window ends held."),
    "budget_bytes": (
        "tidemark_sketch_cache_budget_bytes",
        "gauge",
        "Memory budget of the decoded sketch windows.",
    ),
    "hits": (
        "tidemark_sketch_cache_hits_total",
        "counter",
        "Blocks of window ends a query found decoded.",
    ),
    "misses": (
        "tidemark_sketch_cache_misses_total",
        "counter",
        "Blocks of window ends decoded (first read, evicted before, or new entries).",
    ),
    "evictions": (
        "tidemark_sketch_cache_evictions_total",
        "counter",
        "Decoded blocks evicted to stay within the budget.",
    ),
    "decoded_records": (
        "tidemark_sketch_cache_decoded_records_total",
        "counter",
        "Sketch store records decoded.",
    ),
    "compactions": (
        "tidemark_sketch_cache_compactions_total",
        "counter",
        "Window tables compacted after evictions (their pools copied without the dropped rows).",
    ),
}

_STEP_CACHE_METRICS: dict[str, tuple[str, str, str]] = {
    # planner.step_cache.stats key: (metric name, type, help)
    "bytes": ("tidemark_step_cache_bytes", "gauge", "Bytes of step answers kept."),
    "budget": ("tidemark_step_cache_budget_bytes", "gauge", "Memory budget of the step answers."),
    "entries": ("tidemark_step_cache_entries", "gauge", "Query shapes with kept step answers."),
    "hits": (
        "tidemark_step_cache_hits_total",
        "counter",
        "Steps answered from kept step answers.",
    ),
    "misses": (
        "tidemark_step_cache_misses_total",
        "counter",
        "Steps not kept (computed from the windows, or from raw data).",
    ),
    "invalidated": (
        "tidemark_step_cache_invalidated_total",
        "counter",
        "Kept steps dropped because a window they span changed or became untrusted.",
    ),
    "evicted": (
        "tidemark_step_cache_evictions_total",
        "counter",
        "Query shapes dropped to stay within the budget.",
    ),
}

_RAW_STEP_CACHE_METRICS: dict[str, tuple[str, str, str]] = {
    # planner.raw_step_cache.stats key: (metric name, type, help)
    "bytes": ("tidemark_raw_step_cache_bytes", "gauge", "Bytes of raw newest-step answers kept."),
    "entries": ("tidemark_raw_step_cache_entries", "gauge", "Raw newest-step answers kept."),
    "hits": (
        "tidemark_raw_step_cache_hits_total",
        "counter",
        "Raw newest-step answers reused: no sample they read was written since.",
    ),
    "misses": (
        "tidemark_raw_step_cache_misses_total",
        "counter",
        "Raw newest-step answers computed: none was kept for them.",
    ),
    "stale": (
        "tidemark_raw_step_cache_stale_total",
        "counter",
        "Kept raw answers computed again: a sample at or before their newest read was written.",
    ),
}


_SKETCH_WARMUP_METRICS: dict[str, tuple[str, str, str]] = {
    # planner.sketch_warmup.warmup_stats key: (metric name, type, help)
    "state": (
        "tidemark_sketch_warmup_state",
        "gauge",
        "Sketch cache warm-up after start: 0 idle/off, 1 running, 2 done, 3 stopped, 4 failed.",
    ),
    "blocks": (
        "tidemark_sketch_warmup_blocks",
        "gauge",
        "Blocks of window ends the latest warm-up decoded.",
    ),
    "records": (
        "tidemark_sketch_warmup_records",
        "gauge",
        "Sketch store records the latest warm-up decoded.",
    ),
    "seconds": (
        "tidemark_sketch_warmup_seconds",
        "gauge",
        "Time the latest warm-up has run.",
    ),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


@dataclass
class ServerMetrics:
    start_time: float = field(default_factory=time.time)
    samples_ingested: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    bytes_ingested: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    requests_ingested: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    rejected: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def ingested(self, fmt: str, samples: int, body_bytes: int) -> None:
        self.samples_ingested[fmt] += samples
        self.bytes_ingested[fmt] += body_bytes
        self.requests_ingested[fmt] += 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def render(self, storage_stats: dict[str, float]) -> str:
        out: list[str] = []
        sketch_cache = cache_stats()

        def family(name: str, kind: str, help_: str, rows: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_fmt(v)}" for labels, v in rows)

        def by(label: str, d: dict[str, float]) -> list[tuple[str, float]]:
            return [(f'{{{label}="{_escape(k)}"}}', v) for k, v in sorted(d.items())]

        family(
            "tidemark_ingest_samples_total",
            "counter",
            "Samples accepted, by ingest format.",
            by("format", self.samples_ingested),
        )
        family(
            "tidemark_ingest_bytes_total",
            "counter",
            "Request body bytes accepted (as received), by ingest format.",
            by("format", self.bytes_ingested),
        )
        family(
            "tidemark_ingest_requests_total",
            "counter",
            "Ingest requests accepted, by ingest format.",
            by("format", self.requests_ingested),
        )
        family(
            "tidemark_requests_rejected_total",
            "counter",
            "Requests answered with an error envelope, by reason (ingest) or errorType.",
            by("reason", self.rejected),
        )
        # One gauge or counter per stats key, for each component's table (storage counters
        # only where the storage reports them).
        for table, stats in (
            (_STORAGE_METRICS, storage_stats),
            (_SKETCH_CACHE_METRICS, sketch_cache),
            (_STEP_CACHE_METRICS, step_cache_stats()),
            (_RAW_STEP_CACHE_METRICS, raw_step_cache_stats()),
            (_SKETCH_WARMUP_METRICS, warmup_stats()),
        ):
            for key, (name, kind, help_) in table.items():
                if key in stats:
                    family(name, kind, help_, [("", stats[key])])
        family(
            "tidemark_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch in seconds.",
            [("", self.start_time)],
        )
        return "\n".join(out) + "\n"
