"""A `roster import` killed with SIGKILL half-way, then run again, ends as one clean run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench import data
from roster.db.engine import create_engine, unit_of_work
from roster.db.tables import personas, persons, roles
from roster.settings import Settings
from tests.commands import ROSTER, succeeds

pytestmark = pytest.mark.slow

ROWS = 12_000
BATCH = 500


def _query(database_url: str, statement: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = create_engine(Settings(_env_file=None, database_url=database_url))
        try:
            async with unit_of_work(engine, write=False) as conn:
                return [tuple(row) for row in await conn.execute(statement)]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def state(database_url: str) -> list[tuple[Any, ...]]:
    """Everything an import decides, without ids and timestamps."""
    return _query(
        database_url,
        select(
            persons.c.external_ref,
            persons.c.first_name,
            persons.c.last_name,
            persons.c.email_address,
            persons.c.phone_number,
            personas.c.account_id,
            personas.c.status,
            roles.c.name,
            personas.c.employee_number,
            personas.c.job_title,
            personas.c.work_number,
            personas.c.search_text,
        )
        .join(personas, personas.c.person_id == persons.c.id)
        .join(roles, roles.c.id == personas.c.role_id)
        .order_by(persons.c.external_ref, personas.c.account_id),
    )


def counts(database_url: str) -> tuple[int, int, int]:
    """(persons, personas, persons without a persona)."""
    orphan = ~select(personas.c.id).where(personas.c.person_id == persons.c.id).exists()
    [row] = _query(
        database_url,
        select(
            select(func.count()).select_from(persons).scalar_subquery(),
            select(func.count()).select_from(personas).scalar_subquery(),
            select(func.count()).select_from(persons).where(orphan).scalar_subquery(),
        ),
    )
    return row[0], row[1], row[2]


def import_file(database_url: str, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [ROSTER, "import", str(path), "--account", "CRASH", "--batch-size", str(BATCH)],
        env={**os.environ, "ROSTER_DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_killed_import_run_again_ends_as_one_clean_run(
    fresh_database: str, tmp_path: Path
) -> None:
    url = fresh_database
    source = tmp_path / "people.csv"
    data.write_csv(source, data.people("CRASH", ROWS, data.name_pools()))
    succeeds(url, "accounts", "create", "CRASH", "--name", "Crash")

    running = import_file(url, source)
    deadline = time.monotonic() + 120
    while counts(url)[0] < 3 * BATCH:
        assert running.poll() is None, "the import finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    running.wait()

    half_persons, half_personas, orphans = counts(url)
    assert 0 < half_persons < ROWS
    assert (half_personas, orphans) == (half_persons, 0)  # whole batches only

    rerun = import_file(url, source)
    assert rerun.wait(300) == 0, rerun.stderr.read() if rerun.stderr else ""
    after_rerun = state(url)
    assert counts(url) == (ROWS, ROWS, 0)

    clean_url = fresh_database  # the same database, emptied, for one clean run
    asyncio.run(_empty(clean_url))
    succeeds(clean_url, "accounts", "create", "CRASH", "--name", "Crash")
    clean = import_file(clean_url, source)
    assert clean.wait(300) == 0
    assert state(clean_url) == after_rerun


async def _empty(database_url: str) -> None:
    from tests.factories import reset_database

    engine = create_engine(Settings(_env_file=None, database_url=database_url))
    try:
        await reset_database(engine)
    finally:
        await engine.dispose()
