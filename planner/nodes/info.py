"""``InfoJoin``: experimental ``info(v, {data label matchers})`` (Prometheus ``promql/info.go``).

Each series of ``v`` gains the data labels of the info series (``target_info`` by default, or the
``*_info`` metrics the selector names) that share its identifying labels (``instance``, ``job``),
as of each step (the newest info sample wins). Series that are themselves info metrics pass
through. A series without a matching info series is dropped only when a data matcher rejects
the empty value. Label work is per series and per distinct combination of chosen info series,
never per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import re2

from planner.labels import format_labels, group_ids, merge_same_labels
from planner.nodes.base import PlanNode, require_type
from planner.values import InstantVector
from promql.errors import ExecutionError
from promql.types import Matcher, MatchType, ValueType
from storage.model import METRIC_NAME, Labels

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid

IDENTIFYING = ("instance", "job")
TARGET_INFO = "target_info"


def matches(m: Matcher, value: str) -> bool:
    if m.type == MatchType.EQUAL:
        return value == m.value
    if m.type == MatchType.NOT_EQUAL:
        return value != m.value
    hit = re2.fullmatch("(?s:" + m.value + ")", value) is not None
    return hit if m.type == MatchType.REGEX else not hit


def effective_name_matchers(name_matchers: tuple[Matcher, ...]) -> tuple[Matcher, ...]:
    """Upstream ``effectiveInfoNameMatchers``: only negative name matchers imply ``.+_info``."""
    if any(m.type in (MatchType.EQUAL, MatchType.REGEX) for m in name_matchers):
        return name_matchers
    if name_matchers:
        return (Matcher(MatchType.REGEX, METRIC_NAME, ".+_info"), *name_matchers)
    return (Matcher(MatchType.EQUAL, METRIC_NAME, TARGET_INFO),)


@dataclass(frozen=True)
class InfoJoin(PlanNode):
    input: PlanNode
    info: PlanNode  # the info series (InstantManipulate keeping sample timestamps)
    data_matchers: tuple[Matcher, ...] = ()  # non-name matchers of the second argument
    name_matchers: tuple[Matcher, ...] = ()  # effective info-name matchers

    INPUTS = ("input", "info")

    def params(self):
        from planner.nodes.series_scan import format_matcher

        return [("data", [format_matcher(m) for m in self.data_matchers])]

    def check(self) -> None:
        require_type(self, self.input, ValueType.VECTOR)
        require_type(self, self.info, ValueType.VECTOR)

    def execute(self, ex: Executor, grid: Grid) -> InstantVector:
        base = ex.run(self.input, grid)
        assert isinstance(base, InstantVector)
        if base.n_series == 0:
            return base
        ignored = np.array(
            [
                all(matches(m, dict(ls).get(METRIC_NAME, "")) for m in self.name_matchers)
                for ls in base.labels
            ],
            dtype=bool,
        )
        info = ex.run(self.info, grid)
        assert isinstance(info, InstantVector)
        info = _relevant_info(info, base.labels, ignored)
        chosen, sig_index, names = _newest_per_signature(info)
        parts = [base.select(np.nonzero(ignored)[0])]
        for i in np.nonzero(~ignored)[0].tolist():
            parts.append(self._enrich(base, i, info, chosen, sig_index, names))
        return merge_same_labels(InstantVector.concat(parts, base.n_steps))

    def _enrich(self, base, i, info, chosen, sig_index, names) -> InstantVector:
        """Base series ``i`` with its info labels; one output series per distinct combination."""
        labels = base.labels[i]
        ident = tuple(p for p in labels if p[0] in IDENTIFYING)
        k = base.n_steps
        rows = np.full((max(len(names), 1), k), -1, dtype=np.int64)
        for j, name in enumerate(names):
            s = sig_index.get((name, ident))
            if s is not None:
                rows[j] = chosen[s]
        present = base.present[i]
        combos, inverse = np.unique(rows.T, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        out_labels, out_values, out_present = [], [], []
        for c, combo in enumerate(combos.tolist()):
            steps = present & (inverse == c)
            if not steps.any():
                continue
            new = self._labels_for(labels, [info.labels[r] for r in combo if r >= 0])
            if new is None:
                continue
            out_labels.append(new)
            out_values.append(np.where(steps, base.values[i], 0.0))
            out_present.append(steps)
        if not out_labels:
            return InstantVector.empty(k)
        drop = None if base.drop_name is None else np.full(len(out_labels), base.drop_name[i])
        return InstantVector(out_labels, np.array(out_values), np.array(out_present), drop)

    def _labels_for(self, labels: Labels, infos: list[Labels]) -> Labels | None:
        base = dict(labels)
        data_names = {m.name for m in self.data_matchers}
        added: dict[str, str] = {}
        for info_labels in infos:
            for name, value in info_labels:
                if name == METRIC_NAME or (data_names and name not in data_names):
                    continue
                if added.get(name, value) != value:
                    raise ExecutionError(f"conflicting label: {name}")
                if name not in base:
                    added[name] = value
        if not infos and not all(matches(m, "") for m in self.data_matchers):
            return None
        return tuple(sorted({**base, **added}.items()))


def _relevant_info(info: InstantVector, base: list[Labels], ignored: np.ndarray) -> InstantVector:
    """Info series whose identifying labels take values the (non-info) base series have."""
    values: dict[str, set[str]] = {}
    for ls, skip in zip(base, ignored.tolist(), strict=True):
        if skip:
            continue
        for name, value in ls:
            if name in IDENTIFYING:
                values.setdefault(name, set()).add(value)
    if not values:
        return InstantVector.empty(info.n_steps)
    keep = [
        i
        for i, ls in enumerate(info.labels)
        if all(dict(ls).get(name, "") in vals for name, vals in values.items())
    ]
    return info.select(np.array(keep, dtype=np.int64))


def _newest_per_signature(info: InstantVector):
    """Per (info name, identifying labels) and step: the info row with the newest sample."""
    k = info.n_steps
    sigs = [
        (dict(ls).get(METRIC_NAME, ""), tuple(p for p in ls if p[0] in IDENTIFYING))
        for ls in info.labels
    ]
    ids, keys = group_ids(sigs)
    chosen = np.full((len(keys), k), -1, dtype=np.int64)
    ts = info.sample_ts if info.sample_ts is not None else np.zeros((info.n_series, k), np.int64)
    for g in range(len(keys)):  # per signature, vectorized over steps
        rows = np.nonzero(ids == g)[0]
        t = np.where(info.present[rows], ts[rows], np.iinfo(np.int64).min)
        best = t.max(axis=0)
        has = info.present[rows].any(axis=0)
        ties = ((t == best[None, :]) & info.present[rows]).sum(axis=0) > 1
        if (ties & has).any():
            step = int(np.nonzero(ties & has)[0][0])
            a, b = rows[(t[:, step] == best[step]) & info.present[rows][:, step]][:2].tolist()
            raise ExecutionError(
                f"found duplicate series for info metric: existing {format_labels(info.labels[a])} "
                f"@ {int(best[step])}, new {format_labels(info.labels[b])} @ {int(best[step])}"
            )
        chosen[g] = np.where(has, rows[np.argmax(t, axis=0)], -1)
    names = sorted({name for name, _ in keys})
    return chosen, {key: g for g, key in enumerate(keys)}, names
