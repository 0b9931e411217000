"""The data directory is held by one open store at a time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from storage.db import Storage
from storage.dirlock import DataDirInUseError


def test_a_second_open_of_a_held_directory_fails_clearly_and_works_after_close(tmp_path):
    db = Storage.open(tmp_path)
    with pytest.raises(DataDirInUseError, match="in use by another Tidemark process"):
        Storage.open(tmp_path)
    db.close()
    Storage.open(tmp_path).close()


def test_another_process_cannot_open_a_held_directory(tmp_path):
    db = Storage.open(tmp_path)
    try:
        code = (
            "import sys\n"
            "from storage.db import Storage\n"
            "from storage.dirlock import DataDirInUseError\n"
            "try:\n"
            f"    Storage.open({str(tmp_path)!r})\n"
            "except DataDirInUseError:\n"
            "    sys.exit(3)\n"
        )
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 3
    finally:
        db.close()
