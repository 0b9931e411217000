"""Reference aggregations: upstream's per-step, per-series fold (``evaluator.aggregation``)."""

from __future__ import annotations

import math

import numpy as np

from tests.udfs.reference import kahan_inc, quantile


def aggregate(op: str, values, present, group_ids, n_groups, param=None):
    n_series, n_steps = values.shape
    out = np.full((n_groups, n_steps), np.nan)
    seen = np.zeros((n_groups, n_steps), dtype=bool)
    for k in range(n_steps):
        state: dict[int, dict] = {}
        for s in range(n_series):
            if not present[s, k]:
                continue
            f = float(values[s, k])
            g = int(group_ids[s])
            st = state.get(g)
            if st is None:
                state[g] = _first(op, f)
                continue
            _fold(op, st, f)
        for g, st in state.items():
            out[g, k] = _final(op, st, None if param is None else float(param[k]))
            seen[g, k] = True
    return out, seen


def _first(op: str, f: float) -> dict:
    st = {"v": f, "mean": f, "n": 1.0, "c": 0.0, "inc": False, "heap": [f]}
    if op in ("stddev", "stdvar"):
        st["v"] = math.nan if (math.isnan(f) or math.isinf(f)) else 0.0
    return st


def _fold(op: str, st: dict, f: float) -> None:
    if op == "sum":
        st["v"], st["c"] = kahan_inc(f, st["v"], st["c"])
    elif op == "avg":
        st["n"] += 1
        n = st["n"]
        if not st["inc"]:
            nv, nc = kahan_inc(f, st["v"], st["c"])
            if not math.isinf(nv):
                st["v"], st["c"] = nv, nc
                return
            st["inc"] = True
            st["mean"] = st["v"] / (n - 1)
            st["c"] /= n - 1
        q = (n - 1) / n
        st["mean"], st["c"] = kahan_inc(f / n, q * st["mean"], q * st["c"])
    elif op == "max":
        if st["v"] < f or math.isnan(st["v"]):
            st["v"] = f
    elif op == "min":
        if st["v"] > f or math.isnan(st["v"]):
            st["v"] = f
    elif op == "count":
        st["n"] += 1
    elif op in ("stddev", "stdvar"):
        st["n"] += 1
        d = f - st["mean"]
        st["mean"] += d / st["n"]
        st["v"] += d * (f - st["mean"])
    elif op == "quantile":
        st["heap"].append(f)


def _final(op: str, st: dict, param: float | None) -> float:
    with np.errstate(all="ignore"):
        if op == "sum":
            return st["v"] + st["c"]
        if op == "avg":
            if st["inc"]:
                return st["mean"] + st["c"]
            return st["v"] / st["n"] + st["c"] / st["n"]
        if op == "count":
            return st["n"]
        if op == "group":
            return 1.0
        if op == "stdvar":
            return st["v"] / st["n"]
        if op == "stddev":
            return float(np.sqrt(np.float64(st["v"] / st["n"])))
        if op == "quantile":
            return quantile(param, st["heap"])
        return st["v"]


def select_k(op: str, values, present, group_ids, k_per_step) -> np.ndarray:
    """topk/bottomk/limitk per step: the k best present series of each group.

    "Best": topk larger, bottomk smaller, NaN worst, limitk input order; ties keep the earlier
    series. (Upstream's heap may keep a different one among exactly tied values.)
    """
    n_series, n_steps = values.shape
    keep = np.zeros((n_series, n_steps), dtype=bool)
    for step in range(n_steps):
        kf = k_per_step[step]
        k = -1 if math.isnan(kf) else min(int(kf), n_series)
        if k < 1:
            continue
        by_group: dict[int, list[int]] = {}
        for s in range(n_series):
            if present[s, step]:
                by_group.setdefault(int(group_ids[s]), []).append(s)
        for members in by_group.values():
            if op != "limitk":
                members.sort(key=lambda s: _key(op, float(values[s, step]), s))
            keep[members[:k], step] = True
    return keep


def _key(op: str, v: float, s: int) -> tuple:
    if math.isnan(v):
        return (1, 0.0, s)
    return (0, -v if op == "topk" else v, s)
