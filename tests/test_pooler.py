"""Roster behind PgBouncer in transaction pooling mode (ROSTER_DATABASE_POOLER): the
acceptance of both APIs through a real `roster serve`, with many more client
connections than PgBouncer's server connections, and no session state left behind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench.server import serve
from roster.db.engine import create_engine, read_snapshot, unit_of_work
from roster.settings import Settings
from tests.acceptance import make_directory, run_acceptance
from tests.commands import roster
from tests.conftest import _in_ci, emptied
from tests.servers import PGBOUNCER, ThrowawayPgBouncer, throwaway_pgbouncer

pytestmark = pytest.mark.slow

POOLED = {"ROSTER_DATABASE_POOLER": "transaction"}
NAMES = ("jit", "max_parallel_workers_per_gather", "statement_timeout")


def pgbouncer_or_skip() -> None:
    """Skips the test without PgBouncer installed; fails it under CI=true."""
    if not os.path.exists(PGBOUNCER):
        reason = f"PgBouncer is not installed ({PGBOUNCER}; apt-get install pgbouncer)"
        if _in_ci():
            pytest.fail(f"{reason} (CI=true: the pooler tests are required)")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def bouncer(postgresql_url: str) -> Iterator[ThrowawayPgBouncer]:
    pgbouncer_or_skip()
    with throwaway_pgbouncer(make_url(postgresql_url).port or 5432) as server:
        yield server


@pytest.fixture
def pooled_url(postgresql_url: str, bouncer: ThrowawayPgBouncer) -> str:
    """The suite's PostgreSQL test database, emptied, as reached through PgBouncer."""
    return bouncer.url(str(make_url(emptied(postgresql_url)).database))


def test_both_apis_pass_their_acceptance_through_pgbouncer(
    pooled_url: str, bouncer: ThrowawayPgBouncer, tmp_path: Path
) -> None:
    operator = make_directory(pooled_url, **POOLED)
    with serve(pooled_url, workers=1, log_dir=tmp_path, **POOLED) as server:
        run_acceptance(server.base_url, operator)
        log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log
    [pool] = [p for p in bouncer.show("POOLS") if p["database"] == make_url(pooled_url).database]
    assert pool["pool_mode"] == "transaction"
    # Roster's pool held up to 20 client connections; PgBouncer served them with two.
    assert int(pool["sv_active"]) + int(pool["sv_idle"]) + int(pool["sv_used"]) <= 2
    [stats] = [s for s in bouncer.show("STATS") if s["database"] == pool["database"]]
    assert int(stats["total_xact_count"]) > 100


def test_a_direct_connection_is_refused_by_pgbouncer_without_the_setting(
    pooled_url: str,
) -> None:
    """Why the setting exists: PgBouncer refuses the session settings Roster gives a
    direct connection."""
    done = roster(pooled_url, "migrate")
    assert done.returncode == 1
    assert "unsupported startup parameter" in done.stderr


async def test_settings_are_set_per_transaction_and_leave_nothing_behind(
    pooled_url: str,
) -> None:
    settings = Settings(_env_file=None, database_url=pooled_url, database_pooler="transaction")
    engine = create_engine(settings, statement_timeout=7)
    try:
        for transaction in (read_snapshot(engine), unit_of_work(engine, write=True)):
            async with transaction as conn:
                shown = [await conn.scalar(text(f"SHOW {name}")) for name in NAMES]
                assert shown == ["off", "0", "7s"]
                # Inside one transaction every statement is on one server connection.
                backend = await conn.scalar(text("SELECT pg_backend_pid()"))
                assert await conn.scalar(text("SELECT pg_backend_pid()")) == backend
    finally:
        await engine.dispose()
    # The server connections PgBouncer hands to the next client keep none of it: they
    # show the server's defaults.
    other = await asyncpg.connect(pooled_url, statement_cache_size=0)
    try:
        assert [await other.fetchval(f"SHOW {name}") for name in NAMES] == [
            await other.fetchval("SELECT reset_val FROM pg_settings WHERE name = $1", name)
            for name in NAMES
        ]
        assert await other.fetchval("SHOW statement_timeout") == "0"
        assert await other.fetchval("SHOW max_parallel_workers_per_gather") != "0"
    finally:
        await other.close()


async def concurrent_failures(settings: Settings, **overrides: Any) -> list[str]:
    """Ten connections of one engine, each running 30 units of work of two statements
    (a third of them writing) at once through PgBouncer; the errors they met."""
    engine = create_engine(settings, **overrides)
    failures: list[str] = []

    async def one_client(n: int) -> None:
        for i in range(30):
            try:
                async with unit_of_work(engine, write=i % 3 == 0) as conn:
                    await conn.execute(text("SELECT CAST(:n AS integer) + 1"), {"n": n})
                    await conn.execute(
                        text("SELECT count(*) FROM accounts WHERE id = :id"), {"id": str(i)}
                    )
            except Exception as error:  # every failure is the finding
                failures.append(str(error).splitlines()[0])

    try:
        await asyncio.gather(*(one_client(n) for n in range(10)))
    finally:
        await engine.dispose()
    return failures


async def test_no_statement_depends_on_the_server_connection_of_the_last(
    pooled_url: str,
) -> None:
    settings = Settings(_env_file=None, database_url=pooled_url, database_pooler="transaction")
    assert await concurrent_failures(settings) == []
    # The same load with asyncpg's defaults (named, cached prepared statements) fails: a
    # statement prepared on one server connection is executed on another.
    direct = {"server_settings": {"application_name": "roster"}}
    failures = await concurrent_failures(settings, connect_args=direct)
    assert failures
    assert all("prepared statement" in failure for failure in failures), failures[:3]
