"""Differential test: the same queries over the same data, Tidemark vs Prometheus 2.42.

Values compare with relative tolerance 1e-6 (NaN equals NaN), timestamps exactly, series as
sets except for ``sort``/``sort_desc`` instant results. When Prometheus rejects a query,
Tidemark must reject it with the same ``errorType``.
"""

from __future__ import annotations

import math

import pytest

from storage.model import Labels
from tests.compat.conftest import Peers, get_json
from tests.compat.queries import ALL_QUERIES, ERRORS, INSTANT_TIMES_MS, ORDERED, RANGE
from tests.conformance.compare import almost_equal

pytestmark = pytest.mark.peer


def _value(s: str) -> float:
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[s] if s in special else float(s)


def _normalize(data: dict) -> tuple[str, object]:
    kind = data["resultType"]
    result = data["result"]
    if kind in ("scalar", "string"):
        return kind, (result[0], result[1])
    rows: list[tuple[Labels, list[tuple[float, float]]]] = []
    for s in result:
        labels = tuple(sorted(s["metric"].items()))
        points = [s["value"]] if kind == "vector" else s["values"]
        rows.append((labels, [(t, _value(v)) for t, v in points]))
    return kind, rows


def _diff(ours: dict, theirs: dict, ordered: bool) -> str | None:
    k1, a = _normalize(ours)
    k2, b = _normalize(theirs)
    if k1 != k2:
        return f"result type {k1} != {k2}"
    if k1 == "scalar":
        (t1, v1), (t2, v2) = a, b  # type: ignore[misc]
        ok = t1 == t2 and almost_equal(_value(v1), _value(v2))
        return None if ok else f"scalar {a} != {b}"
    if k1 == "string":
        return None if a == b else f"string {a} != {b}"
    rows_a = a if ordered else sorted(a)  # type: ignore[type-var]
    rows_b = b if ordered else sorted(b)  # type: ignore[type-var]
    if [ls for ls, _ in rows_a] != [ls for ls, _ in rows_b]:  # type: ignore[union-attr]
        return f"series differ:\n ours   {[ls for ls, _ in rows_a]}\n theirs {[ls for ls, _ in rows_b]}"  # type: ignore[union-attr]
    for (ls, pa), (_, pb) in zip(rows_a, rows_b, strict=True):  # type: ignore[arg-type]
        if [t for t, _ in pa] != [t for t, _ in pb]:
            return f"timestamps of {ls} differ: {[t for t, _ in pa]} vs {[t for t, _ in pb]}"
        for (t, va), (_, vb) in zip(pa, pb, strict=True):
            if not almost_equal(va, vb):
                return f"{ls} at {t}: ours {va} theirs {vb}"
    return None


def _compare(peers: Peers, path: str, params: list[tuple[str, str]], ordered: bool) -> None:
    _, theirs = get_json(peers.prometheus, path, params)
    s_ours, ours = get_json(peers.tidemark, path, params)
    if theirs.get("status") != "success":
        assert ours.get("status") == "error", f"Prometheus failed ({theirs}), we answered {ours}"
        assert ours["errorType"] == theirs["errorType"], (ours, theirs)
        return
    assert s_ours == 200, f"we failed: {ours}"
    problem = _diff(ours["data"], theirs["data"], ordered)
    assert problem is None, problem


@pytest.mark.parametrize("query", ALL_QUERIES)
def test_instant_query_matches_prometheus(peers: Peers, query: str) -> None:
    for t in INSTANT_TIMES_MS:
        params = [("query", query), ("time", f"{t / 1000:.3f}")]
        _compare(peers, "/api/v1/query", params, query in ORDERED)


@pytest.mark.parametrize("query", ALL_QUERIES)
def test_range_query_matches_prometheus(peers: Peers, query: str) -> None:
    start, end, step = RANGE
    params = [
        ("query", query),
        ("start", f"{start / 1000:.3f}"),
        ("end", f"{end / 1000:.3f}"),
        ("step", str(step // 1000)),
    ]
    _compare(peers, "/api/v1/query_range", params, False)


@pytest.mark.parametrize("query", ERRORS)
def test_rejected_queries_get_the_same_error_type_as_in_prometheus(
    peers: Peers, query: str
) -> None:
    params = [("query", query), ("time", f"{INSTANT_TIMES_MS[1] / 1000:.3f}")]
    status, theirs = get_json(peers.prometheus, "/api/v1/query", params)
    ours_status, ours = get_json(peers.tidemark, "/api/v1/query", params)
    assert theirs["status"] == "error", f"Prometheus accepted {query!r}: {theirs}"
    assert (ours_status, ours.get("errorType")) == (status, theirs["errorType"]), (ours, theirs)


def test_most_queries_have_non_empty_answers_in_prometheus(peers: Peers) -> None:
    """Guards the differential test against comparing empty results with empty results."""
    empty = []
    for query in ALL_QUERIES:
        _, body = get_json(
            peers.prometheus,
            "/api/v1/query",
            [("query", query), ("time", f"{INSTANT_TIMES_MS[1] / 1000:.3f}")],
        )
        result = body.get("data", {}).get("result")
        if not result:
            empty.append(query)
    assert len(ALL_QUERIES) >= 150
    assert len(empty) <= 10, empty
