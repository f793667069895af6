"""Time ``roster import`` against a fresh database: rows per second, first run and re-run.

    python -m bench.import_rate --rows 200000            # PostgreSQL at 127.0.0.1:5432
    python -m bench.import_rate --rows 20000 --sqlite    # a SQLite file in a temp dir
    python -m bench.import_rate --rows 100000 --compare-events   # the event log on, then off
    python -m bench.import_rate --rows 100000 --floor    # against COPY of the same rows

With ``--floor`` the rows Roster wrote (every table the import filled, every derived
column, the events) are then COPYed into a second new database at the same migration
(same schema and indexes, the pre-import rows copied in first, untimed), and Roster's
rate, the floor's and their ratio are printed, with the CPU each spent (the importing
process, and the PostgreSQL backends of each database, sampled while it ran). Roster
runs first, then the floor: the floor copies what Roster wrote. The floor must hold the
same rows (per table counts).

The CSV comes from bench/data.py (cached under /tmp by row count); each run creates
its own database, migrates it and drops it (PostgreSQL) afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import make_url

from bench.data import name_pools, people, write_csv
from bench.server import CpuTracker, backends_of, cpu_seconds
from roster.core import writer
from roster.core.accounts import create_account
from roster.core.importing import DEFAULT_BATCH_SIZE, ImportSummary, import_rows
from roster.db.engine import create_engine, unit_of_work
from roster.db.migrate import upgrade
from roster.db.tables import metadata
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

    async def record_nothing(
        conn: object, written: object, plan: object = None, *, alongside: Any = None
    ) -> None:
        if alongside is not None:
            await alongside

    kept = writer.record_changes
    writer.record_changes = record_nothing
    try:
        yield
    finally:
        writer.record_changes = kept


async def _run(
    url: str, path: Path, batch_size: int, rerun: bool, floor_url: str | None = None
) -> float:
    settings = Settings(_env_file=None, database_url=url)
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        async with unit_of_work(engine, write=True) as conn:
            await create_account(conn, ACCOUNT, "Bench")
        if floor_url is not None:
            return await _against_floor(engine, settings, url, floor_url, path, batch_size)
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


#: asyncpg's URL of a database SQLAlchemy names ``postgresql+asyncpg://``.
def _asyncpg_url(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


#: Every table in foreign key order (a table after those it refers to).
_TABLES = [table.name for table in metadata.sorted_tables]


async def _rows_by_table(conn: asyncpg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        name: [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{name}"')] for name in _TABLES
    }


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {name: await conn.fetchval(f'SELECT count(*) FROM "{name}"') for name in _TABLES}


async def _columns(conn: asyncpg.Connection, name: str) -> list[str]:
    statement = await conn.prepare(f'SELECT * FROM "{name}" LIMIT 0')
    return [attribute.name for attribute in statement.get_attributes()]


async def _copy(conn: asyncpg.Connection, rows: dict[str, list[tuple[object, ...]]]) -> None:
    for name, records in rows.items():
        if records:
            columns = await _columns(conn, name)
            await conn.copy_records_to_table(name, records=records, columns=columns)


async def _against_floor(
    engine: object, settings: Settings, url: str, floor_url: str, path: Path, batch_size: int
) -> float:
    """Roster's import, then COPY of exactly the rows it wrote into a database at the same
    migration; Roster's rate over the floor's."""
    floor_engine = create_engine(Settings(_env_file=None, database_url=floor_url))
    try:
        await upgrade(floor_engine)
    finally:
        await floor_engine.dispose()
    source = await asyncpg.connect(_asyncpg_url(url))
    floor = await asyncpg.connect(_asyncpg_url(floor_url))
    try:
        before = await _rows_by_table(source)
        await _copy(floor, before)  # the account and its roles: not the import's work
        started, own = time.perf_counter(), cpu_seconds(os.getpid())
        with _database_cpu(url) as roster_cpu:
            summary = await import_rows(engine, settings, ACCOUNT, path, batch_size=batch_size)  # type: ignore[arg-type]
        roster, own = time.perf_counter() - started, cpu_seconds(os.getpid()) - own
        _report("Roster", summary, roster)
        kept = {name: set(rows) for name, rows in before.items()}
        written = {
            name: [row for row in rows if row not in kept[name]]
            for name, rows in (await _rows_by_table(source)).items()
        }
        started, copying = time.perf_counter(), cpu_seconds(os.getpid())
        with _database_cpu(floor_url) as floor_cpu:
            async with floor.transaction():
                await _copy(floor, written)
        copied, copying = time.perf_counter() - started, cpu_seconds(os.getpid()) - copying
        filled = ", ".join(f"{name} {len(rows)}" for name, rows in written.items() if rows)
        print(
            f"floor: COPY of the rows Roster wrote ({filled}) in {copied:.1f}s = "
            f"{summary.rows / copied:,.0f} rows/s (file rows per second)"
        )
        ours, theirs = await _counts(source), await _counts(floor)
        if ours != theirs:
            differ = {n: (ours[n], theirs[n]) for n in _TABLES if ours[n] != theirs[n]}
            raise SystemExit(f"the floor holds other rows than Roster (Roster, floor): {differ}")
        print(
            f"CPU: Roster's import {own:.1f} s in its process, "
            f"PostgreSQL {roster_cpu.seconds:.1f} s; "
            f"the floor's COPY {copying:.1f} s in this process, "
            f"PostgreSQL {floor_cpu.seconds:.1f} s"
        )
        print(
            f"Roster / floor: {copied / roster:.2f}x (run order: Roster, then the floor; "
            "target: at least 0.75x)"
        )
        return summary.rows / roster
    finally:
        await source.close()
        await floor.close()


def _database_cpu(url: str) -> CpuTracker:
    """What PostgreSQL's backends of ``url``'s database spend while the block runs,
    sampled each second: the importer runs in this process, and the import's pooled
    connections live as long as it does."""
    database = make_url(url).database or ""
    return CpuTracker(lambda: backends_of(database), interval=1.0)


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


async def _with_postgres(path: Path, batch_size: int, rerun: bool, floor: bool) -> float:
    async with scratch_postgres() as url:
        if not floor:
            return await _run(url, path, batch_size, rerun)
        async with scratch_postgres() as floor_url:
            return await _run(url, path, batch_size, rerun, floor_url)


def _once(sqlite: bool, path: Path, batch_size: int, rerun: bool, floor: bool = False) -> float:
    """The first run's rate, on a new database."""
    if sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/bench.db"
            return asyncio.run(_run(url, path, batch_size, rerun))
    return asyncio.run(_with_postgres(path, batch_size, rerun, floor))


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
    parser.add_argument(
        "--floor",
        action="store_true",
        help="then COPY the rows Roster wrote into a new database; print the ratio",
    )
    args = parser.parse_args()
    if args.floor and (args.sqlite or args.rerun):
        parser.error("--floor is PostgreSQL's COPY, of a first run")
    path = bench_csv(args.rows)
    on = _once(args.sqlite, path, args.batch_size, args.rerun, args.floor)
    if args.compare_events:
        print("the same import with the event log off:")
        with event_log_off():
            off = _once(args.sqlite, path, args.batch_size, args.rerun)
        print(f"event log on / off: {on / off:.2f}x (target: at least 0.8x)")


if __name__ == "__main__":
    main()
