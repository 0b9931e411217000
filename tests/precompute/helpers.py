"""Building durable batches and running a worker directly, without storage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from precompute.config import EngineOptions, load_config
from precompute.router import Router
from precompute.window_batch import expand
from precompute.worker import Worker
from storage.model import DurableBatch, Labels, SampleBatch, make_labels


class SeriesIds:
    """Stands in for the store's series-id assignment."""

    def __init__(self) -> None:
        self.ids: dict[Labels, int] = {}

    def batch(self, samples: Sequence[tuple[dict[str, str], int, float]]) -> DurableBatch:
        series: list[Labels] = []
        index: dict[Labels, int] = {}
        sample_series = []
        for labels, _, _ in samples:
            key = make_labels(labels)
            if key not in index:
                index[key] = len(series)
                series.append(key)
            sample_series.append(index[key])
        ss = np.array(sample_series, dtype=np.int64)
        ts = np.array([t for _, t, _ in samples], dtype=np.int64)
        vals = np.array([v for _, _, v in samples], dtype=np.float64)
        return self.columnar(series, ss, ts, vals)

    def columnar(self, series, sample_series, ts, vals) -> DurableBatch:
        series_ids = np.array([self.ids.setdefault(s, len(self.ids)) for s in series], np.int64)
        batch = SampleBatch(series, sample_series, ts, vals)
        return DurableBatch(batch, series_ids, series_ids[sample_series])


class Harness:
    """Router + one worker, driven synchronously."""

    def __init__(self, yaml_text: str, **options) -> None:
        self.config = load_config(yaml_text)
        self.options = EngineOptions(**{**self.config.engine.__dict__, **options})
        self.router = Router(list(self.config.aggregations), 1)
        self.worker = Worker(self.config.aggregations, self.options)
        self.ids = SeriesIds()
        self.emits: list = []

    def send(self, samples) -> list:
        out = []
        for item in self.router.route(self.ids.batch(samples))[0]:
            out += self.worker.process(item)
        out = expand(out)
        self.emits += out
        return out

    def close_all(self) -> list:
        out = expand(self.worker.close_all())
        self.emits += out
        return out


def agg_yaml(
    agg_type: str = "Sum",
    window: float = 10,
    slide: float | None = None,
    grouping: Sequence[str] = (),
    aggregated: Sequence[str] = (),
    params: str = "{}",
    spatial: str = "",
    metric: str = "m",
    sub_type: str = "",
) -> str:
    kind = "tumbling" if slide is None else "sliding"
    return f"""
aggregations:
  - aggregationId: 1
    aggregationType: {agg_type}
    aggregationSubType: "{sub_type}"
    parameters: {params}
    labels: {{grouping: {list(grouping)}, aggregated: {list(aggregated)}, rollup: []}}
    metric: {metric}
    spatialFilter: '{spatial}'
    windowSize: {window}
    slideInterval: {slide if slide is not None else window}
    windowType: {kind}
"""
