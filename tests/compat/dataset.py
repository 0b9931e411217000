"""The generated data set both engines load for the differential test.

Counters with resets, gauges (positive and signed), a classic histogram with resets, a gap longer
than the lookback, stale markers (one series pauses and resumes, one ends), jittered scrape
times. Prometheus 2.x closes range and lookback windows on the left, 3.x opens them, so no
sample may sit on a window boundary: queries are evaluated at times ending in ``.250`` s with
whole-second ranges, offsets and steps (subquery steps put inner evaluation times on whole
seconds), and every sample timestamp avoids both ``...000`` and ``...250`` milliseconds.

Prometheus 3 also changed ``extrapolatedRate``: it caps the extrapolation to the window start
at half a scrape interval *before* the counter's zero point, 2.x after. The results differ only
when a window starts well before a series' first sample, so the queries' windows all start
after the data does (queries run from minute 45 on, ranges and offsets add up to at most 30
minutes) and rate-like functions are not applied to the series with gaps or stale markers.
"""

from __future__ import annotations

import numpy as np

from storage.model import STALE_NAN, Labels, SampleBatch, make_labels

BASE_MS = 1_700_000_000_000
INTERVAL_MS = 15_000
STEPS = 400  # 100 minutes of scrapes
QUERY_OFFSET_MS = 250  # every query time ends in .250 s
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf")

Series = dict[Labels, tuple[np.ndarray, np.ndarray]]


def t_at(minutes: float) -> int:
    """A query time ``minutes`` after the data starts, off every sample and window boundary."""
    return BASE_MS + int(minutes * 60_000) + QUERY_OFFSET_MS


def _times(rng: np.random.Generator) -> np.ndarray:
    # Small jitter: intervals stay within 1.1x of the average, as upstream extrapolation assumes.
    jitter = rng.integers(1, 700, STEPS)
    ts = BASE_MS + np.arange(STEPS, dtype=np.int64) * INTERVAL_MS + jitter
    bad = np.isin(ts % 1000, (0, QUERY_OFFSET_MS))
    return np.where(bad, ts + 7, ts)


def _counter(rng: np.random.Generator, rate: float) -> np.ndarray:
    inc = rng.exponential(rate * 15, STEPS)
    values = np.cumsum(inc)
    for r in np.nonzero(rng.random(STEPS) < 0.01)[0]:
        values[r:] -= values[r] - rng.uniform(0, 5)  # a restart: counting starts again near 0
    return np.round(values, 3)


def generate(seed: int = 20240601) -> Series:
    rng = np.random.default_rng(seed)
    out: Series = {}
    for job in ("api", "db", "cache"):
        for instance in ("0", "1"):
            for code, rate in (("200", 5.0), ("500", 0.3)):
                ls = make_labels(
                    {
                        "__name__": "http_requests_total",
                        "job": job,
                        "instance": instance,
                        "code": code,
                    }
                )
                out[ls] = (_times(rng), _counter(rng, rate))
            temp = 40 + np.cumsum(rng.normal(0, 0.3, STEPS))
            out[_l("node_temperature_celsius", job, instance)] = (_times(rng), np.round(temp, 4))
            load = np.cumsum(rng.normal(0, 0.2, STEPS))
            out[_l("node_load", job, instance)] = (_times(rng), load)
            fds = np.round(100 + np.cumsum(rng.normal(0, 3, STEPS)))
            out[_l("process_open_fds", job, instance)] = (_times(rng), fds)
        out[make_labels({"__name__": "build_info", "job": job, "version": f"1.{len(job)}.0"})] = (
            _times(rng),
            np.ones(STEPS),
        )
    _histogram(rng, out)
    _gaps_and_staleness(out)
    return out


def _l(name: str, job: str, instance: str) -> Labels:
    return make_labels({"__name__": name, "job": job, "instance": instance})


def _histogram(rng: np.random.Generator, out: Series) -> None:
    bounds = np.array([float(b) for b in BUCKETS])
    for job in ("api", "db"):
        ts = _times(rng)
        obs = rng.poisson(20, STEPS)
        counts = np.zeros((STEPS, len(BUCKETS)))
        sums = np.zeros(STEPS)
        for i, n in enumerate(obs):
            sample = rng.lognormal(-1.0, 1.0, n)
            counts[i] = (sample[:, None] <= bounds[None, :]).sum(axis=0)
            sums[i] = sample.sum()
        cum, cum_sum = np.cumsum(counts, axis=0), np.cumsum(sums)
        reset = 300 if job == "api" else 240  # the process restarts: all buckets start over
        cum[reset:] -= cum[reset - 1]
        cum_sum[reset:] -= cum_sum[reset - 1]
        for k, le in enumerate(BUCKETS):
            name = "http_request_duration_seconds_bucket"
            out[make_labels({"__name__": name, "job": job, "le": le})] = (ts, cum[:, k].copy())
        out[make_labels({"__name__": "http_request_duration_seconds_sum", "job": job})] = (
            ts,
            np.round(cum_sum, 6),
        )
        out[make_labels({"__name__": "http_request_duration_seconds_count", "job": job})] = (
            ts,
            cum[:, -1].copy(),
        )


def _gaps_and_staleness(out: Series) -> None:
    gap = _l("node_temperature_celsius", "cache", "1")
    ts, vals = out[gap]
    keep = (np.arange(STEPS) < 200) | (np.arange(STEPS) > 250)  # 12.5 minutes without samples
    out[gap] = (ts[keep], vals[keep])
    paused = _l("process_open_fds", "db", "0")
    ts, vals = out[paused]
    vals = vals.copy()
    vals[240] = STALE_NAN  # the target disappeared ...
    keep = (np.arange(STEPS) <= 240) | (np.arange(STEPS) >= 270)  # ... and came back
    out[paused] = (ts[keep], vals[keep])
    ended = _l("process_open_fds", "api", "1")
    ts, vals = out[ended]
    vals = vals[:331].copy()
    vals[330] = STALE_NAN
    out[ended] = (ts[:331], vals)


def as_batch(series: Series) -> SampleBatch:
    labels = list(series)
    idx = np.concatenate(
        [np.full(len(series[ls][0]), i, dtype=np.int64) for i, ls in enumerate(labels)]
    )
    ts = np.concatenate([series[ls][0] for ls in labels]).astype(np.int64)
    vals = np.concatenate([series[ls][1] for ls in labels]).astype(np.float64)
    return SampleBatch(labels, idx, ts, vals)
