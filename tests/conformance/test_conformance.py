"""The whole promqltest corpus in process; fails when the core pass count drops below baseline.

``UPDATE_BASELINE=1 .venv/bin/python -m pytest tests/conformance/test_conformance.py`` rewrites
``baseline.json`` from the current run (commit it with the change that earned it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conformance.report import count, format_table, totals
from tests.conformance.runner import DEFAULT_DIR, corpus_files, run_corpus

BASELINE = Path(__file__).with_name("baseline.json")


def _engine_available() -> str | None:
    try:
        import planner.engine  # noqa: F401
        import storage.db  # noqa: F401
    except ImportError as exc:
        return f"engine or storage not importable yet: {exc}"
    return None


@pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason=f"corpus not found at {DEFAULT_DIR}")
def test_core_pass_count_does_not_drop_below_the_committed_baseline() -> None:
    missing = _engine_available()
    if missing:
        pytest.skip(missing)
    outcomes = run_corpus(corpus_files())
    print(format_table(outcomes))
    t = totals(outcomes)
    current = {
        "core_passed": t["core"]["passed"],
        "experimental_passed": t["experimental"]["passed"],
        "per_file_core_passed": {
            name: groups["core"]["passed"] for name, groups in sorted(count(outcomes).items())
        },
    }
    if os.environ.get("UPDATE_BASELINE") == "1":
        BASELINE.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        return
    baseline = json.loads(BASELINE.read_text())
    assert current["core_passed"] >= baseline["core_passed"], (
        f"core conformance dropped: {current['core_passed']} < {baseline['core_passed']}"
    )
