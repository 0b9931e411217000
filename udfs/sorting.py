"""``sort``, ``sort_desc``, ``sort_by_label`` and ``sort_by_label_desc`` as index permutations.

``sort``/``sort_desc`` order by value with NaN last in both directions (``funcSort`` /
``funcSortDesc``); ties keep input order. ``sort_by_label*`` compare the given labels with
natural ordering (``github.com/facette/natsort``, which Prometheus uses), then the whole label
set (``labels.Compare``) so the order is total. These apply to instant queries only; range
query results are ordered by labels regardless.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from storage.model import Labels

_CHUNKS = re.compile(r"([0-9]+|[^0-9]+)")  # Go's \d / \D are ASCII-only


def sort_order(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.lexsort((v, np.isnan(v)))


def sort_desc_order(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.lexsort((-v, np.isnan(v)))


def _atoi(s: str) -> int | None:
    """Go ``strconv.Atoi`` on a digit chunk: fails on non-digits and on int64 overflow."""
    if not s.isascii() or not s.isdigit():
        return None
    n = int(s)
    return n if n <= 2**63 - 1 else None


def natsort_less(a: str, b: str) -> bool:
    """``natsort.Compare(a, b)``: does ``a`` precede ``b`` in natural order."""
    ca, cb = _CHUNKS.findall(a), _CHUNKS.findall(b)
    for i, chunk_a in enumerate(ca):
        if i >= len(cb):
            return False
        chunk_b = cb[i]
        ia, ib = _atoi(chunk_a), _atoi(chunk_b)
        if ia is not None and ib is not None:
            if ia != ib:
                return ia < ib
        elif chunk_a != chunk_b:
            return chunk_a < chunk_b
        if i == len(ca) - 1:
            return True
        if i == len(cb) - 1:
            return False
    return False


def _get(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def _compare_labels(a: Labels, b: Labels) -> int:
    return (a > b) - (a < b)  # tuple order == labels.Compare


def sort_by_label_order(
    series: list[Labels], names: list[str], descending: bool = False
) -> list[int]:
    """Permutation of ``series`` as ``sort_by_label`` (or ``_desc``) orders them."""
    sign = -1 if descending else 1

    def cmp(i: int, j: int) -> int:
        a, b = series[i], series[j]
        for name in names:
            va, vb = _get(a, name), _get(b, name)
            if va == vb:
                continue
            return -sign if natsort_less(va, vb) else sign
        return sign * _compare_labels(a, b)

    return sorted(range(len(series)), key=functools.cmp_to_key(cmp))
