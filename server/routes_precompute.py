"""Precompute wiring and endpoints: ``--precompute FILE.yaml`` and engine flags on ``tidemark
serve``, the storage listener, ``/api/v1/precompute/{status,windows,config}`` and the engine's
counters on ``/metrics``.

``serve`` calls ``add_arguments`` (flags) and ``configure(args, storage, data_dir)`` (builds the
engine, its sketch store under ``DATA_DIR/precompute`` and its snapshot file, and attaches it to
the storage as a listener). ``setup(app)`` finds that runtime by the app's storage; an app built
without it (tests, other tools) gets an engine with no aggregations and an in-memory sketch
store, to which ``PUT /api/v1/precompute/config`` can still add aggregations.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from planner import raw_step_cache, sketch_cache, step_cache
from planner.sketch_warmup import Warmup, share_from_env
from planner.sketch_warmup import enabled as warmup_enabled
from precompute.accumulators.base import Accumulator
from precompute.config import (
    AggregationConfig,
    EngineOptions,
    LateDataPolicy,
    StreamingConfig,
    load_config,
    parse_config,
)
from precompute.engine import NO_HISTORY_MS, PrecomputeEngine
from precompute.output import StoreSink
from promql.errors import BadDataError, UnavailableError
from server.config import EXTRA_METRICS, READ_POOL, STORAGE
from server.errors import success_response
from server.timeparse import time_param
from storage.sketch_store import SketchStore

_MIN_MS, _MAX_MS = -(2**62), 2**62


@dataclass
class PrecomputeRuntime:
    engine: PrecomputeEngine
    store: SketchStore
    storage: Any
    closed: bool = False

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if hasattr(self.storage, "remove_listener"):
            with contextlib.suppress(ValueError):
                self.storage.remove_listener(self.engine.on_batch)
        self.engine.stop(snapshot=True)
        self.store.close()


RUNTIME = web.AppKey("tidemark_precompute", PrecomputeRuntime)
_RUNTIMES: weakref.WeakKeyDictionary[Any, PrecomputeRuntime] = weakref.WeakKeyDictionary()


# --- CLI ---------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("precompute (streaming windowed sketches)")
    g.add_argument("--precompute", metavar="FILE.yaml", help="StreamingConfig YAML to run")
    g.add_argument("--precompute-workers", type=int, dest="pc_num_workers")
    g.add_argument("--precompute-backend", choices=["thread", "process"], dest="pc_backend")
    g.add_argument("--allowed-lateness-ms", type=int, dest="pc_allowed_lateness_ms")
    g.add_argument(
        "--late-data-policy", choices=[p.value for p in LateDataPolicy], dest="pc_late_data_policy"
    )
    g.add_argument("--flush-interval-ms", type=int, dest="pc_flush_interval_ms")
    g.add_argument("--max-buffer-per-series", type=int, dest="pc_max_buffer_per_series")
    g.add_argument(
        "--pass-raw-samples", action="store_true", default=None, dest="pc_pass_raw_samples"
    )
    g.add_argument("--raw-mode-aggregation-id", type=int, dest="pc_raw_mode_aggregation_id")
    g.add_argument("--precompute-retention", type=int, metavar="MS", dest="pc_retention_ms")


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for name in EngineOptions.__dataclass_fields__:
        value = getattr(args, f"pc_{name}", None)
        if value is not None:
            out[name] = LateDataPolicy(value) if name == "late_data_policy" else value
    return out


def configure(args: argparse.Namespace, storage: Any, data_dir: Path) -> PrecomputeRuntime | None:
    """Build and attach the engine for ``serve`` (None when ``--precompute`` is absent)."""
    if not getattr(args, "precompute", None):
        return None
    config = load_config(args.precompute)
    # Flags override the YAML's engine section.
    options = replace(config.engine, **_flag_overrides(args)).validated()
    config = StreamingConfig(config.aggregations, options)
    directory = Path(data_dir) / "precompute"
    directory.mkdir(parents=True, exist_ok=True)
    store = SketchStore(directory / "sketches", retention_ms=getattr(args, "pc_retention_ms", None))
    return attach(storage, config, store, directory / "open_panes.snapshot")


def attach(
    storage: Any, config: StreamingConfig, store: SketchStore, snapshot_path: Path | None = None
) -> PrecomputeRuntime:
    # An empty storage means the engine sees every sample: its windows are complete from the
    # start (PrecomputeEngine.coverage); otherwise what was stored before is unknown to it.
    stats = storage.stats() if hasattr(storage, "stats") else {}
    empty = bool(stats) and not stats.get("head_samples") and not stats.get("block_samples")
    engine = PrecomputeEngine(
        config,
        StoreSink(store),
        snapshot_path=snapshot_path,
        history_through_ms=NO_HISTORY_MS if empty else None,
        stored_through_ms=storage.max_time() if hasattr(storage, "max_time") else None,
    ).start()
    storage.add_listener(engine.on_batch)
    runtime = PrecomputeRuntime(engine, store, storage)
    if _weakrefable(storage):
        _RUNTIMES[storage] = runtime
    return runtime


# --- HTTP --------------------------------------------------------------------------------------


async def _blocking(request: web.Request, fn, *args):
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[READ_POOL], fn, *args)


def _runtime(request: web.Request) -> PrecomputeRuntime:
    runtime = request.app.get(RUNTIME)
    if runtime is None:
        raise UnavailableError("the precompute engine is not running on this server")
    return runtime


async def status(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    data = await _blocking(request, runtime.engine.status)
    data["store"] = runtime.store.stats()
    data["sketch_cache"] = sketch_cache.status()  # decoded windows: bytes, budget and its source
    data["step_cache"] = step_cache.stats()  # kept step answers (planner/step_cache.py)
    data["raw_step_cache"] = raw_step_cache.stats()  # kept newest raw steps
    return success_response(data)


def _key_dict(names: tuple[str, ...] | None, key: tuple[str, ...]) -> dict[str, str] | list[str]:
    if names is None or len(names) != len(key):
        return list(key)
    return dict(zip(names, key, strict=True))


def _clean(value: Any) -> Any:
    """JSON-safe statistics: NaN/Inf as Prometheus' strings, tuples keyed by label names."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _window_rows(runtime: PrecomputeRuntime, agg_id: int, start: int, end: int) -> list[dict]:
    cfg: AggregationConfig | None = runtime.engine.configs.get(agg_id)
    grouping = cfg.labels.grouping if cfg else None
    aggregated = cfg.labels.aggregated if cfg else None
    rows = []
    for (key, w_start, w_end), entries in runtime.store.windows(agg_id, start, end).items():
        merged: Accumulator = entries[0].accumulator()
        for e in entries[1:]:
            merged.merge(e.accumulator())
        stats = merged.stats()
        if "keys" in stats:
            stats["keys"] = [
                {"key": _key_dict(aggregated, k["key"]), "stats": k["stats"]} for k in stats["keys"]
            ]
        rows.append(
            {
                "aggregation_id": agg_id,
                "type": merged.type_name,
                "key": _key_dict(grouping, key),
                "start": w_start / 1000,
                "end": w_end / 1000,
                "entries": len(entries),
                "stats": _clean(stats),
            }
        )
    return rows


async def windows(request: web.Request) -> web.Response:
    q = request.query
    raw_id = q.get("aggregation_id")
    if raw_id is None or not raw_id.strip().lstrip("-").isdigit():
        raise BadDataError('invalid parameter "aggregation_id": an integer is required')
    start = time_param(q.get("start"), "start", _MIN_MS)
    end = time_param(q.get("end"), "end", _MAX_MS)
    if end < start:
        raise BadDataError('invalid parameter "end": end timestamp must not be before start time')
    rows = await _blocking(request, _window_rows, _runtime(request), int(raw_id), start, end)
    return success_response(rows)


async def put_config(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    text = await request.text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadDataError(f"precompute config is not valid YAML: {exc}") from exc
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "engine"}  # engine options need a restart
    config = parse_config(data, runtime.engine.options)
    change = await _blocking(request, runtime.engine.update_config, config)
    return success_response(change)


def render_metrics(app: web.Application) -> str:
    runtime = app.get(RUNTIME)
    if runtime is None:
        return ""
    lines: list[str] = []
    seen: set[str] = set()
    for name, value in sorted(runtime.engine.metrics().items()):
        family = name.split("{", 1)[0]
        if family not in seen:
            seen.add(family)
            kind = "counter" if family.endswith("_total") else "gauge"
            lines.append(f"# TYPE {family} {kind}")
        lines.append(f"{name} {value!r}")
    for name, value in sorted(runtime.store.stats().items()):
        lines.append(f"# TYPE tidemark_precompute_{name} gauge")
        lines.append(f"tidemark_precompute_{name} {value!r}")
    return "\n".join(lines) + "\n"


async def _close(app: web.Application) -> None:
    runtime = app.get(RUNTIME)
    if runtime is not None:
        await asyncio.get_running_loop().run_in_executor(None, runtime.close)


WARMUP = web.AppKey("tidemark_sketch_warmup", Warmup)


async def _start_warmup(app: web.Application) -> None:
    """Decode the newest stored windows in the background (planner/sketch_warmup.py)."""
    runtime = app.get(RUNTIME)
    if runtime is None or runtime.closed or not warmup_enabled():
        return
    engine = runtime.engine
    app[WARMUP] = Warmup(
        runtime.store, lambda: list(engine.configs.values()), share_from_env()
    ).start()


async def _stop_warmup(app: web.Application) -> None:
    warmup = app.get(WARMUP)
    if warmup is not None:
        await asyncio.get_running_loop().run_in_executor(None, warmup.stop)


def runtime_for(storage: object) -> PrecomputeRuntime | None:
    """The precompute runtime attached to ``storage``, if any (for the query routes)."""
    return _RUNTIMES.get(storage) if _weakrefable(storage) else None


def setup(app: web.Application) -> None:
    storage = app[STORAGE]
    runtime = runtime_for(storage)
    if runtime is None or runtime.closed:  # e.g. a second app over the same storage
        empty = StreamingConfig((), EngineOptions(flush_interval_ms=1000))
        runtime = (
            attach(storage, empty, SketchStore()) if hasattr(storage, "add_listener") else None
        )
    if runtime is not None:
        app[RUNTIME] = runtime
        app.on_startup.append(_start_warmup)
        app.on_shutdown.append(_stop_warmup)
        app.on_cleanup.append(_close)
        app[EXTRA_METRICS] = [*app.get(EXTRA_METRICS, []), render_metrics]
    app.router.add_get("/api/v1/precompute/status", status)
    app.router.add_get("/api/v1/precompute/windows", windows)
    app.router.add_put("/api/v1/precompute/config", put_config)


def _weakrefable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
        hash(obj)
    except TypeError:
        return False
    return True
