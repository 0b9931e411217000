"""The decoded-window cache's byte budget: from the machine's memory unless a flag or the
environment names one.

Production TSDBs size their caches from the memory they may use: VictoriaMetrics gives all its
caches ``-memory.allowedPercent`` (60 %) of the machine's memory or of its cgroup limit, whichever
is lower; Prometheus keeps none and leans on the OS page cache. Tidemark's decoded windows are
one cache among several users of the process' memory (the head's samples, the label index, an
exact query's working arrays: ``--query.max-samples`` × 16 B can reach hundreds of MB), so the
default is an eighth of the usable memory (``FRACTION``), never below ``FLOOR`` (256 MiB: the
benchmark's 6 h of 1 h quantile sketches, ~320 MB, nearly fit; a smaller cache re-decodes a
dashboard's blocks on every refresh) unless the memory is tiny (a quarter of it at most then),
and never above ``CEILING`` (8 GiB: the warm-up decodes up to half the budget after a start, ~190
MB/s of KLL sketches measured, so 4 GiB is ~20 s of one core; and one compaction of an 8 GiB table
copies for ~2 s in the background — beyond that a bigger cache costs more than its misses).

Precedence: ``tidemark serve --sketch-cache-bytes`` > ``TIDEMARK_SKETCH_CACHE_BYTES`` > machine.
Sizes are plain bytes or a number with a unit as VictoriaMetrics' flags read them (``KB``/``MB``/
``GB``/``TB`` are powers of 1000, ``KiB``/``MiB``/``GiB``/``TiB`` of 1024), or a percentage of the
usable memory (``25%``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV = "TIDEMARK_SKETCH_CACHE_BYTES"
FRACTION = 1 / 8
FLOOR = 256 << 20
CEILING = 8 << 30
FALLBACK = 512 << 20  # the memory size cannot be read (no sysconf, no cgroup): the old default
# cgroup v1 reports "no limit" as the largest page-aligned 63-bit number; anything this big is.
_NO_LIMIT = 1 << 60
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*|%)\s*$", re.IGNORECASE)

log = logging.getLogger("tidemark")


@dataclass(frozen=True)
class Budget:
    """An effective budget and where it came from (``flag``, ``env`` or ``machine``)."""

    bytes: int
    source: str
    memory_bytes: int | None = None  # the usable memory it was derived from (machine, %)

    def describe(self) -> str:
        text = f"{format_bytes(self.bytes)} ({self.bytes} bytes) from {self.source}"
        if self.memory_bytes is not None:
            text += f", usable memory {format_bytes(self.memory_bytes)}"
        return text


def parse_bytes(text: str | int, memory_bytes: int | None = None) -> int:
    """``"536870912"``, ``"512MiB"``, ``"2GB"``, ``"1.5GiB"`` or ``"25%"`` (of ``memory_bytes``)
    as a byte count; ValueError for anything else, negative or a percentage without a memory
    size."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a byte size must not be negative, got {text}")
        return text
    m = _SIZE.match(text)
    if m is None or m.group(2).lower() not in {*_UNITS, "%"}:
        raise ValueError(
            f"invalid byte size {text!r}: want bytes or a number with KB, MB, GB, TB, KiB, MiB, "
            "GiB, TiB or %"
        )
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%":
        if memory_bytes is None:
            raise ValueError(f"{text!r}: the machine's memory size is unknown")
        if number > 100:
            raise ValueError(f"{text!r}: a percentage of memory must be at most 100%")
        return int(memory_bytes * number / 100)
    return int(number * _UNITS[unit])


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def physical_memory() -> int | None:
    """The machine's RAM in bytes (None where sysconf cannot say)."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def cgroup_memory_limit(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> int | None:
    """The process' cgroup memory limit in bytes, None when unlimited or unreadable. cgroup v2:
    ``memory.max`` of the process' own cgroup (``0::/path`` in ``/proc/self/cgroup``), else of
    the mount's root (a container sees its own cgroup there); v1: ``memory/memory.limit_in_bytes``
    likewise. The lowest limit found counts."""
    own_v2 = own_v1 = ""
    try:
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                own_v2 = path.strip("/")
            elif "memory" in controllers.split(","):
                own_v1 = path.strip("/")
    except (OSError, ValueError):
        pass
    candidates = [root / own_v2 / "memory.max", root / "memory.max"]
    candidates += [root / "memory" / own_v1 / "memory.limit_in_bytes"]
    candidates += [root / "memory" / "memory.limit_in_bytes"]
    limits = [v for v in (_read_limit(p) for p in candidates) if v is not None]
    return min(limits) if limits else None


def _read_limit(path: Path) -> int | None:
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if not raw.isdigit():  # "max" (v2: unlimited) or garbage
        return None
    value = int(raw)
    return value if 0 < value < _NO_LIMIT else None


def usable_memory(physical: int | None, limit: int | None) -> int | None:
    """The memory the process may use: its cgroup limit if lower than the RAM."""
    known = [v for v in (physical, limit) if v]
    return min(known) if known else None


def machine_budget(memory_bytes: int | None) -> int:
    """``FRACTION`` of the usable memory, within [min(``FLOOR``, memory / 4), ``CEILING``]."""
    if not memory_bytes:
        return FALLBACK
    floor = min(FLOOR, memory_bytes // 4)
    return int(min(CEILING, max(floor, memory_bytes * FRACTION)))


def resolve_budget(
    flag: str | int | None,
    environ: Mapping[str, str],
    memory_bytes: int | None = None,
    *,
    strict: bool = True,
) -> Budget:
    """The effective budget: ``flag`` if given, else ``environ[ENV]``, else the machine's.
    ``memory_bytes`` overrides the machine's usable memory (tests). An invalid value raises
    ValueError, or with ``strict=False`` (at import, where raising would break every import)
    falls back to the next source with a warning."""
    memory = memory_bytes if memory_bytes is not None else _machine_memory()
    for source, raw in (("flag", flag), ("env", environ.get(ENV))):
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            value = parse_bytes(raw, memory)
        except ValueError as err:
            if strict:
                raise ValueError(f"{_name(source)}: {err}") from err
            log.warning("ignoring %s: %s", _name(source), err)
            continue
        pct = isinstance(raw, str) and raw.strip().endswith("%")
        return Budget(value, source, memory if pct else None)
    return Budget(machine_budget(memory), "machine", memory)


def _machine_memory() -> int | None:
    return usable_memory(physical_memory(), cgroup_memory_limit())


def _name(source: str) -> str:
    return "--sketch-cache-bytes" if source == "flag" else ENV
