"""Keep freed query memory in the process instead of returning it to the OS after every query.

A range query allocates and frees a few hundred MB of numpy temporaries. With glibc's defaults the
freed top of the heap is trimmed back to the OS after the query (and arrays above the dynamic mmap
threshold are unmapped), so the next query page-faults all of it in again: ~6,000-12,000 faults
and 25-45 ms on a warm 1000-step dashboard query over precomputed windows. Raising the mmap
threshold to 32 MiB and the trim threshold to 256 MiB keeps up to that much freed memory for reuse,
and one arena for all threads (``ARENAS``) makes it the same memory whichever thread runs the
next query. Only glibc has ``mallopt``; elsewhere this does nothing. ``TIDEMARK_MALLOC_TUNING=0`` turns it off,
and glibc's own ``MALLOC_*_`` environment variables, when set, win.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_M_ARENA_MAX = -8

MMAP_THRESHOLD_BYTES = 32 << 20
# One malloc arena for all threads: numpy allocates under the GIL, so threads rarely contend for
# it, and a query then runs in memory earlier queries warmed whichever pool thread it lands on.
# With glibc's default (an arena per thread, up to 8 per core) each of the query pool's threads
# page-faulted its own arena in: a 1,000-step exact quantile took ~0.7-1 s on each of its first
# four requests over HTTP, ~0.35 s after (0.3 s on every request after the first with one).
ARENAS = 1
TRIM_THRESHOLD_BYTES = 256 << 20


def tune_allocator() -> bool:
    """Apply the thresholds; True when glibc accepted both."""
    if os.environ.get("TIDEMARK_MALLOC_TUNING", "1") == "0":
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        libc = ctypes.CDLL(path)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done &= mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        done &= mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    if "MALLOC_ARENA_MAX" not in os.environ:
        done &= mallopt(_M_ARENA_MAX, ARENAS) == 1
    if not done:
        log.warning("mallopt refused the allocator thresholds; keeping glibc's defaults")
    return done
