"""Per-series label work: dropping ``__name__``, signatures, grouping and duplicate merging.

These loop per series (never per step); the value matrices are moved with numpy indexing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

from planner.values import InstantVector
from promql.errors import ExecutionError
from storage.model import METRIC_NAME, Labels

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"
T = TypeVar("T")


# Prometheus' ``schema.IsMetadataLabel``: dropping "the name" drops the type and unit too.
METADATA_LABELS = frozenset({METRIC_NAME, "__type__", "__unit__"})


def drop_name(labels: Labels) -> Labels:
    # Fast path: label sets are sorted, so a plain ``__name__`` is first and the metadata labels
    # (all ``__``-prefixed) would follow it directly.
    if labels and labels[0][0] == METRIC_NAME and (len(labels) == 1 or labels[1][0][:2] != "__"):
        return labels[1:]
    for name, _ in labels:
        if name in METADATA_LABELS:
            return tuple(p for p in labels if p[0] not in METADATA_LABELS)
    return labels


# Label-set memos keep at most this many entries each (~300 bytes apiece), then start over.
MEMO_ENTRIES = 1 << 18


class IdentityMemo:
    """``fn(labels)`` remembered per label tuple by identity: storage hands out the same tuples
    every query, so a dashboard's series hit on every refresh with an int-keyed lookup (hashing
    a label tuple costs about what ``fn`` does). An entry holds its tuple, so the id cannot be
    reused while it is remembered; bounded by ``MEMO_ENTRIES`` under series churn."""

    def __init__(self, fn: Callable[[Labels], Labels]) -> None:
        self.fn = fn
        self.memo: dict[int, tuple[Labels, Labels]] = {}
        self.lists = ListMemo(self._each)

    def many(self, labels: list[Labels]) -> list[Labels]:
        return list(self.lists(labels))  # a copy: callers own the list they get

    def _each(self, labels: list[Labels]) -> tuple[Labels, ...]:
        memo, fn = self.memo, self.fn
        if len(memo) > MEMO_ENTRIES:
            memo.clear()
        out = []
        for ls in labels:
            hit = memo.get(id(ls))
            if hit is None or hit[0] is not ls:
                hit = memo[id(ls)] = (ls, fn(ls))
            out.append(hit[1])
        return tuple(out)


class ListMemo(Generic[T]):
    """``fn(labels)`` remembered per whole list of label sets.

    A dashboard asks for the same series on every refresh and storage hands out the same label
    tuples, so the list compares equal to the one kept in a pointer walk at C speed (~1 ns a
    series) where deriving anything per series in Python costs 0.1–0.5 µs each. The candidate is
    found by length and its ends' identities, then confirmed by equality, so ``fn`` must depend
    on label values alone. The result is shared between callers: ``fn`` returns something they
    do not mutate (tuples, read-only arrays). Bounded by ``series`` label sets kept in all."""

    def __init__(self, fn: Callable[[list[Labels]], T], series: int = MEMO_ENTRIES) -> None:
        self.fn = fn
        self.series = series
        self.kept_series = 0
        self.memo: dict[tuple[int, int, int], tuple[list[Labels], T]] = {}

    def __call__(self, labels: list[Labels]) -> T:
        n = len(labels)
        if not n:
            return self.fn(labels)
        if type(labels) is not list:
            labels = list(labels)
        key = (n, id(labels[0]), id(labels[-1]))
        kept = self.memo.get(key)
        if kept is not None and kept[0] == labels:
            return kept[1]
        out = self.fn(labels)
        if self.kept_series + n > self.series:
            self.memo.clear()
            self.kept_series = 0
        self.memo[key] = (list(labels), out)
        self.kept_series += n
        return out


# Name-less label sets, the same tuples each refresh (so memos keyed on them hit too).
DROPPED_NAMES = IdentityMemo(drop_name)


def _distinct(labels: list[Labels]) -> bool:
    return len(set(labels)) == len(labels)


# Whether no two label sets of a list are equal (a hash of each set when not remembered).
all_distinct = ListMemo(_distinct)


def keep_only(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(p for p in labels if p[0] in names)


def drop_these(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(p for p in labels if p[0] not in names)


def label_value(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def group_ids(keys: list) -> tuple[np.ndarray, list]:
    """Dense ids in order of first appearance for hashable keys, and the distinct keys."""
    index: dict = {}
    ids = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        ids[i] = index.setdefault(key, len(index))
    return ids, list(index)


def merge_same_labels(vec: InstantVector) -> InstantVector:
    """Merge series whose label sets became equal; two present at one step is an error.

    Prometheus builds range-query output by label set, so series that differ only by a dropped
    ``__name__`` merge as long as they never coincide in time.
    """
    if all_distinct(vec.labels):  # the usual case
        return vec
    ids, keys = group_ids(vec.labels)
    n_groups, k = len(keys), vec.n_steps
    counts = np.zeros((n_groups, k), dtype=np.int64)
    np.add.at(counts, ids, vec.present.astype(np.int64))
    if (counts > 1).any():
        raise ExecutionError(DUPLICATE_LABELSET)
    values = np.zeros((n_groups, k), dtype=np.float64)
    present = np.zeros((n_groups, k), dtype=bool)
    rows, cols = np.nonzero(vec.present)
    values[ids[rows], cols] = vec.values[rows, cols]
    present[ids[rows], cols] = True
    drop = None
    if vec.drop_name is not None:
        drop = np.zeros(n_groups, dtype=bool)
        np.logical_or.at(drop, ids, vec.drop_name)
    keep = present.any(axis=1)
    labels = [keys[i] for i in np.nonzero(keep)[0].tolist()]
    return InstantVector(labels, values[keep], present[keep], None if drop is None else drop[keep])


def with_names_dropped(vec: InstantVector, delayed: bool) -> InstantVector:
    """Drop ``__name__`` from every series (or mark it for later with delayed name removal)."""
    if delayed:
        return InstantVector(
            vec.labels, vec.values, vec.present, np.ones(vec.n_series, dtype=bool), None
        )
    labels = DROPPED_NAMES.many(vec.labels)
    return merge_same_labels(InstantVector(labels, vec.values, vec.present))


def finalize_names(vec: InstantVector) -> InstantVector:
    """Apply delayed name removal at the end of evaluation."""
    if vec.drop_name is None or not vec.drop_name.any():
        return InstantVector(vec.labels, vec.values, vec.present)
    labels = [
        drop_name(ls) if d else ls for ls, d in zip(vec.labels, vec.drop_name.tolist(), strict=True)
    ]
    return merge_same_labels(InstantVector(labels, vec.values, vec.present))


def prune_empty(vec: InstantVector) -> InstantVector:
    """Drop series that are absent at every step."""
    keep = vec.present.any(axis=1)
    if keep.all():
        return vec
    return vec.select(np.nonzero(keep)[0])


def format_labels(labels: Labels) -> str:
    """Prometheus' ``labels.String()``: ``{a="1", b="2"}`` with Go-style quoting."""
    inner = ", ".join(f"{k}={_go_quote(v)}" for k, v in labels)
    return "{" + inner + "}"


def _go_quote(value: str) -> str:
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'
