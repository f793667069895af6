"""The directory page in Chromium for the installed roster, on a built benchmark database.

``python -m bench.page_load --database-url URL --api-key KEY`` runs the benchmark's own
browser figures (:func:`bench.browser.measure_browser`: 20 loads of the account's
directory page, then a few names typed) against ``roster serve`` of the Python that runs
it. Run it from two checkouts' virtual environments, alternately, to compare two versions
in the same minutes on a shared machine (docs/web.md, "Speed").
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.browser import measure_browser
from bench.suite import BIG, SCALES, Report, in_database
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons


def _names(database_url: str, account: str, count: int) -> list[str]:
    async def read(engine: AsyncEngine) -> list[str]:
        async with unit_of_work(engine, write=False) as conn:
            found = await conn.execute(
                select(persons.c.first_name, persons.c.last_name)
                .join(personas, personas.c.person_id == persons.c.id)
                .where(personas.c.account_id == account)
                .order_by(personas.c.id)
                .limit(count)
            )
            return [f"{first} {last}" for first, last in found]

    names: list[str] = in_database(database_url, read)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--api-key", required=True, help="a key of a client that reads it")
    parser.add_argument("--account", default=BIG)
    parser.add_argument("--names", type=int, default=5, help="names typed in the search")
    options = parser.parse_args(argv)
    names = _names(options.database_url, options.account, options.names)
    report = Report("postgres", replace(SCALES["postgres"], slow_sequential=len(names)))
    work = Path(tempfile.mkdtemp(prefix="page-load-"))  # kept: the server's log is there
    measure_browser(report, options.database_url, options.api_key, names, work, options.account)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
