"""Embedded durable store: label index, head + WAL, immutable blocks, sketch store."""
