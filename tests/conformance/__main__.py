"""``python -m tests.conformance [-v] [--report FILE] [--no-extra-checks] [FILE...]``.

Prints per-file passed/failed/skipped counts per group and ends with ``N passed, M failed``.
``-v`` lists every skipped case with its reason and every failure; ``--report`` writes the same
as markdown. Exit status 1 when the core pass count is below ``baseline.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.conformance.report import format_cases, format_table, markdown_report, totals
from tests.conformance.runner import DEFAULT_DIR, RunOptions, corpus_files, run_corpus

BASELINE = Path(__file__).with_name("baseline.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance")
    parser.add_argument("files", nargs="*", help="test files (default: the whole corpus)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--report", type=Path, help="write a markdown report here")
    parser.add_argument("--no-extra-checks", action="store_true")
    parser.add_argument("--slowest", type=int, default=0, help="print the N slowest cases")
    args = parser.parse_args(argv)
    files = [_resolve(f) for f in args.files] if args.files else corpus_files()
    started = time.perf_counter()
    outcomes = run_corpus(files, RunOptions(extra_checks=not args.no_extra_checks))
    elapsed = time.perf_counter() - started
    if args.verbose:
        print("== skipped ==")
        print(format_cases(outcomes, "skipped"))
        print("== failed ==")
        print(format_cases(outcomes, "failed"))
        print()
    if args.slowest:
        for o in sorted(outcomes, key=lambda o: -o.seconds)[: args.slowest]:
            print(f"{o.seconds:8.3f}s {o.file}:{o.line} {o.expr}")
    if args.report:
        args.report.write_text(markdown_report(outcomes), encoding="utf-8")
    print(f"({elapsed:.1f} s)")
    print(format_table(outcomes))
    if args.files or not BASELINE.exists():
        return 0
    baseline = json.loads(BASELINE.read_text())
    return 1 if totals(outcomes)["core"]["passed"] < baseline["core_passed"] else 0


def _resolve(name: str) -> Path:
    path = Path(name)
    return path if path.exists() else DEFAULT_DIR / name


if __name__ == "__main__":
    sys.exit(main())
