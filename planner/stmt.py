"""``EvalStmt``: one query evaluation request, as Prometheus' ``parser.EvalStmt``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from promql.ast import Expr


@dataclass(frozen=True)
class Grid:
    """Evaluation timestamps ``start, start + step, ... <= end`` (ms). ``step == 0``: one point."""

    start_ms: int
    end_ms: int
    step_ms: int

    @property
    def n_steps(self) -> int:
        if self.end_ms < self.start_ms:
            return 0
        if self.step_ms <= 0:
            return 1
        return (self.end_ms - self.start_ms) // self.step_ms + 1

    @property
    def last_ms(self) -> int:
        """The last evaluated timestamp (``end`` aligned down to the step grid)."""
        if self.step_ms <= 0:
            return self.start_ms
        return self.start_ms + (self.n_steps - 1) * self.step_ms

    def times(self) -> np.ndarray:
        """The timestamps, read-only: made once per grid (every node asks for them)."""
        kept = self.__dict__.get("_times")
        if kept is None:
            if self.n_steps == 0:
                kept = np.zeros(0, dtype=np.int64)
            elif self.step_ms <= 0:
                kept = np.array([self.start_ms], dtype=np.int64)
            else:
                kept = np.arange(self.start_ms, self.last_ms + 1, self.step_ms, dtype=np.int64)
            kept.setflags(write=False)
            self.__dict__["_times"] = kept
        return kept

    def describe(self) -> str:
        return f"{self.start_ms}..{self.end_ms}"


@dataclass(frozen=True)
class EvalStmt:
    """A query over ``[start, end]`` every ``step``; an instant query has ``start == end``."""

    expr: Expr
    start_ms: int
    end_ms: int
    step_ms: int
    lookback_ms: int = 300_000

    @property
    def is_instant(self) -> bool:
        return self.start_ms == self.end_ms and self.step_ms <= 1

    @property
    def grid(self) -> Grid:
        return Grid(self.start_ms, self.end_ms, 0 if self.is_instant else self.step_ms)
