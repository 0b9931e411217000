"""StreamingConfig YAML → validated frozen dataclasses.

Accepts the seed's YAML as its users write it: a top-level ``aggregations`` list (camelCase keys,
``windowSize``/``slideInterval`` in seconds) and an optional top-level ``engine:`` section with the
engine options (snake_case, as the ``tidemark serve`` flags). Every error names the aggregation
and the field so an operator can fix the file without reading code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import yaml

from precompute.filters import parse_matchers
from promql.errors import BadDataError
from promql.types import Matcher


class WindowType(StrEnum):
    TUMBLING = "tumbling"
    SLIDING = "sliding"


class LateDataPolicy(StrEnum):
    DROP = "Drop"
    FORWARD_TO_STORE = "ForwardToStore"


# Canonical type name → required parameters (each a tuple of accepted spellings).
_REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "Sum": (),
    "Count": (),
    "Min": (),
    "Max": (),
    "MinMax": (),
    "Avg": (),
    "Increase": (),
    "DatasketchesKLL": (("K", "k"),),
    "CountMinSketch": (("depth", "row_num", "rows"), ("width", "col_num", "cols")),
    "CountMinSketchWithHeap": (
        ("depth", "row_num", "rows"),
        ("width", "col_num", "cols"),
        ("heapsize", "heap_size", "topk", "k"),
    ),
    "HydraKLL": (("row_num", "rows", "depth"), ("col_num", "cols", "width"), ("K", "k")),
    "MultipleSum": (),
    "MultipleMinMax": (),
    "MultipleIncrease": (),
    "MultipleLast": (),
    "SetAggregator": (),
    "DeltaSetAggregator": (),
}

KEYED_TYPES = frozenset(
    {
        "CountMinSketch",
        "CountMinSketchWithHeap",
        "HydraKLL",
        "MultipleSum",
        "MultipleMinMax",
        "MultipleIncrease",
        "MultipleLast",
        "SetAggregator",
        "DeltaSetAggregator",
    }
)

# The seed's two-level spelling (``SingleSubpopulation``/``MultipleSubpopulation`` + sub type).
_SINGLE_ALIASES = {"KLL": "DatasketchesKLL", "DatasketchesKLL": "DatasketchesKLL"}
_MULTI_ALIASES = {
    "Sum": "MultipleSum",
    "MinMax": "MultipleMinMax",
    "Increase": "MultipleIncrease",
    "Last": "MultipleLast",
    "KLL": "HydraKLL",
    "HydraKLL": "HydraKLL",
    "CountMinSketch": "CountMinSketch",
    "CMS": "CountMinSketch",
}


@dataclass(frozen=True)
class LabelRoles:
    """``grouping`` labels form the output key; ``aggregated`` labels form the sub-key of keyed
    accumulators; ``rollup`` labels are merged away."""

    grouping: tuple[str, ...] = ()
    aggregated: tuple[str, ...] = ()
    rollup: tuple[str, ...] = ()


@dataclass(frozen=True)
class AggregationConfig:
    aggregation_id: int
    aggregation_type: str  # canonical, see _REQUIRED
    aggregation_sub_type: str
    parameters: tuple[tuple[str, Any], ...]
    labels: LabelRoles
    metric: str
    spatial_filter: str
    matchers: tuple[Matcher, ...]
    window_size_ms: int
    slide_interval_ms: int
    window_type: WindowType

    @property
    def keyed(self) -> bool:
        return self.aggregation_type in KEYED_TYPES

    @property
    def panes_per_window(self) -> int:
        return self.window_size_ms // self.slide_interval_ms

    def param(self, *names: str, default: Any = None) -> Any:
        params = dict(self.parameters)
        for name in names:
            if name in params:
                return params[name]
        return default

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form (as the seed writes it), e.g. for the status endpoint."""
        return {
            "aggregationId": self.aggregation_id,
            "aggregationType": self.aggregation_type,
            "aggregationSubType": self.aggregation_sub_type,
            "parameters": dict(self.parameters),
            "labels": {
                "grouping": list(self.labels.grouping),
                "aggregated": list(self.labels.aggregated),
                "rollup": list(self.labels.rollup),
            },
            "metric": self.metric,
            "spatialFilter": self.spatial_filter,
            "windowSize": self.window_size_ms / 1000,
            "slideInterval": self.slide_interval_ms / 1000,
            "windowType": self.window_type.value,
        }


@dataclass(frozen=True)
class EngineOptions:
    num_workers: int = 1
    allowed_lateness_ms: int = 0
    late_data_policy: LateDataPolicy = LateDataPolicy.DROP
    flush_interval_ms: int = 1000
    max_buffer_per_series: int = 10_000
    pass_raw_samples: bool = False
    raw_mode_aggregation_id: int = 0
    # Not in the seed: how parallelism is realised and how much may queue before backpressure.
    backend: str = "thread"
    queue_capacity_samples: int = 2_000_000
    snapshot_interval_ms: int = 60_000

    def validated(self) -> EngineOptions:
        if self.num_workers < 1:
            raise BadDataError("engine.num_workers must be ≥ 1")
        for name in ("allowed_lateness_ms", "flush_interval_ms", "snapshot_interval_ms"):
            if getattr(self, name) < 0:
                raise BadDataError(f"engine.{name} must be ≥ 0")
        if self.max_buffer_per_series < 1 or self.queue_capacity_samples < 1:
            raise BadDataError("engine buffer and queue sizes must be ≥ 1")
        if self.backend not in ("thread", "process", "inline"):
            raise BadDataError(
                f"engine.backend must be thread|process|inline, not {self.backend!r}"
            )
        return self


@dataclass(frozen=True)
class StreamingConfig:
    aggregations: tuple[AggregationConfig, ...]
    engine: EngineOptions = field(default_factory=EngineOptions)

    def by_id(self) -> dict[int, AggregationConfig]:
        return {a.aggregation_id: a for a in self.aggregations}


def _seconds_to_ms(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadDataError(f"{where} must be a number of seconds, got {value!r}")
    ms = round(float(value) * 1000)
    if ms <= 0:
        raise BadDataError(f"{where} must be > 0 seconds, got {value!r}")
    return ms


def _canonical_type(agg_type: str, sub_type: str, where: str) -> str:
    if agg_type in _REQUIRED:
        return agg_type
    if agg_type == "SingleSubpopulation":
        name = _SINGLE_ALIASES.get(sub_type, sub_type)
        if name in _REQUIRED and name not in KEYED_TYPES:
            return name
    if agg_type == "MultipleSubpopulation" and sub_type in _MULTI_ALIASES:
        return _MULTI_ALIASES[sub_type]
    known = ", ".join(sorted(_REQUIRED))
    raise BadDataError(
        f"{where}: unknown aggregationType {agg_type!r} (subType {sub_type!r}); known: {known}"
    )


def _label_list(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise BadDataError(f"{where} must be a list of label names")
    return tuple(raw)


def parse_aggregation(raw: Mapping[str, Any], index: int) -> AggregationConfig:
    where = f"aggregations[{index}]"
    if not isinstance(raw, Mapping):
        raise BadDataError(f"{where} must be a mapping")
    if "aggregationId" not in raw:
        raise BadDataError(f"{where}: missing aggregationId")
    agg_id = raw["aggregationId"]
    if isinstance(agg_id, bool) or not isinstance(agg_id, int) or agg_id < 0:
        raise BadDataError(f"{where}: aggregationId must be a non-negative integer")
    where = f"aggregation {agg_id}"
    sub_type = str(raw.get("aggregationSubType") or "")
    agg_type = _canonical_type(str(raw.get("aggregationType", "")), sub_type, where)
    params = raw.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise BadDataError(f"{where}: parameters must be a mapping")
    for spellings in _REQUIRED[agg_type]:
        value = next((params[s] for s in spellings if s in params), None)
        if value is None:
            raise BadDataError(f"{where}: {agg_type} needs parameter {spellings[0]!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadDataError(f"{where}: parameter {spellings[0]!r} must be a positive integer")
    if agg_type == "CountMinSketch" and sub_type.lower() not in ("", "sum", "count", "cms"):
        raise BadDataError(f"{where}: CountMinSketch subType must be sum or count")
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, Mapping):
        raise BadDataError(f"{where}: labels must be a mapping")
    labels = LabelRoles(
        *(_label_list(labels_raw.get(k), f"{where}: labels.{k}") for k in _ROLES),
    )
    metric = raw.get("metric")
    if not isinstance(metric, str) or not metric:
        raise BadDataError(f"{where}: missing metric")
    if agg_type == "MultipleLast" and labels.rollup:
        # The newest sample of several series together answers no instant selector.
        raise BadDataError(f"{where}: MultipleLast cannot roll up labels (series must stay apart)")
    spatial = str(raw.get("spatialFilter") or "")
    try:
        matchers = parse_matchers(spatial) if spatial.strip() else ()
    except BadDataError as exc:
        raise BadDataError(f"{where}: {exc.message}") from exc
    window_ms = _seconds_to_ms(raw.get("windowSize"), f"{where}: windowSize")
    try:
        window_type = WindowType(str(raw.get("windowType", "tumbling")).lower())
    except ValueError as exc:
        raise BadDataError(f"{where}: windowType must be tumbling or sliding") from exc
    slide_raw = raw.get("slideInterval")
    slide_ms = window_ms if slide_raw in (None, 0) else _seconds_to_ms(slide_raw, f"{where}: slide")
    if window_type is WindowType.TUMBLING and slide_ms != window_ms:
        raise BadDataError(f"{where}: a tumbling window's slideInterval must equal windowSize")
    if window_ms % slide_ms != 0:
        raise BadDataError(
            f"{where}: windowSize {window_ms / 1000:g}s is not a multiple of "
            f"slideInterval {slide_ms / 1000:g}s"
        )
    return AggregationConfig(
        aggregation_id=agg_id,
        aggregation_type=agg_type,
        aggregation_sub_type=sub_type,
        parameters=tuple(sorted(params.items())),
        labels=labels,
        metric=metric,
        spatial_filter=spatial,
        matchers=matchers,
        window_size_ms=window_ms,
        slide_interval_ms=slide_ms,
        window_type=window_type,
    )


_ROLES = ("grouping", "aggregated", "rollup")


def parse_engine_options(raw: Any, base: EngineOptions | None = None) -> EngineOptions:
    base = base or EngineOptions()
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise BadDataError("engine must be a mapping")
    known = set(EngineOptions.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise BadDataError(f"engine: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    values = dict(raw)
    if "late_data_policy" in values:
        try:
            values["late_data_policy"] = LateDataPolicy(values["late_data_policy"])
        except ValueError as exc:
            raise BadDataError("engine.late_data_policy must be Drop or ForwardToStore") from exc
    for name, value in values.items():
        expected = type(getattr(base, name))
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadDataError(f"engine.{name} must be an integer")
        if expected is bool and not isinstance(value, bool):
            raise BadDataError(f"engine.{name} must be true or false")
    return replace(base, **values).validated()


def parse_config(data: Any, base_options: EngineOptions | None = None) -> StreamingConfig:
    """Build a StreamingConfig from already-loaded YAML/JSON data."""
    if not isinstance(data, Mapping):
        raise BadDataError("precompute config must be a mapping with an 'aggregations' list")
    raw_aggs = data.get("aggregations")
    if raw_aggs is None:
        raw_aggs = []
    if not isinstance(raw_aggs, list):
        raise BadDataError("'aggregations' must be a list")
    aggs = tuple(parse_aggregation(raw, i) for i, raw in enumerate(raw_aggs))
    seen: set[int] = set()
    for agg in aggs:
        if agg.aggregation_id in seen:
            raise BadDataError(f"duplicate aggregationId {agg.aggregation_id}")
        seen.add(agg.aggregation_id)
    return StreamingConfig(aggs, parse_engine_options(data.get("engine"), base_options))


def load_config(
    source: str | os.PathLike[str], base_options: EngineOptions | None = None
) -> StreamingConfig:
    """Load YAML from a path, or from YAML text when ``source`` is not an existing file."""
    text = str(source)
    if os.path.exists(text):
        with open(text, encoding="utf-8") as fh:
            text = fh.read()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadDataError(f"precompute config is not valid YAML: {exc}") from exc
    return parse_config(data, base_options)
