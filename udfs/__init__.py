"""The PromQL function registry and pure vectorized kernels (range, instant, aggregation)."""
