"""``python -m bench.floor_ab``: only the figures issue 17 judges against the floor (finds
by email, sequential and at 16 connections; searches by full name and by fragment),
Roster and the floor interleaved, on the data of an earlier full PostgreSQL run
(``python -m bench --db postgres`` first; ``ROSTER_BENCH_DATABASE`` as for it). A few
minutes instead of a full run's fifteen, for measuring a change of the search or find
path. The requests are the full run's (the same sample, from the same seeded files).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import suite
from bench.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor_ab", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("bench/.work/postgres"))
    parser.add_argument("--no-finds", action="store_true", help="the searches only")
    args = parser.parse_args(argv)
    url = suite.reused_database("postgres", args.work, suite.database_name(False))
    scale = suite.SCALES["postgres"]
    report = suite.Report("postgres", scale)
    _, _, sample = suite.write_files(scale, args.work)
    headers = {"Authorization": f"ApiKey {suite.in_database(url, suite.make_client)}"}
    full = [f"{row['first_name']} {row['last_name']}" for row in sample]
    fragments = [f for row in sample if (f := suite._fragment(row["last_name"]))]
    finds = [suite.find_call("email_address", row["email_address"].upper()) for row in sample]
    with (
        serve(url, workers=2, log_dir=args.work) as server,
        suite.floor_of(url, args.work) as floor,
    ):
        if not args.no_finds:
            suite.measure(
                report,
                server,
                headers,
                "find by email",
                finds,
                requests=scale.sequential,
                floor=floor.at(suite.FIND_MEDIAN_RATIO),
            )
            suite.throughput(
                report,
                server,
                headers,
                "find by email, 16 connections",
                finds,
                scale.concurrent_seconds,
                None,
                floor=floor.at(suite.FIND_RATE_RATIO),
            )
        for what, terms in (("a full name", full), ("a last-name fragment", fragments)):
            suite.measure(
                report,
                server,
                headers,
                f"search, {what}",
                [suite.people_call(at_least=1, search=term) for term in terms],
                requests=scale.sequential,
                floor=floor.at(suite.SEARCH_MEDIAN_RATIO),
            )
    print(report.markdown())


if __name__ == "__main__":
    main()
