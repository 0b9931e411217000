"""``BinaryJoin``: arithmetic and comparison between vectors (all cardinalities) or with a scalar.

Semantics follow Prometheus 3 ``VectorBinop`` / ``VectorscalarBinop`` / ``resultMetric``
(``promql/engine.go``): the "one" side must be unique per match group at each step, result
labels come from the "many" side, ``group_x(...)`` labels are copied from the "one" side, and
arithmetic (or ``bool``) drops ``__name__``. Matching is done once per series pair; values move
through numpy fancy indexing over all steps at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from planner.labels import METADATA_LABELS, drop_name, format_labels, group_ids, merge_same_labels
from planner.nodes.base import PlanError, PlanNode, require_type
from planner.nodes.matching import signature, signature_ids
from planner.values import InstantVector, ScalarValue
from promql.ast import Cardinality, VectorMatching
from promql.errors import ExecutionError
from promql.types import ValueType
from storage.model import Labels

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
MIN_MAX = frozenset({"min_of", "max_of"})
COMPARISON = frozenset({"==", "!=", ">", "<", ">=", "<="})


def apply_op(op: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(values, keep)``: arithmetic result (keep ``None``) or the comparison mask."""
    from udfs import binary

    with np.errstate(all="ignore"):
        if op in MIN_MAX:  # min_of / max_of: math.Min / math.Max (NaN wins)
            fn = np.minimum if op == "min_of" else np.maximum
            return fn(np.asarray(a, np.float64), np.asarray(b, np.float64)), None
        if op in ARITHMETIC:
            return np.asarray(binary.arith(op, a, b), dtype=np.float64), None
        return a, np.asarray(binary.compare(op, a, b), dtype=bool)


@dataclass(frozen=True)
class BinaryJoin(PlanNode):
    """``lhs op rhs`` where at least one side is a vector (scalar-only is ``ScalarCalc``)."""

    op: str
    lhs: PlanNode
    rhs: PlanNode
    matching: VectorMatching | None = None
    return_bool: bool = False

    INPUTS = ("lhs", "rhs")

    def params(self):
        out: list[tuple[str, object]] = [("op", self.op)]
        if self.return_bool:
            out.append(("bool", True))
        m = self.matching
        if m is not None and (m.has_matching or m.card != Cardinality.ONE_TO_ONE):
            out.append(("on" if m.on else "ignoring", list(m.matching_labels)))
            if m.card != Cardinality.ONE_TO_ONE:
                out.append(("card", m.card.value))
            if m.include:
                out.append(("include", list(m.include)))
        return out

    def check(self) -> None:
        require_type(self, self.lhs, ValueType.VECTOR, ValueType.SCALAR)
        require_type(self, self.rhs, ValueType.VECTOR, ValueType.SCALAR)
        if ValueType.VECTOR not in (self.lhs.output_type, self.rhs.output_type):
            raise PlanError("BinaryJoin needs at least one vector side")
        if self.op not in ARITHMETIC | COMPARISON:
            raise PlanError(f"BinaryJoin: unsupported operator {self.op}")
        if self.matching is not None and self.matching.card == Cardinality.MANY_TO_MANY:
            raise PlanError("BinaryJoin: many-to-many is only for set operators")

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        lhs, rhs = ex.run(self.lhs, grid), ex.run(self.rhs, grid)
        delayed = ex.options.delayed_name_removal
        if isinstance(rhs, ScalarValue):
            assert isinstance(lhs, InstantVector)
            return self._with_scalar(lhs, rhs.values, False, delayed)
        if isinstance(lhs, ScalarValue):
            assert isinstance(rhs, InstantVector)
            return self._with_scalar(rhs, lhs.values, True, delayed)
        assert isinstance(lhs, InstantVector) and isinstance(rhs, InstantVector)
        return self._vectors(lhs, rhs, delayed)

    def _with_scalar(
        self, vec: InstantVector, scalar: np.ndarray, swapped: bool, delayed: bool
    ) -> InstantVector:
        s = np.broadcast_to(scalar[None, :], vec.values.shape)
        a, b = (s, vec.values) if swapped else (vec.values, s)
        values, keep = apply_op(self.op, a, b)
        present = vec.present
        if keep is not None:
            if self.return_bool:
                values = keep.astype(np.float64)
            else:
                values = vec.values  # comparisons keep the vector's own value
                present = present & keep
        changes_name = self.op in ARITHMETIC or self.return_bool
        out = InstantVector(
            vec.labels, np.where(present, values, 0.0), present, vec.drop_name, None
        )
        if not changes_name:
            return _pruned(out)
        if delayed:
            flags = np.ones(out.n_series, dtype=bool)
            return _pruned(InstantVector(out.labels, out.values, out.present, flags))
        labels = [drop_name(ls) for ls in out.labels]
        return merge_same_labels(_pruned(InstantVector(labels, out.values, out.present)))

    def _vectors(self, lhs: InstantVector, rhs: InstantVector, delayed: bool) -> InstantVector:
        matching = self.matching or VectorMatching()
        k = lhs.n_steps
        fills = matching.fill_lhs is not None or matching.fill_rhs is not None
        if (lhs.n_series == 0 and rhs.n_series == 0) or (
            (lhs.n_series == 0 or rhs.n_series == 0) and not fills
        ):
            return InstantVector.empty(k)
        swapped = matching.card == Cardinality.ONE_TO_MANY
        many, one = (rhs, lhs) if swapped else (lhs, rhs)
        sig_m, sig_o, keys = signature_ids(many.labels, one.labels, matching)
        n_sigs = len(keys)
        # Upstream short-circuits each step where a side is empty (no fill to stand in for it):
        # duplicates on the "one" side are not an error at such a step.
        has_many, has_one = many.present.any(axis=0), one.present.any(axis=0)
        active = (has_many | has_one) if fills else (has_many & has_one)
        side = "left" if swapped else "right"
        one_row = _unique_one_side(one, sig_o, n_sigs, matching, side, active)
        match = np.where(many.present, one_row[sig_m], -1)  # [n_many, k]
        if fills:
            # Upstream applies the right fill to a missing "one" side and the left fill to a
            # missing "many" side, after the group_right swap (``VectorBinop``).
            many, one, match, sig_m = _with_fills(
                many, one, match, sig_m, sig_o, keys, matching.fill_lhs, matching.fill_rhs
            )
        drop = self.op in ARITHMETIC or (self.return_bool and not delayed)
        join = _Join(many, one, match, swapped, matching, drop)
        out = self._dense(join, sig_m) if join.partners_are_stable() else None
        if out is None:
            out = self._sparse(join, sig_m, n_sigs)
        if delayed:
            flags = np.full(out.n_series, self.return_bool, dtype=bool)
            out = InstantVector(out.labels, out.values, out.present, flags)
        return _pruned(out)

    def _finish(self, a: np.ndarray, b: np.ndarray, ok: np.ndarray):
        """Values and the keep mask of ``a op b`` where pairs exist (``ok``)."""
        values, keep = apply_op(self.op, a, b)
        if keep is not None:
            if self.return_bool:
                values = keep.astype(np.float64)
            else:
                ok = ok & keep
        return values, ok

    def _dense(self, j: _Join, sig_m: np.ndarray) -> InstantVector | None:
        """Fast path: every "many" series matches one fixed partner, all over the [n, k] grid.

        Returns ``None`` when an error or a label merge is possible (the sparse path decides).
        """
        rows = np.nonzero((j.match >= 0).any(axis=1))[0]
        if rows.size == 0:
            return InstantVector.empty(j.match.shape[1])
        partner = j.match[rows].max(axis=1)
        if np.unique(sig_m[rows]).size != rows.size:
            return None  # several series share a match group: the checks need the sparse path
        labels = [
            _result_labels(j.many.labels[r], j.one.labels[p], j.matching, j.drop)
            for r, p in zip(rows.tolist(), partner.tolist(), strict=True)
        ]
        if len(set(labels)) != len(labels):
            return None
        mv, ov = j.many.values[rows], j.one.values[partner]
        values, ok = self._finish(
            ov if j.swapped else mv, mv if j.swapped else ov, j.match[rows] >= 0
        )
        return InstantVector(labels, np.where(ok, values, 0.0), ok)

    def _sparse(self, j: _Join, sig_m: np.ndarray, n_sigs: int) -> InstantVector:
        """General path over the matched (series, step) points; detects every upstream error."""
        k = j.match.shape[1]
        rows, cols = np.nonzero(j.match >= 0)
        if rows.size == 0:
            return InstantVector.empty(k)
        partner = j.match[rows, cols]
        if j.matching.card == Cardinality.ONE_TO_ONE:
            _check_one_to_one(sig_m[rows], cols, n_sigs, k)
        # Result labels depend on the (many, one) series pair: compute them once per pair.
        n_one = j.one.n_series
        pairs, pair_of = np.unique(rows.astype(np.int64) * n_one + partner, return_inverse=True)
        pair_labels = [
            _result_labels(j.many.labels[p // n_one], j.one.labels[p % n_one], j.matching, j.drop)
            for p in pairs.tolist()
        ]
        out_id_of_pair, out_labels = group_ids(pair_labels)
        out_id = out_id_of_pair[pair_of]
        counts = np.zeros((len(out_labels), k), dtype=np.int64)
        np.add.at(counts, (out_id, cols), 1)
        if (counts > 1).any():
            raise ExecutionError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )
        mv, ov = j.many.values[rows, cols], j.one.values[partner, cols]
        a, b = (ov, mv) if j.swapped else (mv, ov)
        values, ok = self._finish(a, b, np.ones(rows.size, dtype=bool))
        out_values = np.zeros((len(out_labels), k), dtype=np.float64)
        out_present = np.zeros((len(out_labels), k), dtype=bool)
        out_values[out_id[ok], cols[ok]] = values[ok]
        out_present[out_id[ok], cols[ok]] = True
        return InstantVector(out_labels, out_values, out_present)


@dataclass(frozen=True)
class _Join:
    """One vector-vector match: ``match[i, t]`` is the "one" row paired with many row ``i``."""

    many: InstantVector
    one: InstantVector
    match: np.ndarray
    swapped: bool
    matching: VectorMatching
    drop: bool

    def partners_are_stable(self) -> bool:
        matched = self.match >= 0
        hi = self.match.max(axis=1)
        lo = np.where(matched, self.match, np.iinfo(np.int64).max).min(axis=1)
        return bool(np.all((hi == lo) | ~matched.any(axis=1)))


def _with_fills(many, one, match, sig_m, sig_o, keys, fill_many, fill_one):
    """Add synthetic series (labelled by the match signature) standing in for missing ones."""
    k = match.shape[1]
    n_sigs = len(keys)
    if fill_one is not None:
        # One synthetic "one" series per signature, present where a many series lacks a match.
        need = many.present & (match < 0)
        want = np.zeros((n_sigs, k), dtype=bool)
        rows, cols = np.nonzero(need)
        want[sig_m[rows], cols] = True
        base = one.n_series
        one = _append(one, list(keys), np.full((n_sigs, k), fill_one), want)
        match = np.where(need, base + sig_m[:, None], match)
    if fill_many is not None:
        matched = np.zeros((one.n_series, k), dtype=bool)
        rows, cols = np.nonzero(match >= 0)
        matched[match[rows, cols], cols] = True
        real = np.arange(one.n_series) < sig_o.shape[0]  # not the synthetic rows added above
        lonely = one.present & ~matched & real[:, None]
        lonely_rows = np.nonzero(lonely.any(axis=1))[0]
        labels = [keys[sig_o[r]] for r in lonely_rows.tolist()]
        base = many.n_series
        many = _append(many, labels, np.full((lonely_rows.size, k), fill_many), lonely[lonely_rows])
        extra = np.where(lonely[lonely_rows], lonely_rows[:, None], -1)
        match = np.concatenate([match, extra])
        sig_m = np.concatenate([sig_m, sig_o[lonely_rows]])
    return many, one, match, sig_m


def _append(vec: InstantVector, labels, values: np.ndarray, present: np.ndarray) -> InstantVector:
    return InstantVector(
        vec.labels + labels,
        np.concatenate([vec.values, values]) if vec.n_series else values,
        np.concatenate([vec.present, present]) if vec.n_series else present,
    )


def _pruned(vec: InstantVector) -> InstantVector:
    keep = vec.present.any(axis=1)
    return vec if keep.all() else vec.select(np.nonzero(keep)[0])


def _unique_one_side(
    one: InstantVector,
    sig: np.ndarray,
    n_sigs: int,
    matching: VectorMatching,
    side: str,
    active: np.ndarray,
) -> np.ndarray:
    """``[n_sigs, k]`` row of the "one" side per signature and step (-1: none).

    Two series of one signature present at an ``active`` step are an error.
    """
    k = one.n_steps
    rows, cols = np.nonzero(one.present)
    out = np.full((n_sigs, k), -1, dtype=np.int64)
    if np.unique(sig).size == sig.size:  # one series per signature: no duplicate possible
        out[sig[rows], cols] = rows
        return out
    counts = np.zeros((n_sigs, k), dtype=np.int64)
    np.add.at(counts, (sig[rows], cols), 1)
    bad = np.argwhere((counts > 1) & active[None, :])
    if bad.size:
        s, step = int(bad[0][0]), int(bad[0][1])
        dups = [i for i in np.nonzero((sig == s) & one.present[:, step])[0].tolist()][:2]
        a, b = sorted(format_labels(one.labels[i]) for i in dups)
        group = format_labels(signature(one.labels[dups[0]], matching))
        raise ExecutionError(
            f"found duplicate series for the match group {group} on the {side} hand-side of the "
            f"operation: [{a}, {b}];many-to-many matching not allowed: matching labels must be "
            "unique on one side"
        )
    out[sig[rows], cols] = rows
    return out


def _check_one_to_one(sig_rows: np.ndarray, cols: np.ndarray, n_sigs: int, k: int) -> None:
    counts = np.zeros((n_sigs, k), dtype=np.int64)
    np.add.at(counts, (sig_rows, cols), 1)
    if (counts > 1).any():
        raise ExecutionError(
            "multiple matches for labels: many-to-one matching must be explicit "
            "(group_left/group_right)"
        )


def _result_labels(many: Labels, one: Labels, matching: VectorMatching, drop: bool) -> Labels:
    """Prometheus ``resultMetric``: labels of the "many" side, adjusted by the matching."""
    out = dict(many)
    if drop:
        for name in METADATA_LABELS:
            out.pop(name, None)
    if matching.card == Cardinality.ONE_TO_ONE:
        names = set(matching.matching_labels)
        if matching.on:
            out = {k: v for k, v in out.items() if k in names}
        else:
            out = {k: v for k, v in out.items() if k not in names}
    one_map = dict(one)
    for name in matching.include:
        if one_map.get(name, ""):
            out[name] = one_map[name]
        else:
            out.pop(name, None)
    return tuple(sorted(out.items()))
