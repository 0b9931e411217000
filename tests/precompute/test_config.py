"""StreamingConfig YAML: the seed's files load; bad configs fail with clear errors."""

from __future__ import annotations

import pytest

from precompute.config import LateDataPolicy, WindowType, load_config
from precompute.filters import LabelFilter, parse_matchers
from promql.errors import BadDataError
from promql.types import MatchType
from storage.model import make_labels

SEED_YAML = """
aggregations:
  - aggregationId: 12
    aggregationType: DatasketchesKLL
    aggregationSubType: ""
    parameters:
      K: 200
    labels:
      grouping: [job]
      aggregated: []
      rollup: [instance]
    metric: http_request_duration_seconds
    spatialFilter: 'job="api"'
    windowSize: 60
    slideInterval: 10
    windowType: sliding
"""


def test_seed_yaml_without_engine_section_loads_with_default_options():
    cfg = load_config(SEED_YAML)
    (agg,) = cfg.aggregations
    assert agg.aggregation_id == 12
    assert agg.window_size_ms == 60_000 and agg.slide_interval_ms == 10_000
    assert agg.window_type is WindowType.SLIDING and agg.panes_per_window == 6
    assert agg.param("K") == 200
    assert agg.labels.grouping == ("job",) and agg.labels.rollup == ("instance",)
    assert [(m.type, m.name, m.value) for m in agg.matchers] == [(MatchType.EQUAL, "job", "api")]
    assert cfg.engine.num_workers == 1 and cfg.engine.late_data_policy is LateDataPolicy.DROP


def test_engine_section_sets_options(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        SEED_YAML
        + "engine: {num_workers: 2, allowed_lateness_ms: 5000, late_data_policy: ForwardToStore}\n"
    )
    cfg = load_config(path)
    assert cfg.engine.num_workers == 2 and cfg.engine.allowed_lateness_ms == 5000
    assert cfg.engine.late_data_policy is LateDataPolicy.FORWARD_TO_STORE


def test_seed_two_level_type_spelling_is_accepted():
    text = SEED_YAML.replace("DatasketchesKLL", "SingleSubpopulation").replace(
        'aggregationSubType: ""', "aggregationSubType: KLL"
    )
    assert load_config(text).aggregations[0].aggregation_type == "DatasketchesKLL"


BAD = [
    (("windowSize: 60", "windowSize: 25"), "not a multiple of slideInterval"),
    (("DatasketchesKLL", "FancySketch"), "unknown aggregationType 'FancySketch'"),
    (("      K: 200\n", "      Z: 1\n"), "needs parameter 'K'"),
    (("'job=\"api\"'", "'job=\"api'"), "bad spatialFilter"),
    (("'job=\"api\"'", "'job=~\"(\"'"), "invalid regex"),
    (("'job=\"api\"'", "'job'"), "bad spatialFilter"),
    (("windowType: sliding", "windowType: hopping"), "windowType must be tumbling or sliding"),
    (("windowType: sliding", "windowType: tumbling"), "tumbling window's slideInterval"),
    (("metric: http_request_duration_seconds", "metric: ''"), "missing metric"),
    (("windowSize: 60", "windowSize: -1"), "windowSize must be > 0"),
    (("K: 200", "K: 0"), "must be a positive integer"),
]


@pytest.mark.parametrize(("edit", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_config_is_rejected_with_a_clear_error(edit, message):
    old, new = edit
    assert old in SEED_YAML
    with pytest.raises(BadDataError, match="aggregation 12: .*" + _re(message)):
        load_config(SEED_YAML.replace(old, new))


def _re(text: str) -> str:
    import re

    return re.escape(text)


def test_duplicate_ids_unknown_engine_options_and_bad_policy_are_rejected():
    with pytest.raises(BadDataError, match="duplicate aggregationId 12"):
        load_config(SEED_YAML + SEED_YAML.split("aggregations:\n")[1])
    with pytest.raises(BadDataError, match="unknown option"):
        load_config(SEED_YAML + "engine: {workers: 2}\n")
    with pytest.raises(BadDataError, match="late_data_policy"):
        load_config(SEED_YAML + "engine: {late_data_policy: Keep}\n")
    with pytest.raises(BadDataError, match="not valid YAML"):
        load_config("aggregations: [")


def test_filter_matches_like_prometheus_including_missing_labels_and_anchoring():
    f = LabelFilter.from_matchers(parse_matchers('{job=~"ap.", env="", code!~"5.."}'))
    assert f.matches(make_labels({"job": "api", "code": "200"}))
    assert not f.matches(make_labels({"job": "apix", "code": "200"}))  # anchored
    assert not f.matches(make_labels({"job": "api", "env": "prod"}))  # env="" needs it absent
    assert not f.matches(make_labels({"job": "api", "code": "503"}))


def test_filter_string_escapes_follow_promql():
    (m,) = parse_matchers(r'a="x\"y\n\u00e9"')
    assert m.value == 'x"y\né'
    (raw,) = parse_matchers(r"a=~`\d+`")
    assert raw.value == r"\d+"


def test_the_readme_example_config_loads_with_every_aggregation_it_names(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```yaml\n") + len("```yaml\n")
    text = readme[start : readme.index("```", start)]
    path = tmp_path / "readme.yaml"
    path.write_text(text)
    config = load_config(path)
    assert [a.aggregation_type for a in config.aggregations] == [
        "MultipleIncrease",
        "DatasketchesKLL",
        "MultipleSum",
        "MultipleLast",
    ]
    assert config.engine.late_data_policy == LateDataPolicy.FORWARD_TO_STORE
