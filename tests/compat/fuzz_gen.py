"""A seeded, typed random PromQL generator over the compat data set (``dataset.py``).

Every expression it makes is valid in Prometheus 2.42 and means the same there as in
Prometheus 3 on that data set. What it avoids, and why (each a 2.42 -> 3.x change, not a bug):

- Samples on window boundaries (2.x closes range and lookback windows on the left, 3.x opens
  them): ranges, offsets and subquery steps are whole seconds, ``@`` times end in ``.250`` like
  every query time, and a subquery inside a subquery has a step dividing the outer one and a
  range (plus offset) that is no multiple of its step, so its window edges miss its own
  evaluation grid (``nested_subquery``).
- ``rate``/``increase`` windows that start long before a series' first sample (3.x caps the
  extrapolation at the counter's zero point in a different order): they only read series without
  gaps or stale markers, or subqueries of such series that never drop a step, and the total
  look-back of any path (ranges + offsets + subquery ranges) stays within 25 minutes, so from
  minute 45 on every window starts after the data does.
- Functions added or renamed after 2.42 (``holt_winters``, ``sort_by_label``, ``limitk``,
  ``mad_over_time``, ``info``, histogram functions, ...) and UTF-8 label names.
- ``atan2`` keeps the metric name in 2.x and drops it in 3.x: it only appears under an
  aggregation that drops the name anyway.
- ``topk``/``bottomk`` pick arbitrarily among equal values: their argument comes from a pool of
  continuously valued series that has no ties.
- ``stddev``/``stdvar`` of a lone NaN or Inf: 0 in 2.42, NaN in 3.x. They only aggregate finite
  series.
- Kahan summation and means (``KAHAN``): 2.42's compensated increment turns an infinite sum into
  NaN where 3.x keeps the infinity, 2.42 averages incrementally where 3.x sums and divides, and
  2.42's ``sum`` does not compensate. These functions only read expressions that cannot produce
  infinities, NaN or huge values (``_may_be_extreme``).
- rounded means: the two mean algorithms also differ in the last bit on ordinary data (3.x gets
  an integer mean exactly, 2.42 may give 5571.000000000001), which ``ceil``/``floor``/``round``
  and ``count_values`` labels turn into a whole unit. They never take an ``avg`` expression.
- varying parameters: a range query's ``topk(scalar(...), v)``/``quantile(scalar(...), v)``
  uses the first step's parameter at every step in 2.42 (prometheus#15971, fixed in 3.x by
  evaluating it per step), and a step-invariant (``@``-pinned) computed parameter is NaN after
  the first step in 2.42. Computed parameters here are unpinned but constant in value
  (``scalar(count(node_load) or vector(6))``).
- ``predict_linear(v[r] @ t, ...)`` in a range query: 2.42 answers at the first step only, 3.x
  reuses the pinned window at every step (intercept at each step's time). No ``@`` there.

Not semantic differences, but Go-runtime ones, also kept out:

- Date functions of NaN, +-Inf or values beyond int64: Go's ``int64(f)`` conversion is
  architecture-specific (amd64 gives MinInt64) and the date then depends on the Go version's
  calendar code. Their arguments are sample timestamps or finite series.
- ``count_values`` labels print values bit-exactly, so the last-ulp differences between Go's
  ``math.Exp``/``math.Pow`` and libm show there: its argument is a selector or a rounded,
  bounded expression.
- ulp: ``sin``/``cos``/``tan`` of huge computed values (``x ^ y``, ``sinh(40)``) turn a last-ulp
  difference of their argument into a different result: they take data-like arguments only.
  So does ``x ^ y`` of two vectors with extreme values (the exponent multiplies the relative
  error of the base).

- amd64 exp: Go's assembly ``math.Exp`` on amd64 overflows to +Inf from x > 709.436 (where
  x*log2(e) rounds to 1024), libm (and Go's pure-Go version on arm64) only from 709.78.
  ``exp``/``sinh``/``cosh`` take data-like arguments far from there.

Upstream quirks shared by 2.42 and 3.x, kept out rather than copied:

- beyond the last step: a subquery inside a subquery is evaluated up to the outer query's
  unaligned end time, past the last step it contributes to, so an error that only occurs there
  (``topk`` with a NaN parameter once ``build_info`` has ended) fails the query; Tidemark
  evaluates the steps that are used. Computed ``topk`` parameters here are never NaN.
- empty subquery: a subquery whose range holds none of its step's multiples still evaluates a
  step-invariant inner expression once (at the first multiple after the range), so an error
  there (duplicate label sets) fails the query; Tidemark evaluates nothing. Subquery ranges here
  are at least one step long.

- ``timestamp(v @ t offset o)`` ignores ``o`` (the special path for ``timestamp`` of a selector
  overwrites the offset with ``step - t``), and with ``o > 0`` finds nothing because the series
  were selected with the offset applied. Tidemark applies the offset; ``timestamp()`` of an
  ``@`` selector has no ``offset`` here.
- nested offset: in ``f((g((v @ t)[r2:s2] offset -1m))[r1:s1])`` 2.42 reads ``v`` at ``t - 1m``
  (its ``@`` offset arithmetic subtracts the enclosing subqueries' offsets, and gets a negative
  one wrong; positive offsets and one level of subquery are right). 3.x has the same
  ``setOffsetForAtModifier``. Tidemark reads ``v`` at ``t``; nested subqueries here have no
  negative offset.
- first step: ``quantile(scalar(...), v @ t)`` in a range query uses the parameter of the first
  step at every step: upstream's step-invariance pass looks at the aggregated expression only,
  so the whole aggregation is evaluated once (the remains of prometheus#15971, whose fix made
  varying parameters work everywhere else). Tidemark uses each step's parameter; a computed
  parameter never meets an ``@`` argument here.
"""

from __future__ import annotations

import random
from dataclasses import replace

from tests.compat.fuzz_vocab import (
    AGGS,
    ANY_RANGE,
    ARITH,
    AT_TIMES,
    COMPARE,
    COUNTER_RANGE,
    DATE,
    KAHAN,
    LABELS,
    MATH,
    METRICS,
    NAME_REGEXES,
    OFFSETS_S,
    OVER_TIME,
    RANGES_S,
    REGEXES,
    SUB_STEPS_S,
    VALUES,
    Ctx,
    Node,
    dur,
    leaf,
    may_be_extreme,
    node_at,
    paths,
    replace_at,
)


class Generator:
    """``vector()``/``scalar()`` make random expressions; the same seed makes the same ones."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- helpers ------------------------------------------------------------------------------
    def pick(self, seq):  # type: ignore[no-untyped-def]
        return seq[self.rng.randrange(len(seq))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def grouping(self) -> str:
        labels = self.rng.sample((*LABELS, "__name__"), self.rng.randint(0, 2))
        kind = self.pick(("by", "without"))
        return f"{kind} ({', '.join(labels)})"

    def matching(self, allow_group: bool) -> str:
        if self.chance(0.35):
            return ""
        labels = self.rng.sample((*LABELS, "__name__"), self.rng.randint(0, 2))
        text = f"{self.pick(('on', 'ignoring'))}({', '.join(labels)})"
        if allow_group and self.chance(0.4):
            extra = self.rng.sample(LABELS, self.rng.randint(0, 1))
            text += f" {self.pick(('group_left', 'group_right'))}({', '.join(extra)})"
        return text

    # -- selectors ------------------------------------------------------------------------------
    def selector_text(self, counter_only: bool) -> str:
        names = [m for m, (_, ok) in METRICS.items() if ok or not counter_only]
        if not counter_only and self.chance(0.02):
            return self.pick(("nonexistent_metric", 'nonexistent{job="x", le=~"a.*"}'))
        if self.chance(0.1):
            regexes = [
                r
                for r, ms in NAME_REGEXES.items()
                if all(METRICS[m][1] for m in ms) or not counter_only
            ]
            matchers = [f'__name__=~"{self.pick(regexes)}"']
            labels: tuple[str, ...] = ("job", "instance")
            name = ""
        else:
            name = self.pick(names)
            labels = METRICS[name][0]
            matchers = []
        for _ in range(self.rng.choice((0, 0, 0, 1, 1, 2))):
            matchers.append(self.matcher(labels))
        if not name and not matchers:
            matchers.append('job!=""')
        return name + (f"{{{', '.join(matchers)}}}" if matchers or not name else "")

    def matcher(self, labels: tuple[str, ...]) -> str:
        """Mostly matchers that select something: the metric's labels, existing values."""
        label = self.pick(labels if self.chance(0.92) else LABELS)
        op = self.rng.choices(("=", "!=", "=~", "!~"), (4, 2, 3, 1))[0]
        if op == "=":
            values = VALUES.get(label, ("x",))
            value = self.pick(values[:-1] if label == "job" and self.chance(0.9) else values)
            value = "" if self.chance(0.05) else value
        elif op == "!=":
            value = self.pick((*VALUES.get(label, ("x",)), ""))
        else:
            value = self.pick(REGEXES.get(label, (".*",)))
        return f'{label}{op}"{value}"'

    def modifiers(self, ctx: Ctx, used_s: int, allow_at: bool = True) -> tuple[str, int]:
        """Optional ``offset``/``@``; returns the text and the look-back it adds."""
        at, offset, back = "", "", 0
        if allow_at and self.chance(0.12):
            at = f" @ {self.pick(AT_TIMES)}"
        if self.chance(0.2):
            off = self.pick([o for o in OFFSETS_S if o + used_s <= ctx.back_s])
            offset = f" offset {dur(off)}"
            back = max(off, 0)
        return (offset + at if self.chance(0.3) else at + offset), back

    def selector(self, ctx: Ctx, counter_only: bool = False) -> Node:
        mods, _ = self.modifiers(ctx, 0)
        return leaf("vector", self.selector_text(counter_only) + mods)

    def timestamp_selector(self, ctx: Ctx) -> Node:
        """A selector for ``timestamp()``: with ``@``, no ``offset`` (an upstream bug, below)."""
        mods, _ = self.modifiers(ctx, 0)
        if "@" in mods:
            mods = " @" + mods.split(" @")[1].split(" offset ")[0]
        return leaf("vector", self.selector_text(False) + mods)

    def matrix(self, ctx: Ctx, counter_only: bool, allow_at: bool = True) -> Node:
        """A range vector: a selector with a range, or (outside subqueries) a subquery."""
        if ctx.depth >= 1 and self.chance(0.3):
            if not ctx.in_subquery:
                return self.subquery(ctx, counter_only, allow_at)
            if not counter_only and ctx.outer_step:
                return self.nested_subquery(ctx)
        rng_s = self.pick([r for r in RANGES_S if r <= ctx.back_s])
        sel = self.selector_text(counter_only)
        mods, _ = self.modifiers(ctx, rng_s, allow_at)
        return leaf("matrix", f"{sel}[{dur(rng_s)}]{mods}")

    def subquery(self, ctx: Ctx, counter_only: bool, allow_at: bool = True) -> Node:
        rng_s = self.pick([r for r in RANGES_S if 60 <= r <= ctx.back_s - 120] or [60])
        # At least one inner step: see "empty subquery" in the module docstring.
        step = self.pick([s for s in SUB_STEPS_S if (s or 60) <= rng_s])
        inner_ctx = Ctx(ctx.depth - 1, ctx.back_s - rng_s, True, counter_only, step or 60)
        inner = self.vector(inner_ctx)
        step_text = dur(step) if step else ""
        mods, _ = self.modifiers(replace(ctx, back_s=0), 0, allow_at)
        return Node("matrix", ("(", 0, f")[{dur(rng_s)}:{step_text}]{mods}"), (inner,))

    def nested_subquery(self, ctx: Ctx) -> Node:
        """A subquery inside a subquery, its window edges off its own evaluation grid.

        The outer subquery evaluates this at multiples of its step ``s1``; choosing ``s2``
        dividing ``s1`` and ``(range + offset) % s2 != 0`` keeps the window's left edge off
        the inner grid (multiples of ``s2``), where 2.x and 3.x would differ.
        """
        s1 = ctx.outer_step
        step = self.pick([s for s in (None, 15, 30, 47, 60, 120) if s1 % (s or 60) == 0] or [s1])
        s2 = step or 60
        off = self.pick((0, 0, 30, 17))  # not negative: see "nested offset" above
        ranges = [r for r in (50, 70, 100, 130, 250, 310, 45, 90, 120) if (r + off) % s2]
        ranges = [r for r in ranges if s2 < r and r + max(off, 0) <= ctx.back_s - 60]
        if not ranges:
            return self.matrix(replace(ctx, depth=1), False)
        rng_s = self.pick(ranges)
        back = ctx.back_s - rng_s - max(off, 0)
        inner = self.vector(Ctx(ctx.depth - 1, back, True, False, s2))
        mods = f" offset {dur(off)}" if off else ""
        step_text = dur(step) if step else ""
        return Node("matrix", ("(", 0, f")[{dur(rng_s)}:{step_text}]{mods}"), (inner,))

    # -- vectors ------------------------------------------------------------------------------
    def vector(self, ctx: Ctx) -> Node:
        if ctx.smooth:
            return self.smooth_vector(ctx)
        if ctx.depth <= 0 or self.chance(0.15):
            return self.selector(ctx)
        sub = replace(ctx, depth=ctx.depth - 1)
        kinds = (
            (self.range_call, 5),
            (self.math_call, 3),
            (self.param_call, 2),
            (self.label_call, 2),
            (self.date_call, 1),
            (self.misc_call, 2),
            (self.aggregation, 5),
            (self.param_aggregation, 3),
            (self.binary_vv, 4),
            (self.binary_vs, 3),
            (self.set_op, 2),
            (self.histogram, 1),
        )
        make = self.rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        return make(sub)

    def smooth_vector(self, ctx: Ctx) -> Node:
        """Series that are present at every step of a subquery: safe under ``rate``."""
        sel = leaf("vector", self.selector_text(True))
        if ctx.depth <= 0 or self.chance(0.3):
            return sel
        choice = self.rng.randrange(3)
        if choice == 0:
            return Node("vector", (f"sum {self.grouping()} (", 0, ")"), (sel,))
        if choice == 1:
            rng_s = self.pick([r for r in RANGES_S if r <= ctx.back_s])
            text = f"{self.pick(COUNTER_RANGE)}({self.selector_text(True)}[{dur(rng_s)}])"
            return leaf("vector", text)
        return Node("vector", ("(", 0, f" * {self.rng.randint(1, 5)})"), (sel,))

    def range_call(self, ctx: Ctx) -> Node:
        r = self.rng.random()
        if r < 0.3:
            return Node(
                "vector", (f"{self.pick(COUNTER_RANGE)}(", 0, ")"), (self.matrix(ctx, True),)
            )
        if r < 0.55:
            fn = self.pick(ANY_RANGE)
            return Node("vector", (f"{fn}(", 0, ")"), (self.calm_matrix(ctx, fn),))
        if r < 0.85:
            fn = self.pick(OVER_TIME)
            return Node("vector", (f"{fn}(", 0, ")"), (self.calm_matrix(ctx, fn),))
        if r < 0.93:
            phi = self.pick(("0", "0.1", "0.5", "0.9", "1", "-1", "2"))
            return Node(
                "vector", (f"quantile_over_time({phi}, ", 0, ")"), (self.matrix(ctx, False),)
            )
        if r < 0.97:
            secs = self.pick(("600", "-120", "0", "3600"))
            # 2.42 answers an ``@`` window inside predict_linear at the first step of a range
            # query only; 3.x reuses the window at every step.
            m = self.calm_matrix(ctx, "predict_linear", allow_at=False)
            return Node("vector", ("predict_linear(", 0, f", {secs})"), (m,))
        return Node("vector", ("absent_over_time(", 0, ")"), (self.matrix(ctx, False),))

    def math_call(self, ctx: Ctx) -> Node:
        fn = self.pick([*MATH, "-", "timestamp"])
        if fn == "-":
            return Node("vector", ("-", 0), (self.vector(ctx),))
        if fn == "timestamp" and self.chance(0.7):
            arg = self.timestamp_selector(ctx)
        elif fn in ("sin", "cos", "tan"):
            arg = self.tie_free(ctx)  # see "ulp" in the module docstring
        elif fn in ("exp", "sinh", "cosh"):
            arg = self.tie_free(ctx)  # see "amd64 exp" in the module docstring
        else:
            arg = self.vector(ctx)
        if fn in ("ceil", "floor") and "avg" in arg.render():
            arg = self.selector(ctx)  # see "rounded means" in the module docstring
        return Node("vector", (f"{fn}(", 0, ")"), (arg,))

    def param_call(self, ctx: Ctx) -> Node:
        fn = self.pick(("round", "round1", "clamp", "clamp_min", "clamp_max"))
        v = self.vector(ctx)
        if fn.startswith("round") and "avg" in v.render():
            v = self.selector(ctx)  # see "rounded means" in the module docstring
        if fn == "round1":
            return Node("vector", ("round(", 0, ")"), (v,))
        if fn == "clamp":
            lo, hi = sorted(self.rng.sample((-1, -0.5, 0, 0.5, 2, 41, 150), 2))
            if self.chance(0.15):
                lo, hi = hi, lo  # min > max: empty in both
            return Node("vector", ("clamp(", 0, f", {lo}, {hi})"), (v,))
        return Node("vector", (f"{fn}(", 0, ", ", 1, ")"), (v, self.scalar(ctx)))

    def label_call(self, ctx: Ctx) -> Node:
        v = self.vector(ctx)
        if self.chance(0.6):
            dst = self.pick(("host", "job", "instance", "x", "code", "__name__"))
            repl = self.pick(("$1", "${1}xx", "", "v-$1", "$2", "$0", "$1x", "$$", "$name", "$10"))
            src = self.pick((*LABELS, "__name__", "nope"))
            regex = self.pick(
                (
                    "(.*)",
                    "(.).*",
                    "a(.*)",
                    ".+",
                    "([0-9])",
                    "(.*)_(.*)",
                    "",
                    "(?P<name>.+)",
                    "(a)(p)(i)",
                    "(?i)(API)",
                    "\\\\d+",
                    "[[:alpha:]](.*)",
                )
            )
            text = f', "{dst}", "{repl}", "{src}", "{regex}")'
            return Node("vector", ("label_replace(", 0, text), (v,))
        dst = self.pick(("all", "job", "x"))
        srcs = self.rng.sample((*LABELS, "__name__"), self.rng.randint(0, 3))
        sep = self.pick(("-", "", "/"))
        text = ", ".join([f'"{dst}"', f'"{sep}"'] + [f'"{s}"' for s in srcs])
        return Node("vector", ("label_join(", 0, f", {text})"), (v,))

    def date_call(self, ctx: Ctx) -> Node:
        fn = self.pick(DATE)
        if self.chance(0.5):
            return Node("vector", (f"{fn}(timestamp(", 0, "))"), (self.timestamp_selector(ctx),))
        arg = self.selector(ctx) if self.chance(0.5) else self.tie_free(ctx)
        if "odd_values" in arg.render():
            arg = self.tie_free(ctx)  # NaN and Inf: see "Date functions" above
        return Node("vector", (f"{fn}(", 0, ")"), (arg,))

    def misc_call(self, ctx: Ctx) -> Node:
        r = self.rng.random()
        if r < 0.3:
            return Node("vector", (self.pick(("sort(", "sort_desc(")), 0, ")"), (self.vector(ctx),))
        if r < 0.55:
            return Node("vector", ("absent(", 0, ")"), (self.vector(ctx),))
        if r < 0.8:
            return Node("vector", ("vector(", 0, ")"), (self.scalar(ctx),))
        return Node("vector", ("(", 0, ")"), (self.vector(ctx),))

    def aggregation(self, ctx: Ctx) -> Node:
        op = self.pick(AGGS)
        g = self.grouping() if self.chance(0.75) else ""
        # A lone NaN or Inf has stdvar 0 in 2.42 and NaN in 3.x: feed finite values only.
        v = self.tie_free(ctx) if op in ("stddev", "stdvar") else self.vector(ctx)
        if op in KAHAN and may_be_extreme(v.render()):
            v = self.tie_free(ctx)
        if g and self.chance(0.5):
            return Node("vector", (f"{op} {g} (", 0, ")"), (v,))
        return Node("vector", (f"{op}(", 0, f"){' ' + g if g else ''}"), (v,))

    def calm_matrix(self, ctx: Ctx, fn: str, allow_at: bool = True) -> Node:
        """A range vector for ``fn``; for the Kahan-summing functions one without extremes."""
        m = self.matrix(ctx, False, allow_at)
        for _ in range(5):
            if fn not in KAHAN or not may_be_extreme(m.render()):
                return m
            m = self.matrix(ctx, False, allow_at)
        return leaf("matrix", "node_load[5m]")

    def tie_free(self, ctx: Ctx) -> Node:
        """A vector with distinct, non-NaN values at every step (for ``topk``/``bottomk``)."""
        r = self.rng.random()
        name = self.pick(("node_load", "node_temperature_celsius"))
        if r < 0.4:
            return leaf("vector", name)
        if r < 0.7:
            rng_s = self.pick([x for x in RANGES_S if x >= 60 and x <= ctx.back_s])
            return leaf("vector", f"rate(http_requests_total[{dur(rng_s)}])")
        if r < 0.85:
            return leaf("vector", f"avg_over_time({name}[5m])")
        return leaf("vector", f"{name} * {self.pick(('2', '-1', '0.5'))}")

    def param_aggregation(self, ctx: Ctx) -> Node:
        g = self.grouping() if self.chance(0.6) else ""
        r = self.rng.random()
        if r < 0.35:
            op, v = self.pick(("topk", "bottomk")), self.tie_free(ctx)
            # Constant in time: see "varying parameters" above.
            param = self.param(("1", "2", "3", "0"), "scalar(count(node_load) or vector(6)) / 3")
        elif r < 0.7:
            op, v = "quantile", self.vector(ctx)
            phis = ("0", "0.25", "0.5", "0.9", "1", "1.5", "-0.5")
            param = self.param(phis, "scalar(count(node_load) or vector(6)) / 10")
        else:
            op = "count_values"
            param = leaf("string", f'"{self.pick(("value", "job", "v"))}"')
            # Labels carry values bit-exactly: keep Go-vs-libm last-digit differences of
            # exp/pow/trig results out of them by rounding a bounded value.
            v = self.selector(ctx)
            if self.chance(0.6):
                inner = self.vector(ctx)
                inner = self.selector(ctx) if "avg" in inner.render() else inner
                v = Node("vector", ("round(clamp(", 0, ", -10000, 10000))"), (inner,))
        if "(" in param.render() and "@" in v.render():
            param = leaf("scalar", "1")  # see "first step" in the module docstring
        return Node("vector", (f"{op} {g} (", 0, ", ", 1, ")"), (param, v))

    def param(self, literals: tuple[str, ...], expression: str) -> Node:
        """An aggregation parameter: mostly a literal, sometimes a computed scalar."""
        if self.chance(0.15):
            return leaf("scalar", expression)
        return leaf("scalar", self.pick(literals))

    def binary_vv(self, ctx: Ctx) -> Node:
        if self.chance(0.08):
            g = self.pick(("by (job)", "by (job, instance)", "without (instance)"))
            return Node(
                "vector", (f"sum {g} (", 0, " atan2 ", 1, ")"), (self.vector(ctx), self.vector(ctx))
            )
        op = self.pick(ARITH + COMPARE)
        if op in COMPARE and self.chance(0.4):
            op += " bool"
        m = self.matching(allow_group=True)
        lhs, rhs = self.vector(ctx), self.vector(ctx)
        if op == "%" and "avg" in lhs.render() + rhs.render():
            op = "-"  # see "rounded means" above
        if op == "^" and may_be_extreme(lhs.render() + rhs.render()):
            lhs, rhs = self.tie_free(ctx), self.tie_free(ctx)  # see "ulp" above
        return Node("vector", ("(", 0, f" {op} {m} ", 1, ")"), (lhs, rhs))

    def binary_vs(self, ctx: Ctx) -> Node:
        op = self.pick(ARITH + COMPARE)
        # See "rounded means" above: % wraps a last-bit difference of a mean into a whole unit.
        if op in COMPARE and self.chance(0.4):
            op += " bool"
        v, s = self.vector(ctx), self.scalar(ctx)
        if op == "%" and "avg" in v.render() + s.render():
            op = "-"
        if self.chance(0.5):
            return Node("vector", ("(", 0, f" {op} ", 1, ")"), (v, s))
        return Node("vector", ("(", 1, f" {op} ", 0, ")"), (v, s))

    def set_op(self, ctx: Ctx) -> Node:
        op = self.pick(("and", "or", "unless"))
        m = self.matching(allow_group=False)
        return Node("vector", ("(", 0, f" {op} {m} ", 1, ")"), (self.vector(ctx), self.vector(ctx)))

    def histogram(self, ctx: Ctx) -> Node:
        phi = self.pick(("0", "0.5", "0.9", "0.99", "1", "-1", "1.5"))
        rng_s = self.pick([r for r in RANGES_S if r >= 60 and r <= ctx.back_s])
        sel = (
            self.selector_text(True) if self.chance(0.2) else "http_request_duration_seconds_bucket"
        )
        inner = f"rate({sel}[{dur(rng_s)}])"
        if self.chance(0.5):
            inner = f"sum by (le{self.pick(('', ', job'))}) ({inner})"
        elif self.chance(0.3):
            inner = sel
        return leaf("vector", f"histogram_quantile({phi}, {inner})")

    # -- scalars ------------------------------------------------------------------------------
    def scalar(self, ctx: Ctx) -> Node:
        if ctx.depth <= 0 or self.chance(0.55):
            return leaf(
                "scalar", self.pick(("1", "2", "0", "-1", "0.5", "10", "3.7", "NaN", "Inf"))
            )
        sub = replace(ctx, depth=ctx.depth - 1)
        r = self.rng.random()
        if r < 0.35:
            return Node("scalar", ("scalar(", 0, ")"), (self.vector(sub),))
        if r < 0.55:
            return leaf(
                "scalar", self.pick(("time()", "pi()", "hour()", "minute()", "day_of_week()"))
            )
        op = self.pick(ARITH + COMPARE)
        if op in COMPARE:
            op += " bool"
        return Node("scalar", ("(", 0, f" {op} ", 1, ")"), (self.scalar(sub), self.scalar(sub)))

    def expression(self, max_depth: int = 5) -> Node:
        ctx = Ctx(depth=self.rng.randint(1, max_depth), back_s=25 * 60)
        r = self.rng.random()
        if r < 0.03:
            return self.absent_of_nothing()
        if r < 0.06:
            return self.nested_shape()
        node = self.scalar(ctx) if r < 0.1 else self.vector(ctx)
        return self.mutate(node) if self.chance(0.08) else node

    def nested_shape(self) -> Node:
        """``f((g((v)[r2:s2]))[r1:s1])``: two levels of subqueries, more often than by chance."""
        step = self.pick((None, 60, 120, 30))
        r1 = self.pick((300, 600))
        nested = self.nested_subquery(Ctx(2, 25 * 60 - r1, True, False, step or 60))
        calm = not may_be_extreme(nested.render())
        fns = [f for f in (*OVER_TIME, *ANY_RANGE) if calm or f not in KAHAN]
        inner = Node("vector", (f"{self.pick(fns)}(", 0, ")"), (nested,))
        sub = Node("matrix", ("(", 0, f")[{dur(r1)}:{dur(step) if step else ''}]"), (inner,))
        # A rate-like inner function of calm values can still be huge (idelta of 1e308s).
        outer = [f for f in OVER_TIME if f not in KAHAN]
        return Node("vector", (f"{self.pick(outer)}(", 0, ")"), (sub,))

    def absent_of_nothing(self) -> Node:
        """``absent`` of a selector that matches nothing: its labels come from the matchers."""
        matchers = [
            f'{self.pick(("job", "x", "le"))}{self.pick(("=", "=", "=~", "!="))}"{self.pick(("a", "b", ".*"))}"'
            for _ in range(self.rng.randint(0, 3))
        ]
        sel = f"nonexistent{{{', '.join(matchers)}}}" if matchers else "nonexistent"
        if self.chance(0.3):
            return leaf("vector", f"absent_over_time({sel}[5m])")
        return leaf("vector", f"absent({sel})")

    def mutate(self, node: Node) -> Node:
        """The same expression with one sub-expression of the wrong type: a type error."""
        wrong = {
            "vector": ("1", '"text"', "node_load[5m]"),
            "scalar": ("node_load", '"text"', "node_load[1m]"),
            "matrix": ("node_load", "1", "(node_load)"),
            "string": ("1", "node_load"),
        }
        # Never a string query: 2.42 fails on a parenthesized string literal with an internal
        # error (its step-invariance pass wraps it; 3.x answers the string).
        spots = paths(node)[1:]
        if not spots:
            return node
        path = spots[self.rng.randrange(len(spots))]
        target = node_at(node, path)
        mutated = replace_at(node, path, leaf(target.typ, self.pick(wrong[target.typ])))
        return node if mutated.render().strip("()").startswith('"') else mutated
