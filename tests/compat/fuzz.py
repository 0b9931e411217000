"""Randomized differential testing: generated PromQL, Tidemark vs Prometheus 2.42.

``python -m tests.compat.fuzz --n 2000 --seed 7`` starts both peers on the compat data set, runs
``n`` generated expressions (``fuzz_gen.py``) as two instant queries and one range query each,
and prints every discrepancy, shrunk to a smaller expression that still disagrees.

Comparison rules are the hand-written differential test's: on a Prometheus error Tidemark must
fail with the same ``errorType``; otherwise values agree to 1e-6 relative (NaN equals NaN),
timestamps exactly, series as sets. A top-level ``sort``/``sort_desc`` instant result is compared
in order only when its values are distinct and not NaN (Go's sort is not stable, and 2.42 and 3.x
place NaN differently).

Two 2.42 -> 3.x differences cannot be kept out by the generator, because they depend on the
values; ``known_difference`` recognizes them and the run counts them apart from discrepancies:

- ``filter-cardinality``: since 3.9 a filtering comparison (no ``bool``) checks one-to-one
  matching before it drops the samples that fail it (upstream "Fix insufficient cardinality
  checking for filter ops"), so ``a > on() b`` with several ``a`` series is an error even when
  only one passes; 2.42 (and 3.0-3.8) answer.
- ``cancellation``: 2.42's ``avg``/``avg_over_time`` use an incremental mean, 3.x a
  (Kahan-compensated) sum divided once, so values that cancel give 0 in 3.x and a residue like
  ``-1.1e-16`` in 2.42, which the relative comparison cannot accept (nor its quotient by
  zero: NaN in 3.x, -Inf in 2.42).
- ``negation-merge``: unary minus drops the metric name, and in a range query two series can
  then share a labelset at different steps (``-(a or ignoring() b offset 30s)``: ``b`` fills
  the steps where ``a`` is absent). 2.42 fails the whole query on any such pair; since 3.9
  (upstream "Fix collision in unary negation with non-overlapping series") 3.x merges them and
  errors only when both have a sample at the same step, as Tidemark does.
- ``atan2-name``: 2.42 keeps the metric name on ``atan2`` results, 3.x drops it (it is one of
  the operators that change the metric's meaning), so ``sum (a atan2 {__name__=~"x|y"})`` fails
  on the duplicates in 3.x and in Tidemark, before the sum could drop the name.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from storage.model import make_labels
from tests.compat.conftest import Peers, get_json, serving
from tests.compat.dataset import _times, generate, t_at
from tests.compat.fuzz_gen import Generator
from tests.compat.fuzz_vocab import Node, shrink_candidates, style
from tests.conformance.compare import almost_equal

# From minute 45 (see dataset.py) to past the data's end at 100 (series go stale there).
INSTANT_MINUTES = (45.0, 52.5, 61.5, 70.0, 77.25, 88.0, 97.0, 101.0, 104.5)
RANGE_STEPS_S = (15, 37, 60, 120, 7, 300)


@dataclass(frozen=True)
class Query:
    """One HTTP query: the API path and its parameters (the expression goes in separately)."""

    path: str
    params: tuple[tuple[str, str], ...]

    def with_expr(self, expr: str) -> list[tuple[str, str]]:
        return [("query", expr), *self.params]


@dataclass(frozen=True)
class Outcome:
    """Both engines' answers to one query; ``problem`` is None when they agree."""

    status: str  # "ok" | "error" | "empty"
    problem: str | None
    known: str | None = None  # a documented 2.42 -> 3.x difference explains the problem


_FILTER = re.compile(r" (==|!=|>=|<=|>|<) (?!bool)")  # a comparison without ``bool``
_RESIDUE = re.compile(r"ours (\S+) theirs (\S+)$")
_QUOTED = re.compile(r"([\"'`]).*?\1")
_NEGATION = re.compile(r"-(?=[a-z_({])")  # the generator writes unary minus with no space
_PROM_DUPLICATE = "Prometheus failed (vector cannot contain metrics with the same labelset)"
_OUR_DUPLICATE = "we failed: execution: vector cannot contain metrics with the same labelset"


def known_difference(expr: str, problem: str) -> str | None:
    """The documented 2.42 -> 3.x difference (module docstring) that explains ``problem``."""
    expr = expr.lower()  # keywords may be spelled in upper case
    if problem.startswith("we failed: execution: multiple matches for labels"):
        return "filter-cardinality" if _FILTER.search(expr) else None
    if problem.startswith(_PROM_DUPLICATE) and _NEGATION.search(_QUOTED.sub("", expr)):
        return "negation-merge"
    if problem.startswith(_OUR_DUPLICATE) and " atan2 " in _QUOTED.sub("", expr):
        return "atan2-name"
    m = _RESIDUE.search(problem)
    if m and "avg" in expr:
        a, b = float(m.group(1)), float(m.group(2))
        if (a == 0 or b == 0) and abs(a - b) < 1e-9:
            return "cancellation"
        # The residue divided by zero: 0/0 in 3.x, +-x/0 in 2.42.
        one_nan = {math.isnan(a), math.isnan(b)} == {True, False}
        if "/" in expr and one_nan and (math.isinf(a) or math.isinf(b)):
            return "cancellation"
    return None


def instant(ms: int) -> Query:
    return Query("/api/v1/query", (("time", f"{ms / 1000:.3f}"),))


def range_query(start_ms: int, end_ms: int, step_s: int) -> Query:
    params = (("start", f"{start_ms / 1000:.3f}"), ("end", f"{end_ms / 1000:.3f}"))
    return Query("/api/v1/query_range", (*params, ("step", str(step_s))))


def queries_for(seed: int, index: int) -> list[Query]:
    """Two instant times and one range, chosen per expression (times end in ``.250``)."""
    import random

    rng = random.Random(seed * 1_000_003 + index)
    times = rng.sample(INSTANT_MINUTES, 2)
    if rng.random() < 0.1:  # a short range at one-second steps
        start = t_at(rng.choice((58, 81.5)))
        return [*(instant(t_at(m)) for m in times), range_query(start, start + 150_000, 1)]
    start = t_at(rng.choice((45, 47.5, 55)))
    end = t_at(rng.choice((80, 90.5, 98, 106)))
    return [*(instant(t_at(m)) for m in times), range_query(start, end, rng.choice(RANGE_STEPS_S))]


def _value(s: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[s] if s in special else float(s)


def _rows(data: dict) -> list[tuple[tuple, list[tuple[float, float]]]]:
    vector = data["resultType"] == "vector"
    out = []
    for s in data["result"]:
        points = [s["value"]] if vector else s["values"]
        out.append((tuple(sorted(s["metric"].items())), [(t, _value(v)) for t, v in points]))
    return out


def _strictly_ordered(rows: list) -> bool:
    values = [pts[0][1] for _, pts in rows]
    return not any(math.isnan(v) for v in values) and len(set(values)) == len(values)


def diff(ours: dict, theirs: dict, ordered: bool) -> str | None:
    """Why two ``data`` objects disagree, or None."""
    if ours["resultType"] != theirs["resultType"]:
        return f"result type {ours['resultType']} != {theirs['resultType']}"
    if ours["resultType"] in ("scalar", "string"):
        (t1, v1), (t2, v2) = ours["result"], theirs["result"]
        if t1 == t2 and (v1 == v2 or almost_equal(_value(v1), _value(v2))):
            return None
        return f"{ours['resultType']} {ours['result']} != {theirs['result']}"
    a, b = _rows(ours), _rows(theirs)
    if not (ordered and _strictly_ordered(b)):
        a, b = sorted(a, key=lambda r: r[0]), sorted(b, key=lambda r: r[0])
    if [ls for ls, _ in a] != [ls for ls, _ in b]:
        only_a = [dict(ls) for ls, _ in a if ls not in {x for x, _ in b}]
        only_b = [dict(ls) for ls, _ in b if ls not in {x for x, _ in a}]
        return (
            f"series differ ({len(a)} vs {len(b)}): only ours {only_a[:3]} only theirs {only_b[:3]}"
        )
    for (ls, pa), (_, pb) in zip(a, b, strict=True):
        if [t for t, _ in pa] != [t for t, _ in pb]:
            missing = sorted({t for t, _ in pb} ^ {t for t, _ in pa})
            return f"timestamps of {dict(ls)} differ at {missing[:5]}"
        for (t, va), (_, vb) in zip(pa, pb, strict=True):
            if not almost_equal(va, vb):
                return f"{dict(ls)} at {t}: ours {va} theirs {vb}"
    return None


def compare(peers: Peers, expr: str, query: Query) -> Outcome:
    params = query.with_expr(expr)
    _, theirs = get_json(peers.prometheus, query.path, params)
    status, ours = get_json(peers.tidemark, query.path, params)
    if theirs.get("status") != "success":
        if ours.get("status") != "error":
            problem = f"Prometheus failed ({theirs.get('error')}), we answered"
            return Outcome("error", problem, known_difference(expr, problem))
        if ours.get("errorType") != theirs.get("errorType"):
            return Outcome(
                "error",
                f"errorType {ours.get('errorType')} ({ours.get('error')}) != "
                f"{theirs.get('errorType')} ({theirs.get('error')})",
            )
        return Outcome("error", None)
    empty = theirs["data"]["resultType"] in ("vector", "matrix") and not theirs["data"]["result"]
    kind = "empty" if empty else "ok"
    if status != 200:
        problem = f"we failed: {ours.get('errorType')}: {ours.get('error')}"
        return Outcome(kind, problem, known_difference(expr, problem))
    ordered = query.path.endswith("/query") and expr.startswith(("sort(", "sort_desc("))
    problem = diff(ours["data"], theirs["data"], ordered)
    return Outcome(kind, problem, problem and known_difference(expr, problem))


def first_problem(peers: Peers, expr: str, queries: list[Query]) -> tuple[Query, str] | None:
    for q in queries:
        outcome = compare(peers, expr, q)
        if outcome.problem and not outcome.known:
            return q, outcome.problem
    return None


def shrink(
    peers: Peers, node: Node, queries: list[Query], style_seed: int, budget: int = 200
) -> Node:
    """Greedy: take the first smaller expression that still disagrees, until none does."""
    current, tries = node, 0
    improved = True
    while improved and tries < budget:
        improved = False
        for cand in sorted(shrink_candidates(current), key=Node.size):
            tries += 1
            if first_problem(peers, style(cand.render(), style_seed), queries):
                current, improved = cand, True
                break
            if tries >= budget:
                break
    return current


ODD_VALUES = np.array([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e308, -1e-308, 5.0, 5.0, -2.5])


def odd_series(seed: int = 7) -> dict:
    """``odd_values{job, instance}``: NaN, +-Inf, signed zeros, extremes and ties among plain
    values, as real gauges export them; on the data set's jittered scrape times."""
    rng = np.random.default_rng(seed)
    out = {}
    for job in ("api", "db", "cache"):
        for instance in ("0", "1"):
            ts = _times(rng)
            plain = np.round(rng.normal(0, 3, ts.size), 1)
            odd = rng.random(ts.size) < 0.3
            values = np.where(odd, ODD_VALUES[rng.integers(0, ODD_VALUES.size, ts.size)], plain)
            labels = make_labels({"__name__": "odd_values", "job": job, "instance": instance})
            out[labels] = (ts, values)
    return out


@contextmanager
def running_peers(data_seed: int | None = None) -> Iterator[Peers]:
    """Prometheus 2.42 and a Tidemark server, both loaded with ``dataset.generate()`` (values
    drawn with ``data_seed``, the differential test's data when None) and ``odd_series()``."""
    data = generate() if data_seed is None else generate(seed=data_seed)
    with serving({**data, **odd_series()}) as peers:
        yield peers


@dataclass(frozen=True)
class Finding:
    expr: str
    shrunk: str
    query: Query
    problem: str


def run(
    peers: Peers, n: int, seed: int, do_shrink: bool = True, out=None, max_depth: int = 5
) -> tuple[Counter, list[Finding]]:  # type: ignore[no-untyped-def]
    """Run ``n`` generated expressions; returns outcome counts and the (shrunk) findings."""
    gen = Generator(seed)
    stats: Counter = Counter()
    findings: list[Finding] = []
    for i in range(n):
        node, style_seed = gen.expression(max_depth), seed * 7919 + i
        expr, queries = style(node.render(), style_seed), queries_for(seed, i)
        stats["expressions"] += 1
        failed = None
        for q in queries:
            outcome = compare(peers, expr, q)
            stats[outcome.status] += 1
            if outcome.known:
                stats[f"known:{outcome.known}"] += 1
            elif outcome.problem and failed is None:
                failed = (q, outcome.problem)
        if failed is None:
            continue
        small = expr
        if do_shrink:
            small = style(shrink(peers, node, queries, style_seed).render(), style_seed)
        again = first_problem(peers, small, queries) or failed
        findings.append(Finding(expr, small, again[0], again[1]))
        stats["discrepancies"] += 1
        if out is not None:
            print(
                f"[{i}] {expr}\n  shrunk: {small}\n  {again[0].path} {again[0].params}\n  {again[1]}\n",
                file=out,
                flush=True,
            )
    return stats, findings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--depth", type=int, default=5, help="maximum nesting depth")
    ap.add_argument("--data-seed", type=int, default=None, help="draw the data set's values anew")
    args = ap.parse_args(argv)
    began = time.monotonic()
    with running_peers(args.data_seed) as peers:
        stats, findings = run(
            peers, args.n, args.seed, not args.no_shrink, sys.stdout, max_depth=args.depth
        )
    elapsed = time.monotonic() - began
    print(f"{dict(stats)} in {elapsed:.1f}s; {len(findings)} discrepancies")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
