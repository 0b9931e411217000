"""Keep freed query memory in the process instead of returning it to the OS after every query.

A range query allocates and frees a few hundred MB of numpy temporaries. With glibc's defaults the
freed top of the heap is trimmed back to the OS after the query (and arrays above the dynamic mmap
threshold are unmapped), so the next query page-faults all of it in again: ~6,000-12,000 faults
and 25-45 ms on a warm 1000-step dashboard query over precomputed windows. Raising the mmap
threshold to 32 MiB and the trim threshold to 256 MiB keeps up to that much freed memory for reuse.
Only glibc has ``mallopt``; elsewhere this does nothing. ``TIDEMARK_MALLOC_TUNING=0`` turns it off,
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

MMAP_THRESHOLD_BYTES = 32 << 20
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
    if not done:
        log.warning("mallopt refused the allocator thresholds; keeping glibc's defaults")
    return done
