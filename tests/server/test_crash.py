"""Crash safety: a server process is SIGKILLed at random moments while two clients write.

After each kill the data directory is reopened and must hold every acknowledged (204) batch,
exactly, and every unacknowledged batch either completely or not at all.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from promql.types import Matcher, MatchType
from storage.db import Storage
from storage.model import STALE_NAN_BITS
from tests.server.conftest import Client, free_port
from tests.server.payloads import RW_HEADERS, snappy, write_request

REPEATS = 20
SERIES_PER_BATCH = 20
SAMPLES_PER_SERIES = 5
STALE = np.array([STALE_NAN_BITS], np.uint64).view(np.float64)[0]
ROOT = Path(__file__).resolve().parents[2]


def batch_samples(writer: int, n: int) -> dict[tuple[tuple[str, str], ...], list[tuple[int, int]]]:
    """Deterministic content of batch ``n`` of ``writer``: labels -> [(ts, value bits)]."""
    rng = np.random.default_rng(writer * 1_000_003 + n)
    out = {}
    for s in range(SERIES_PER_BATCH):
        labels = (("__name__", "crash"), ("series", str(s)), ("writer", str(writer)))
        values = rng.standard_normal(SAMPLES_PER_SERIES) * 1e3
        if s == 0:
            values[-1] = STALE
        ts = [n * 1000 + j for j in range(SAMPLES_PER_SERIES)]
        out[labels] = list(zip(ts, values.view(np.uint64).tolist(), strict=True))
    return out


def payload(writer: int, n: int) -> bytes:
    series = [
        (list(labels), [(t, float(np.array([b], np.uint64).view(np.float64)[0])) for t, b in smp])
        for labels, smp in batch_samples(writer, n).items()
    ]
    return snappy(write_request(series))


class Writer(threading.Thread):
    def __init__(self, client: Client, writer: int, first: int) -> None:
        super().__init__(daemon=True)
        self.client, self.writer, self.next = client, writer, first
        self.acked: list[int] = []
        self.attempted: list[int] = []
        self.error = ""
        self.failure: OSError | None = None

    def run(self) -> None:
        while True:
            n = self.next
            self.attempted.append(n)
            try:
                reply = self.client.post("/api/v1/write", payload(self.writer, n), RW_HEADERS)
            except OSError as err:
                self.failure = err  # expected once the server is killed
                return
            if reply.status != 204:
                self.error = f"{reply.status} {reply.body[:300]!r}"
                return
            self.acked.append(n)
            self.next += 1


def open_after_kill(data_dir: Path, timeout: float = 30.0) -> Storage:
    """The killed server's directory lock goes once the kernel has torn the process down."""
    from storage.dirlock import DataDirInUseError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Storage.open(data_dir)
        except DataDirInUseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def stored_samples(data_dir: Path) -> dict[tuple, dict[int, int]]:
    db = open_after_kill(data_dir)
    try:
        ss = db.select([Matcher(MatchType.EQUAL, "__name__", "crash")], -(2**62), 2**62)
        bits = ss.values.view(np.uint64)
        out = {}
        for i, labels in enumerate(ss.labels):
            lo, hi = int(ss.offsets[i]), int(ss.offsets[i + 1])
            out[labels] = dict(
                zip(ss.timestamps[lo:hi].tolist(), bits[lo:hi].tolist(), strict=True)
            )
        return out
    finally:
        db.close()


def wait_ready(client: Client, pid: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/-/ready").status == 200:
                return
        except OSError:
            time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("server did not become ready")


def check(data_dir: Path, acked: dict[int, set[int]], attempted: dict[int, set[int]]) -> None:
    """Every acknowledged batch in ``attempted`` is stored exactly; the others all-or-nothing."""
    got = stored_samples(data_dir)
    for w, batches in attempted.items():
        for n in batches:
            want = batch_samples(w, n)
            present = [
                all(got.get(labels, {}).get(t) == b for t, b in smp) for labels, smp in want.items()
            ]
            if n in acked[w]:
                assert all(present), f"acknowledged batch {w}/{n} lost or changed"
            else:
                absent = [
                    not any(t in got.get(labels, {}) for t, _ in smp)
                    for labels, smp in want.items()
                ]
                assert all(present) or all(absent), f"batch {w}/{n} partially stored"


def test_acknowledged_writes_survive_kill_9_at_random_moments(tmp_path):
    data_dir = tmp_path / "data"
    zygote = subprocess.Popen(
        [sys.executable, "-m", "tests.server.zygote"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    rnd = random.Random(1234)
    acked: dict[int, set[int]] = {0: set(), 1: set()}
    attempted: dict[int, set[int]] = {0: set(), 1: set()}
    next_batch = {0: 0, 1: 0}
    kills_with_data_in_flight = 0
    try:
        for _ in range(REPEATS):
            port = free_port()
            assert zygote.stdin is not None and zygote.stdout is not None
            zygote.stdin.write(f"{port} {data_dir}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            client = Client(f"http://127.0.0.1:{port}")
            wait_ready(client, pid)
            writers = [Writer(client, w, next_batch[w]) for w in (0, 1)]
            this_round: dict[int, set[int]] = {}
            for t in writers:
                t.start()
            time.sleep(rnd.uniform(0.01, 0.15))
            os.kill(pid, signal.SIGKILL)
            for t in writers:
                t.join(30)
                acked[t.writer].update(t.acked)
                attempted[t.writer].update(t.attempted)
                this_round[t.writer] = set(t.attempted)
                next_batch[t.writer] = t.next + 1  # skip the in-flight batch number
                kills_with_data_in_flight += len(t.attempted) > len(t.acked)
                assert not t.error, t.error
            check(data_dir, acked, this_round)  # this round's batches, right after the kill
    finally:
        zygote.kill()
        zygote.wait(10)
    check(data_dir, acked, attempted)  # and everything, once all crashes happened
    assert sum(len(a) for a in acked.values()) > REPEATS, "too few writes to test anything"
    assert kills_with_data_in_flight > 0
