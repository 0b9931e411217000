"""The runner against the real engine and storage: it passes right answers and fails wrong ones."""

from __future__ import annotations

from pathlib import Path

from tests.conformance.runner import run_file

DATA = """
load 1m
  http_requests_total{job="a"} 0+10x10
  http_requests_total{job="b"} 0+20x10

"""


def _run(tmp_path: Path, body: str) -> list[tuple[str, str]]:
    path = tmp_path / "case.test"
    path.write_text(DATA + body)
    return [(o.status, o.reason) for o in run_file(path)]


def test_a_correct_expectation_passes_with_the_extra_checks(tmp_path: Path) -> None:
    body = """eval instant at 5m sum(http_requests_total)
  {} 150

eval range from 0 to 2m step 1m http_requests_total{job="a"}
  http_requests_total{job="a"} 0 10 20
"""
    assert _run(tmp_path, body) == [("passed", ""), ("passed", "")]


def test_wrong_values_labels_and_missing_series_fail(tmp_path: Path) -> None:
    body = """eval instant at 5m sum(http_requests_total)
  {} 151

eval instant at 5m http_requests_total
  http_requests_total{job="a"} 50

eval instant at 5m http_requests_total{job="a"}
  http_requests_total{job="c"} 50

eval range from 0 to 2m step 1m http_requests_total{job="a"}
  http_requests_total{job="a"} 0 10 _
"""
    outcomes = _run(tmp_path, body)
    assert [s for s, _ in outcomes] == ["failed"] * 4
    assert "expected 151" in outcomes[0][1]
    assert "unexpected metric" in outcomes[1][1]


def test_expected_failures_and_annotations_are_checked(tmp_path: Path) -> None:
    body = """eval instant at 5m sum(http_requests_total)
  expect fail

eval instant at 5m rate(http_requests_total[5m])
  expect info
  {job="a"} 0.16666666666666666
  {job="b"} 0.3333333333333333
"""
    outcomes = _run(tmp_path, body)
    assert outcomes[0] == ("failed", "expected error evaluating query but got none")
    assert outcomes[1][0] == "failed" and "expected info annotations" in outcomes[1][1]
