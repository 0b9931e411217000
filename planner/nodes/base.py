"""The plan-node protocol shared by every logical node.

A node is a frozen dataclass. ``INPUTS`` names the fields holding child nodes (a node, a tuple of
nodes, or ``None``); the generic helpers below use it so rules can rebuild trees without knowing
each node. ``params()`` gives the ``key=[value]`` pairs EXPLAIN prints, in a fixed order.
``execute(ex, grid)`` is the node's physical operator: it asks the executor for its inputs'
values on the grids it needs and returns its own value for ``grid``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from promql.types import ValueType

if TYPE_CHECKING:
    from planner.executor import Executor
    from planner.stmt import Grid
    from planner.values import Value


class PlanError(Exception):
    """A plan violates a node invariant (a bug in the planner or a rule, not a user error)."""


class PlanNode:
    INPUTS: ClassVar[tuple[str, ...]] = ()
    OUTPUT: ClassVar[ValueType] = ValueType.VECTOR
    # Reads ``ex.storage`` itself (not only through its inputs): ``planner.raw_step_cache``
    # needs to know every node whose answer depends on stored samples directly.
    READS_STORAGE: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def inputs(self) -> tuple[PlanNode, ...]:
        out: list[PlanNode] = []
        for field_name in self.INPUTS:
            value = getattr(self, field_name)
            if value is None:
                continue
            if isinstance(value, tuple):
                out.extend(value)
            else:
                out.append(value)
        return tuple(out)

    @property
    def output_type(self) -> ValueType:
        return self.OUTPUT

    def params(self) -> list[tuple[str, Any]]:
        return []

    def explain(self) -> str:
        parts = [f"{k}=[{_fmt(v)}]" for k, v in self.params()]
        return f"{self.name}: {', '.join(parts)}" if parts else self.name

    def check(self) -> None:
        """Raise ``PlanError`` when an invariant does not hold (inputs' types, parameters)."""

    def execute(self, ex: Executor, grid: Grid) -> Value:  # pragma: no cover - abstract
        raise NotImplementedError(self.name)

    def map_inputs(self, fn) -> PlanNode:
        """A copy with ``fn`` applied to every child (same node when nothing changed)."""
        changes: dict[str, Any] = {}
        for field_name in self.INPUTS:
            value = getattr(self, field_name)
            if value is None:
                continue
            if isinstance(value, tuple):
                new = tuple(fn(v) for v in value)
                if any(a is not b for a, b in zip(new, value, strict=True)):
                    changes[field_name] = new
            else:
                new = fn(value)
                if new is not value:
                    changes[field_name] = new
        if not changes:
            return self
        # A shallow copy with the new children: ``dataclasses.replace`` re-runs ``__init__``
        # over every field (~4 µs a node, and plans are rebuilt by every rule on every query).
        # Nodes have no ``__post_init__`` or cached derived state for this to skip.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__, **changes)
        return clone


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value) if value == value else "NaN"
    return str(value)


def require_type(node: PlanNode, child: PlanNode, *allowed: ValueType) -> None:
    if child.output_type not in allowed:
        raise PlanError(
            f"{node.name}: input {child.name} yields {child.output_type}, expected {allowed}"
        )


def walk(node: PlanNode):
    """Pre-order traversal of a plan."""
    yield node
    for child in node.inputs:
        yield from walk(child)


def transform_up(node: PlanNode, fn) -> PlanNode:
    """Rebuild bottom-up: children first, then ``fn`` on the rebuilt node."""
    return fn(node.map_inputs(lambda c: transform_up(c, fn)))
