"""The advisor proposes a config the planner then really uses; it lists what it cannot help."""

from __future__ import annotations

import json

import yaml

from planner.advise import AdviseOptions, advise, dashboard_queries, read_queries
from server.cli import main
from tests.sketch.conftest import fill
from tests.sketch.harness import World, assert_same
from tests.sketch.test_equivalence import _rewritten

DASHBOARD = {
    "title": "svc",
    "templating": {
        "list": [
            {"name": "job", "type": "query", "current": {"value": "$__all"}, "multi": True},
            {"name": "q", "type": "custom", "current": {"value": "0.9"}},
        ]
    },
    "panels": [
        {
            "type": "timeseries",
            "targets": [{"expr": 'sum by (job) (rate(c_total{job=~"$job"}[$__rate_interval]))'}],
        },
        {
            "type": "row",
            "collapsed": True,
            "panels": [
                {
                    "targets": [
                        {"expr": "quantile_over_time($q, x[5m])"},
                        {"expr": "max_over_time(x[${__range}])"},
                    ]
                },
                {"targets": [{"expr": "up"}, {"expr": ""}]},
            ],
        },
    ],
}


def test_dashboard_variables_and_grafana_intervals_are_substituted():
    opts = AdviseOptions(rate_interval_ms=120_000, range_ms=1_800_000)
    queries = dashboard_queries({"dashboard": DASHBOARD}, opts)
    assert queries == [
        'sum by (job) (rate(c_total{job=~".*"}[2m]))',
        "quantile_over_time(0.9, x[5m])",
        "max_over_time(x[30m])",
        "up",
    ]
    assert read_queries(json.dumps(DASHBOARD), opts) == queries


def test_advice_lists_queries_it_cannot_help_with_the_reason():
    advice = advise(
        [
            "stddev_over_time(x[5m])",
            "up",
            "rate(x[5m] @ 100)",
            "max_over_time(rate(x[1m])[5m:1m])",
            "rate((",
        ],
        AdviseOptions(),
    )
    assert advice.config == {"aggregations": []}
    reasons = dict(advice.unhelped)
    assert "is not answered from windows" in reasons["stddev_over_time(x[5m])"]
    assert "instant selector" in reasons["up"]
    assert "@ modifier" in reasons["rate(x[5m] @ 100)"]
    assert "subquery" in reasons["max_over_time(rate(x[1m])[5m:1m])"]
    assert "does not parse" in reasons["rate(("]


def test_the_proposed_config_makes_the_planner_answer_the_dashboard_from_windows():
    opts = AdviseOptions(rate_interval_ms=120_000, range_ms=600_000)
    queries = dashboard_queries(DASHBOARD, opts)
    advice = advise(queries, opts)
    assert [q for q, _ in advice.helped] == queries[:3]
    assert [q for q, _ in advice.unhelped] == ["up"]
    w = World(advice.yaml())
    fill(w, seed=2)
    pre, exact = w.engines()
    for q in queries[:3]:
        assert _rewritten(pre, q, 900_000, 3_000_000, 60_000) == 1, q
        assert_same(
            pre.range_query(q, 900_000, 3_000_000, 60_000),
            exact.range_query(q, 900_000, 3_000_000, 60_000),
        )


def test_cli_writes_yaml_to_a_file_and_reasons_to_stderr(tmp_path, capsys):
    src = tmp_path / "queries.txt"
    src.write_text("# panel 1\nincrease(c_total[10m])\nup\n")
    out = tmp_path / "config.yaml"
    assert main(["advise", str(src), "-o", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    assert config["aggregations"][0]["aggregationType"] == "MultipleIncrease"
    assert config["aggregations"][0]["windowSize"] == 600.0
    assert "cannot help: up" in capsys.readouterr().err
