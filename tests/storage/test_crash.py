"""Crash safety at the storage level: a writer process is killed with SIGKILL mid-stream.

The child prints a batch's timestamp only after ``append`` returned (the acknowledgement); after
the kill, every printed batch must be fully present and the store must open cleanly. A small
block duration makes cuts, checkpoints and compactions happen while the child is killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import Storage, StorageOptions
from tests.storage.helpers import everything

ROOT = Path(__file__).resolve().parents[2]
N_SERIES = 50
OPTIONS = {"block_duration_ms": 2000, "late_cut_interval_s": 0.0, "wal_segment_bytes": 64 << 10}

CHILD = """
import sys
import numpy as np
from storage.db import Storage, StorageOptions
from storage.model import SampleBatch, make_labels

db = Storage.open(sys.argv[1], StorageOptions(**eval(sys.argv[2])))
series = [make_labels({"__name__": "crash", "i": str(k)}) for k in range({n})]
start = int(sys.argv[3])
for t in range(start, start + 100000, 100):
    ts = np.full({n}, t, dtype=np.int64)
    db.append(SampleBatch(series, np.arange({n}), ts, np.arange({n}, dtype=np.float64) + t))
    print(t, flush=True)
""".replace("{n}", str(N_SERIES))


def run_and_kill(data_dir: Path, start: int, acks_before_kill: int) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir), repr(OPTIONS), str(start)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(int(line))
        if len(acked) >= acks_before_kill:
            break
    proc.send_signal(signal.SIGKILL)
    acked.extend(int(line) for line in proc.stdout.read().split())
    proc.wait()
    return acked


def check(data_dir: Path, acked: list[int]) -> None:
    db = Storage.open(data_dir, StorageOptions(**OPTIONS))
    s = everything(db)
    assert len(s.labels) == N_SERIES
    for i, labels in enumerate(s.labels):
        _, ts, vals = s.series(i)
        k = int(dict(labels)["i"])
        present = dict(zip(ts.tolist(), vals.tolist(), strict=True))
        missing = [t for t in acked if present.get(t) != float(t + k)]
        assert not missing, f"series {labels}: lost acknowledged samples {missing[:5]}"
    db.close()


@pytest.mark.parametrize("round_", range(4))
def test_sigkill_loses_no_acknowledged_sample(tmp_path, round_):
    rng = random.Random(round_)
    acked: list[int] = []
    for life in range(2):  # kill, restart on the same directory, kill again
        acked += run_and_kill(tmp_path, 100_000 * life, rng.randint(5, 120))
        check(tmp_path, acked)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(20))
def test_sigkill_loses_no_acknowledged_sample_many_times(tmp_path, round_):
    rng = random.Random(1000 + round_)
    acked: list[int] = []
    for life in range(3):
        acked += run_and_kill(tmp_path, 100_000 * life, rng.randint(1, 300))
        check(tmp_path, acked)
