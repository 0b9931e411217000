"""Parse benchmark: median time of ``promql.parse`` over the corpus and typical dashboard queries.

Run: ``.venv/bin/python bench/parse.py [--repeat N]``. Prints a table of medians (µs). The goal
for typical dashboard queries is a median under 200 µs. Times are CPU time of this process
(``time.process_time``), so that other work on a shared machine does not inflate them.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from promql import ParseError, parse  # noqa: E402

DASHBOARD = [
    'up{job="prometheus"}',
    "rate(http_requests_total[5m])",
    "sum by (job) (rate(http_requests_total[5m]))",
    'sum by (code) (rate(http_requests_total{job="api", code=~"5.."}[5m]))',
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))',
    "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100",
    'predict_linear(node_filesystem_free_bytes{fstype!="tmpfs"}[6h], 86400) < 0',
    "topk(10, sum by (pod) (container_memory_working_set_bytes))",
    'sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / ignoring(code) group_left '
    "sum by (job) (rate(http_requests_total[5m]))",
    "increase(kube_pod_container_status_restarts_total[1h]) > 3",
    "max_over_time(rate(http_requests_total[5m])[1h:1m])",
]


def _median_us(query: str, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        with contextlib.suppress(ParseError):  # invalid corpus queries are timed too
            parse(query)
        samples.append(time.process_time() - start)
    return statistics.median(samples) * 1e6


def _corpus() -> list[str]:
    path = ROOT / "tests" / "promql" / "data" / "corpus.txt"
    return [q for q in path.read_text().splitlines() if q and not q.startswith("# ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50, help="timed parses per query")
    args = parser.parse_args()
    parse("up")  # build the lark parser outside the timings
    rows = []
    for name, queries in (("dashboard queries", DASHBOARD), ("corpus (all)", _corpus())):
        medians = [_median_us(q, args.repeat) for q in queries]
        rows.append((name, len(queries), statistics.median(medians), max(medians)))
    print(f"{'set':<20} {'queries':>8} {'median µs':>10} {'worst µs':>10}")
    for name, count, median, worst in rows:
        print(f"{name:<20} {count:>8} {median:>10.1f} {worst:>10.1f}")
    verdict = "met" if rows[0][2] < 200 else "missed"
    print(f"\ngoal (dashboard median < 200 µs): {verdict}")


if __name__ == "__main__":
    main()
