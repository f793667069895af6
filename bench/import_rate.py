"""Time ``roster import`` against a fresh database: rows per second, first run and re-run.

    python -m bench.import_rate --rows 200000            # PostgreSQL at 127.0.0.1:5432
    python -m bench.import_rate --rows 20000 --sqlite    # a SQLite file in a temp dir
    python -m bench.import_rate --rows 100000 --compare-events   # the event log on, then off

The CSV comes from bench/data.py (cached under /tmp by row count); each run creates
its own database, migrates it and drops it (PostgreSQL) afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg

from bench.data import name_pools, people, write_csv
from roster.core import writer
from roster.core.accounts import create_account
from roster.core.importing import DEFAULT_BATCH_SIZE, ImportSummary, import_rows
from roster.db.engine import create_engine, unit_of_work
from roster.db.migrate import upgrade
from roster.settings import Settings

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ACCOUNT = "BENCH1"


def bench_csv(rows: int) -> Path:
    path = Path(tempfile.gettempdir()) / f"roster-import-{rows}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_csv(partial, people(ACCOUNT, rows, name_pools()))
        partial.rename(path)
    return path


@contextmanager
def event_log_off() -> Iterator[None]:
    """The writer appends no events (a measuring device only: Roster has no such switch)."""

    async def record_nothing(conn: object, written: object) -> None:
        return None

    kept = writer.record_changes
    writer.record_changes = record_nothing
    try:
        yield
    finally:
        writer.record_changes = kept


async def _run(url: str, path: Path, batch_size: int, rerun: bool) -> float:
    settings = Settings(_env_file=None, database_url=url)
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        async with unit_of_work(engine, write=True) as conn:
            await create_account(conn, ACCOUNT, "Bench")
        rates = []
        for label in ("first run", "re-run")[: 2 if rerun else 1]:
            started = time.perf_counter()
            summary = await import_rows(engine, settings, ACCOUNT, path, batch_size=batch_size)
            elapsed = time.perf_counter() - started
            _report(label, summary, elapsed)
            rates.append(summary.rows / elapsed)
        return rates[0]
    finally:
        await engine.dispose()


def _report(label: str, summary: ImportSummary, elapsed: float) -> None:
    print(
        f"{label}: {summary.rows} rows in {elapsed:.1f}s = {summary.rows / elapsed:,.0f} rows/s "
        f"(created {summary.created}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, failed {summary.failed})"
    )


async def _admin(statement: str) -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """The URL of a new PostgreSQL database, dropped when the block ends."""
    name = f"roster_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _with_postgres(path: Path, batch_size: int, rerun: bool) -> float:
    async with scratch_postgres() as url:
        return await _run(url, path, batch_size, rerun)


def _once(sqlite: bool, path: Path, batch_size: int, rerun: bool) -> float:
    """The first run's rate, on a new database."""
    if sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/bench.db"
            return asyncio.run(_run(url, path, batch_size, rerun))
    return asyncio.run(_with_postgres(path, batch_size, rerun))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    parser.add_argument("--rerun", action="store_true", help="import the same file twice")
    parser.add_argument(
        "--compare-events",
        action="store_true",
        help="import into two new databases, the event log on, then off; print the ratio",
    )
    args = parser.parse_args()
    path = bench_csv(args.rows)
    on = _once(args.sqlite, path, args.batch_size, args.rerun)
    if args.compare_events:
        print("the same import with the event log off:")
        with event_log_off():
            off = _once(args.sqlite, path, args.batch_size, args.rerun)
        print(f"event log on / off: {on / off:.2f}x (target: at least 0.8x)")


if __name__ == "__main__":
    main()
