"""A real client: ``promtool query instant|range|series|labels`` gives the same answers from
Tidemark as from Prometheus 2.42 holding the same data."""

from __future__ import annotations

import subprocess

import pytest

from tests.compat.conftest import Peers
from tests.compat.dataset import t_at
from tests.compat.peer import PROMTOOL

pytestmark = pytest.mark.peer

T = f"{t_at(88) / 1000:.3f}"
START = f"{t_at(0) / 1000:.3f}"

CASES = [
    ["query", "instant", "--time", T, "{url}", 'rate(http_requests_total{job="api"}[5m])'],
    ["query", "instant", "--time", T, "{url}", "sum by (job) (node_load)"],
    ["query", "instant", "-o", "json", "--time", T, "{url}", "sum(node_load)"],
    ["query", "instant", "--time", T, "{url}", "scalar(sum(node_load))"],
    ["query", "instant", "--time", T, "{url}", "node_temperature_celsius[1m]"],
    [
        "query",
        "range",
        "--start",
        f"{t_at(80) / 1000:.3f}",
        "--end",
        T,
        "--step",
        "60s",
        "{url}",
        'node_load{job="db"}',
    ],
    [
        "query",
        "range",
        "--start",
        f"{t_at(60) / 1000:.3f}",
        "--end",
        T,
        "--step",
        "2m",
        "{url}",
        "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ],
    [
        "query",
        "series",
        "--match",
        "node_load",
        "--match",
        "build_info",
        "--start",
        START,
        "--end",
        T,
        "{url}",
    ],
    [
        "query",
        "series",
        "--match",
        '{__name__=~"http_.*",job="db"}',
        "--start",
        START,
        "--end",
        T,
        "{url}",
    ],
    ["query", "labels", "--start", START, "--end", T, "{url}", "job"],
    ["query", "labels", "--start", START, "--end", T, "{url}", "__name__"],
    ["query", "labels", "--start", START, "--end", T, "--match", "build_info", "{url}", "version"],
]


def _run(args: list[str], url: str) -> tuple[int, list[str]]:
    argv = [PROMTOOL, *(url if a == "{url}" else a for a in args)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    # Instant vectors are unordered in the API: compare the printed lines as a multiset.
    return done.returncode, sorted(done.stdout.splitlines())


def _case_id(args: list[str]) -> str:
    what = args[-1] if args[-1] != "{url}" else args[args.index("--match") + 1]
    return f"{args[1]} {what}"


@pytest.mark.parametrize("args", CASES, ids=_case_id)
def test_promtool_prints_the_same_answer_for_tidemark_and_prometheus(
    peers: Peers, args: list[str]
) -> None:
    theirs = _run(args, peers.prometheus)
    ours = _run(args, peers.tidemark)
    assert theirs[0] == 0 and theirs[1], f"promtool against Prometheus: {theirs}"
    assert ours == theirs
