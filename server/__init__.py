"""HTTP server (Prometheus API, ingest endpoints) and the ``tidemark`` command line."""
