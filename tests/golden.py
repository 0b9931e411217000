"""Golden-file comparison shared by the EXPLAIN tests. ``UPDATE_GOLDEN=1`` rewrites the files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(path: Path, actual: str) -> None:
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
        if not UPDATE:
            pytest.fail(f"golden file {path.name} was missing and has been written; re-run")
    assert actual == path.read_text(), f"{path.name} differs (UPDATE_GOLDEN=1 to accept)"


def check_explain(explained, golden_dir: Path, name: str) -> None:
    """An ``Explained``'s text and JSON against ``<name>.txt`` / ``<name>.json``."""
    check_golden(golden_dir / f"{name}.txt", explained.text)
    check_golden(
        golden_dir / f"{name}.json", json.dumps(explained.json, indent=2, sort_keys=True) + "\n"
    )
