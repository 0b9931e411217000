"""Accumulators (one module per family) behind the contract in ``base``."""

from __future__ import annotations

from precompute.accumulators.base import Accumulator
from precompute.accumulators.registry import BY_NAME, make_accumulator

__all__ = ["BY_NAME", "Accumulator", "make_accumulator"]
