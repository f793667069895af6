"""``python -m bench --db postgres|sqlite [--smoke]``: build, serve, measure, report."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.suite import run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--db", choices=("postgres", "sqlite"), required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny data, a few seconds per case")
    parser.add_argument("--work", type=Path, default=Path("bench/.work"), help="data files, logs")
    parser.add_argument("--reuse", action="store_true", help="measure the last run's data again")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="report files")
    args = parser.parse_args()
    report = run(args.db, args.smoke, args.work / args.db, args.out, args.reuse)
    print()
    print(f"## {args.db}: {report.scale.personas:,} personas")
    print()
    for key, value in report.facts.items():
        print(f"- {key}: {value}")
    print()
    print(report.markdown())
    failed = [f.what for f in report.figures if f.met is False]
    if failed and not args.smoke:
        print(f"\nMissed targets: {', '.join(failed)}")


if __name__ == "__main__":
    main()
