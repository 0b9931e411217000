"""Run the promqltest corpus through Tidemark's engine, in process.

One in-memory store per file (``clear`` starts a fresh one). Engine settings are the upstream
test engine's (``promqltest.NewTestEngine``): max samples 10000, timeout 100 s, lookback 5m,
subqueries without a step use 1m, delayed ``__name__`` removal and experimental syntax on.
Instant evals also run the two extra checks upstream makes: the ``@ <eval time>`` variants and
the same query as a range query whose middle step must equal the instant result.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from promql.errors import TidemarkError
from promql.types import ValueType
from storage.model import Labels, SampleBatch
from tests.conformance.classify import NATIVE_HISTOGRAM, StoreFacts, classify
from tests.conformance.compare import (
    Mismatch,
    almost_equal,
    check_annotations,
    check_failure,
    check_result,
    check_sorted,
    check_vector,
)
from tests.conformance.dsl import ClearCmd, DslError, EvalCmd, LoadCmd, parse_file
from tests.conformance.rewrite import QUERY_CONTEXT_FUNCS, at_modifier_variants

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(
    os.environ.get(
        "TIDEMARK_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance" / "promql-testdata"
    )
)

ENGINE_SETTINGS: dict[str, object] = {
    "lookback_ms": 300_000,
    "max_samples": 10_000,
    "timeout_s": 100.0,
    "default_subquery_step_ms": 60_000,
    "delayed_name_removal": True,
    "experimental": True,
}


@dataclass(frozen=True)
class CaseOutcome:
    file: str
    line: int
    expr: str
    group: str
    status: str  # passed | failed | skipped
    reason: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class RunOptions:
    extra_checks: bool = True  # the @-variant and instant-as-range re-runs
    skip_native_histograms: bool = True


def corpus_files(directory: Path = DEFAULT_DIR) -> list[Path]:
    return sorted(directory.glob("*.test"))


def run_corpus(
    files: Sequence[Path] | None = None, options: RunOptions | None = None
) -> list[CaseOutcome]:
    outcomes: list[CaseOutcome] = []
    for path in files if files is not None else corpus_files():
        outcomes.extend(run_file(path, options))
    return outcomes


def run_file(path: Path, options: RunOptions | None = None) -> list[CaseOutcome]:
    options = options or RunOptions()
    try:
        commands = parse_file(path.read_text(encoding="utf-8"))
    except DslError as exc:
        return [CaseOutcome(path.name, exc.line, "", "core", "failed", f"test file: {exc}")]
    state = _FileState(path.name)
    outcomes: list[CaseOutcome] = []
    for cmd in commands:
        if isinstance(cmd, ClearCmd):
            state.reset()
        elif isinstance(cmd, LoadCmd):
            state.load(cmd)
        else:
            outcomes.append(state.evaluate(cmd, options))
    state.close()
    return outcomes


class _FileState:
    """The store, engine and grouping facts of one test file between ``clear`` commands."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.storage = None
        self.engine = None
        self.facts = StoreFacts()
        self.load_error: str | None = None
        self.reset()

    def reset(self) -> None:
        from planner.engine import Engine, EngineOptions
        from storage.db import Storage

        self.close()
        known = {f.name for f in dataclasses.fields(EngineOptions)}
        settings = {k: v for k, v in ENGINE_SETTINGS.items() if k in known}
        self.storage = Storage.in_memory()
        self.engine = Engine(self.storage, EngineOptions(**settings))
        self.facts = StoreFacts()
        self.load_error = None

    def close(self) -> None:
        if self.storage is not None:
            self.storage.close()
            self.storage = None

    def load(self, cmd: LoadCmd) -> None:
        self.facts.start_timestamps |= cmd.start_timestamps
        for desc in cmd.series:
            if desc.histogram:
                self.facts.histogram_series.append(desc.labels)
            names = {k for k, _ in desc.labels}
            if "__type__" in names or "__unit__" in names:
                self.facts.type_and_unit = True
        if cmd.with_nhcb:
            self.facts.histogram_series.extend(nhcb_base_series(s.labels for s in cmd.series))
        batch = load_batch(cmd)
        if len(batch) == 0:
            return
        try:
            self.storage.append(batch)
        except Exception as exc:  # a storage rejection fails every later eval of this store
            self.load_error = f"load at line {cmd.line} failed: {type(exc).__name__}: {exc}"

    def evaluate(self, cmd: EvalCmd, options: RunOptions) -> CaseOutcome:
        group, why = classify(cmd, self.facts)
        if group == NATIVE_HISTOGRAM and options.skip_native_histograms:
            return CaseOutcome(self.name, cmd.line, cmd.expr, group, "skipped", why)
        started = time.perf_counter()
        try:
            if self.load_error is not None:
                raise Mismatch(self.load_error)
            if cmd.is_range:
                _run_range_eval(self.engine, cmd)
            else:
                _run_instant_eval(self.engine, cmd, options.extra_checks)
        except Mismatch as exc:
            return self._outcome(cmd, group, "failed", str(exc), started)
        except Exception as exc:  # an engine crash is a failure of this case, not of the run
            reason = f"internal error: {type(exc).__name__}: {exc}"
            return self._outcome(cmd, group, "failed", reason, started)
        return self._outcome(cmd, group, "passed", why, started)

    def _outcome(self, cmd: EvalCmd, group: str, status: str, reason: str, t0: float):
        seconds = time.perf_counter() - t0
        return CaseOutcome(self.name, cmd.line, cmd.expr, group, status, reason, seconds)


def load_batch(cmd: LoadCmd) -> SampleBatch:
    """The float samples of a ``load`` block as one batch (histogram series are not loaded)."""
    series: list[Labels] = []
    idx: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for desc in cmd.series:
        if desc.histogram or not desc.values:
            continue
        raw = np.array([np.nan if v is None else v for v in desc.values], dtype=np.float64)
        present = np.array([v is not None for v in desc.values], dtype=bool)
        steps = np.nonzero(present)[0]
        if steps.size == 0:
            continue
        idx.append(np.full(steps.size, len(series), dtype=np.int64))
        ts.append(steps.astype(np.int64) * cmd.interval_ms)
        vals.append(raw[steps])
        series.append(desc.labels)
    if not series:
        empty_i = np.zeros(0, dtype=np.int64)
        return SampleBatch([], empty_i, empty_i, np.zeros(0, dtype=np.float64))
    return SampleBatch(series, np.concatenate(idx), np.concatenate(ts), np.concatenate(vals))


def nhcb_base_series(labels: Iterable[Labels]) -> list[Labels]:
    """Series ``load_with_nhcb`` adds: classic histogram families as native histograms."""
    out: list[Labels] = []
    for ls in labels:
        d = dict(ls)
        name = d.get("__name__", "")
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix):
                d["__name__"] = name[: -len(suffix)]
                d.pop("le", None)
                out.append(tuple(sorted(d.items())))
                break
    return out


def _run_range_eval(engine, cmd: EvalCmd) -> None:
    try:
        result = engine.range_query(cmd.expr, cmd.start_ms, cmd.end_ms, cmd.step_ms)
    except TidemarkError as exc:
        if cmd.fail:
            check_failure(cmd, str(exc))
            return
        raise Mismatch(f"error evaluating query: {exc}") from exc
    if cmd.fail:
        raise Mismatch("expected error evaluating query but got none")
    check_annotations(cmd, cmd.expr, result)
    check_result(cmd, result)


def _run_instant_eval(engine, cmd: EvalCmd, extra_checks: bool) -> None:
    queries = [(cmd.expr, cmd.eval_ms)]
    if extra_checks:
        try:
            queries += at_modifier_variants(cmd.expr, cmd.eval_ms)
        except TidemarkError as exc:
            raise Mismatch(f"expression does not parse: {exc}") from exc
    for expr, t in queries:
        _run_instant_query(engine, cmd, expr, t, extra_checks)


def _run_instant_query(engine, cmd: EvalCmd, expr: str, t: int, extra_checks: bool) -> None:
    label = "" if expr == cmd.expr else f" [@ variant {expr!r} at {t}]"
    try:
        result = engine.instant_query(expr, t)
    except TidemarkError as exc:
        if cmd.fail:
            check_failure(cmd, str(exc))
            return
        raise Mismatch(f"error evaluating query{label}: {exc}") from exc
    if cmd.fail:
        raise Mismatch(f"expected error evaluating query but got none{label}")
    try:
        check_annotations(cmd, expr, result)
        check_result(cmd, result)
    except Mismatch as exc:
        raise Mismatch(f"{exc}{label}") from exc
    if not extra_checks or cmd.exclude_from_range or QUERY_CONTEXT_FUNCS.search(expr):
        return
    _check_range_mode(engine, cmd, expr, t, result.result_type)


def _check_range_mode(engine, cmd: EvalCmd, expr: str, t: int, kind: ValueType) -> None:
    """The instant query as a range query t-1m..t+1m step 1m: the middle step must match."""
    try:
        rng = engine.range_query(expr, t - 60_000, t + 60_000, 60_000)
    except TidemarkError as exc:
        raise Mismatch(f"error evaluating {expr!r} in range mode: {exc}") from exc
    if cmd.ordered:
        return
    check_sorted(rng)
    vec: list[tuple[Labels, float]] = []
    for s in rng.series:
        hit = np.nonzero(np.asarray(s.timestamps) == t)[0]
        if hit.size:
            vec.append((s.labels, float(s.values[hit[0]])))
    try:
        if kind == ValueType.SCALAR:
            if not vec:
                raise Mismatch("scalar query returned no point at the middle step")
            if cmd.scalar is None or not almost_equal(cmd.scalar, vec[0][1]):
                raise Mismatch(f"expected scalar {cmd.scalar} but got {vec[0][1]}")
        else:
            check_vector(cmd, vec)
    except Mismatch as exc:
        raise Mismatch(f"range mode ({expr!r} at {t}): {exc}") from exc
