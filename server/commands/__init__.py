"""``tidemark`` subcommands, one module each (see ``server/cli.py``)."""
