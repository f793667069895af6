"""``python -m bench --db postgres|sqlite [--smoke]``: build, serve, measure, report.

Exits 1 when any answer was an error (smoke runs too), or when a full run missed a
target (unless ``--no-fail-on-miss``), with a line for each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.suite import Report, run, run_scim_only


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", choices=("postgres", "sqlite"), required=True)
    parser.add_argument("--smoke", action="store_true", help="tiny data, a few seconds per case")
    parser.add_argument("--work", type=Path, default=Path("bench/.work"), help="data files, logs")
    parser.add_argument("--reuse", action="store_true", help="measure the last run's data again")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="report files")
    parser.add_argument(
        "--no-fail-on-miss",
        action="store_true",
        help="exit 0 when a target is missed (to explore); error answers still fail the run",
    )
    parser.add_argument(
        "--only-scim",
        action="store_true",
        help="with --reuse: measure the SCIM rows alone on the last run's data",
    )
    parser.add_argument(
        "--replica-only",
        action="store_true",
        help="with --reuse: only the rows of a streaming replica and its primary",
    )
    # Sends this key instead of the bench client's: proves that errors fail the run.
    parser.add_argument("--api-key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only_scim:
        if not args.reuse:
            parser.error("--only-scim measures the data of an earlier run: give --reuse")
        report = run_scim_only(args.db, args.smoke, args.work / args.db, args.out)
        return finish(report, fail_on_miss=not args.no_fail_on_miss)
    if args.replica_only and not args.reuse:
        parser.error("--replica-only measures the last run's data: give --reuse too")
    report = run(
        args.db,
        args.smoke,
        args.work / args.db,
        args.out,
        args.reuse,
        args.api_key,
        replica_only=args.replica_only,
    )
    return finish(report, fail_on_miss=not args.no_fail_on_miss)


def finish(report: Report, *, fail_on_miss: bool) -> int:
    """Print the report and a line for each error or missed target; the exit status: 1
    when any figure had an error answer, or missed its target and ``fail_on_miss``."""
    print()
    print(f"## {report.database}: {report.scale.personas:,} personas")
    print()
    for key, value in report.facts.items():
        print(f"- {key}: {value}")
    print()
    print(report.markdown())
    print()
    problems = report.problems(fail_on_miss=fail_on_miss)
    for line in problems or report.problems(fail_on_miss=True):
        print(f"bench: {line}")
    if problems:
        print(f"bench: the run failed ({len(problems)} figures)", file=sys.stderr)
        return 1
    print("bench: every answer checked, none an error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
