"""Streaming precompute engine: windowed sketches computed from ingested batches."""
