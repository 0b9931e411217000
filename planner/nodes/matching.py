"""Vector matching helpers shared by ``BinaryJoin`` and ``SetOp``: join signatures per series."""

from __future__ import annotations

import numpy as np

from planner.labels import group_ids
from promql.ast import VectorMatching
from storage.model import METRIC_NAME, Labels


def signature(labels: Labels, matching: VectorMatching | None) -> Labels:
    """The labels two series must share to match: ``on(...)`` keeps, ``ignoring(...)`` drops.

    ``ignoring`` (and no clause at all) always ignores ``__name__`` as well, as upstream.
    """
    if matching is not None and matching.on:
        names = frozenset(matching.matching_labels)
        return tuple(p for p in labels if p[0] in names)
    ignored = frozenset((*(matching.matching_labels if matching else ()), METRIC_NAME))
    return tuple(p for p in labels if p[0] not in ignored)


def signature_ids(
    lhs: list[Labels], rhs: list[Labels], matching: VectorMatching | None
) -> tuple[np.ndarray, np.ndarray, list[Labels]]:
    """Dense signature ids for both sides over one shared dictionary, and the signatures."""
    sigs = [signature(ls, matching) for ls in lhs] + [signature(ls, matching) for ls in rhs]
    ids, keys = group_ids(sigs)
    return ids[: len(lhs)], ids[len(lhs) :], keys


def present_by_signature(sig: np.ndarray, present: np.ndarray, n_sigs: int) -> np.ndarray:
    """``[n_sigs, k]``: whether any series with that signature is present at each step."""
    out = np.zeros((n_sigs, present.shape[1]), dtype=bool)
    rows, cols = np.nonzero(present)
    out[sig[rows], cols] = True
    return out
