"""The ``tidemark`` command line: one small module per subcommand under ``server/commands/``.

Each module in ``COMMANDS`` exposes ``register(subparsers)``, which adds its parser and sets
``func`` (``argparse.Namespace -> int`` exit code). Modules that do not exist yet are skipped, so
``query``, ``explain`` and ``advise`` appear once their owners add them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: tuple[str, ...] = (
    "server.commands.serve",
    "server.commands.fmt",
    "server.commands.query",
    "server.commands.explain",
    "server.commands.advise",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidemark", description="Prometheus-compatible PromQL engine with sketch acceleration"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
