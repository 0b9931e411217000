"""What the engine emits: ``PrecomputedOutput`` + accumulator, and the sinks that receive them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from precompute.accumulators.base import Accumulator
from storage.model import Labels

Key = tuple[str, ...]
Emitted = Any  # a (PrecomputedOutput, Accumulator) pair or a WindowBatch


@dataclass(frozen=True)
class PrecomputedOutput:
    """One closed window (or a late mini-accumulator) of one aggregation and key.

    The window is ``(window_start, window_end]`` in milliseconds.
    """

    aggregation_id: int
    key: Key
    window_start: int
    window_end: int


@dataclass(frozen=True)
class RawSamples:
    """Raw passthrough: samples forwarded unaggregated (``pass_raw_samples``), columnar."""

    aggregation_id: int
    series: list[Labels]
    sample_series: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray


class OutputSink(Protocol):
    """``write`` receives ``(PrecomputedOutput, Accumulator)`` pairs and, from columnar
    aggregations, ``precompute.window_batch.WindowBatch`` records (many windows in one)."""

    def write(self, outputs: Sequence[Emitted]) -> None: ...

    def write_raw(self, raw: RawSamples) -> None: ...


class CapturingSink:
    """Keeps every emit in memory (tests and benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outputs: list[tuple[PrecomputedOutput, Accumulator]] = []
        self.raw: list[RawSamples] = []

    def write(self, outputs: Sequence[Emitted]) -> None:
        from precompute.window_batch import expand

        pairs = expand(list(outputs))
        with self._lock:
            self.outputs.extend(pairs)

    def write_raw(self, raw: RawSamples) -> None:
        with self._lock:
            self.raw.append(raw)

    def drain(self) -> list[tuple[PrecomputedOutput, Accumulator]]:
        with self._lock:
            out, self.outputs = self.outputs, []
        return out

    def __len__(self) -> int:
        return len(self.outputs)


class NoopSink:
    """Discards everything (isolates engine throughput in benchmarks)."""

    def __init__(self) -> None:
        self.windows = 0

    def write(self, outputs: Sequence[Emitted]) -> None:
        from precompute.window_batch import count_windows

        self.windows += count_windows(list(outputs))

    def write_raw(self, raw: RawSamples) -> None:
        return None


class StoreSink:
    """Writes emitted windows and raw passthrough batches to a ``SketchStore``."""

    def __init__(self, store) -> None:  # storage.sketch_store.SketchStore
        self.store = store

    def write(self, outputs: Sequence[Emitted]) -> None:
        self.store.append_outputs(outputs)

    def write_raw(self, raw: RawSamples) -> None:
        from storage.sketch_store import RawBatch

        self.store.append_raw(
            RawBatch(raw.aggregation_id, raw.series, raw.sample_series, raw.timestamps, raw.values)
        )
