from __future__ import annotations

import pytest

from promql.errors import ExecutionError
from storage.model import make_labels
from udfs.label_functions import label_join, label_replace

BASE = make_labels({"__name__": "up", "src": "source-value-10", "dst": "original"})


@pytest.mark.parametrize(
    ("replacement", "regex", "want"),
    [
        ("destination-value-$1", "source-value-(.*)", "destination-value-10"),
        ("${1}x", "source-value-(.*)", "10x"),
        ("$1x", "source-value-(.*)", ""),  # group "1x" does not exist → removes dst
        ("$$1", "source-value-(.*)", "$1"),
        ("a$", "source-value-(.*)", "a$"),
        ("${name}", "source-(?P<name>value)-.*", "value"),
        ("$2", "source-value-(.*)", ""),
        ("$01", "source-value-(.*)", ""),
        ("${1", "source-value-(.*)", "${1"),
    ],
)
def test_label_replace_expands_like_go_regexp_expand(replacement, regex, want):
    out = dict(label_replace(BASE, "dst", replacement, "src", regex))
    assert out.get("dst", "") == want


def test_label_replace_is_anchored_and_leaves_labels_alone_without_a_match():
    assert label_replace(BASE, "dst", "x", "src", "value-(.*)") == BASE
    assert dict(label_replace(BASE, "dst", "x", "src", "source.*"))["dst"] == "x"


def test_label_replace_dot_matches_newlines_and_empty_source():
    lbls = make_labels({"src": "a\nb"})
    assert dict(label_replace(lbls, "d", "$1", "src", "(.*)"))["d"] == "a\nb"
    assert dict(label_replace(lbls, "d", "empty", "missing", ""))["d"] == "empty"


def test_label_replace_can_set_the_metric_name_and_keeps_labels_sorted():
    out = label_replace(BASE, "__name__", "renamed", "src", ".*")
    assert dict(out)["__name__"] == "renamed"
    assert list(out) == sorted(out)


def test_label_replace_rejects_invalid_regex_and_destination():
    with pytest.raises(
        ExecutionError, match=r"invalid regular expression in label_replace\(\): \("
    ):
        label_replace(BASE, "dst", "", "src", "(")
    with pytest.raises(ExecutionError, match="invalid destination label name in label_replace"):
        label_replace(BASE, "", "", "src", ".*")
    with pytest.raises(ExecutionError, match="invalid destination label name"):
        label_replace(BASE, "\udcff", "", "src", ".*")


def test_label_join_joins_in_argument_order_with_missing_labels_empty():
    out = dict(label_join(BASE, "joined", ",", "src", "missing", "dst"))
    assert out["joined"] == "source-value-10,,original"
    assert "dst" not in dict(label_join(BASE, "dst", "-"))  # empty join removes the label


def test_label_join_rejects_invalid_names():
    with pytest.raises(ExecutionError, match="invalid source label name in label_join"):
        label_join(BASE, "d", ",", "")
    with pytest.raises(ExecutionError, match="invalid destination label name in label_join"):
        label_join(BASE, "", ",", "src")
