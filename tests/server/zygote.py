"""Pre-imports the server once, then forks a fresh ``tidemark serve`` per request on stdin.

The crash test kills these children with SIGKILL; forking from this single-threaded process (not
from pytest, which has threads) keeps each restart a real, separate process that starts in
milliseconds instead of re-importing numpy/numba/aiohttp. Protocol: the parent writes
``PORT DATA_DIR`` lines and reads back one PID per line.
"""

from __future__ import annotations

import os
import signal
import sys

import server.app
import server.routes_ingest
import server.routes_ops
import server.routes_read  # noqa: F401
import storage.db  # noqa: F401
from server.cli import main
from server.rw_wire import walk_write_request


def run() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    walk_write_request(b"")  # load the compiled decoder once, before forking
    for line in sys.stdin:
        port, data_dir = line.split()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sys.stdin.close()
            args = ["serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
            os._exit(main([*args, "--log-level", "warning"]))
        print(pid, flush=True)


if __name__ == "__main__":
    run()
