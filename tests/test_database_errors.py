"""Which database errors mean "the database cannot serve now" (503, retry) and which
are faults of the request or of ours (500), proven with errors real databases raise.

A client told 503 retries; one told 500 does not. A syntax error, a violated constraint
or a bad value retried forever would never succeed, so none of them is ever a 503.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.db.backends import Outage, outage
from roster.db.engine import create_engine, unit_of_work
from roster.settings import Settings
from tests.factories import Client, Directory
from tests.servers import free_port


async def raised(engine: AsyncEngine, *statements: str, write: bool = False) -> BaseException:
    """The error statements raise, run in one unit of work of the app's own engine."""
    try:
        async with unit_of_work(engine, write=write) as conn:
            for statement in statements:
                await conn.execute(text(statement))
    except Exception as error:  # any error: its kind is the point
        return error
    raise AssertionError(f"{statements} raised nothing")


async def test_errors_of_the_request_or_of_ours_are_not_outages(
    directory: Directory, backend: str
) -> None:
    engine = directory.engine
    assert outage(await raised(engine, "SELEC 1")) is None  # a syntax error
    assert outage(await raised(engine, "SELECT * FROM no_such_table")) is None
    await directory.account("E1")
    duplicate = await raised(
        engine,
        "INSERT INTO accounts (id, name, created_at) VALUES ('E1', 'Again', CURRENT_TIMESTAMP)",
        write=True,
    )
    assert isinstance(duplicate, IntegrityError), duplicate
    assert outage(duplicate) is None
    if backend == "sqlite":
        # FTS5's own syntax error (a search term with an unpaired quote or a NUL once
        # reached it): it was answered "database cannot be reached".
        malformed = "SELECT rowid FROM personas_search WHERE personas_search MATCH '\"a'"
        error = await raised(engine, malformed)
        assert isinstance(error.__cause__, sqlite3.OperationalError), error
        assert outage(error) is None
    else:
        error = await raised(engine, "SELECT 'a' || chr(0)")  # PostgreSQL refuses NUL
        assert outage(error) is None
        error = await raised(engine, "SELECT 1 / 0")
        assert outage(error) is None


async def test_a_lost_connection_is_an_outage(directory: Directory, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no server to lose")
    engine = directory.engine
    error = await raised(engine, "SELECT pg_terminate_backend(pg_backend_pid())")
    assert outage(error) is Outage.UNREACHABLE


async def test_a_statement_past_its_timeout_is_an_outage(
    directory: Directory, backend: str, tmp_path: Path
) -> None:
    if backend == "postgresql":
        error = await raised(
            directory.engine, "SET LOCAL statement_timeout = 50", "SELECT pg_sleep(2)", write=True
        )
    else:
        path = tmp_path / "locked.db"
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN IMMEDIATE")
        settings = Settings(_env_file=None, database_url=f"sqlite:///{path}")
        engine = create_engine(settings, statement_timeout=0.1)
        try:
            error = await raised(engine, "INSERT INTO t VALUES (1)", write=True)
        finally:
            holder.rollback()
            holder.close()
            await engine.dispose()
    assert outage(error) is Outage.BUSY


async def test_a_deadlock_or_a_serialization_failure_is_an_outage(
    directory: Directory, backend: str
) -> None:
    """PostgreSQL breaks a deadlock by failing one of the transactions, and a serializable
    one may fail to serialize: both succeed when retried, so the client is told 503 and
    Retry-After, not 500 (they were 500 before). SQLite has one writer and neither."""
    if backend == "sqlite":
        pytest.skip("SQLite has one writer: no deadlock between two of its transactions")
    engine = directory.engine
    first_holds, second_holds = asyncio.Event(), asyncio.Event()

    async def locker(mine: int, theirs: int, held: asyncio.Event, other: asyncio.Event) -> None:
        async with unit_of_work(engine, write=True) as conn:
            await conn.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({mine})"))
            held.set()
            await other.wait()
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({theirs})"))

    results = await asyncio.gather(
        locker(71, 72, first_holds, second_holds),
        locker(72, 71, second_holds, first_holds),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1, results  # PostgreSQL chose one victim; the other committed
    assert getattr(_cause_with_sqlstate(failed[0]), "sqlstate", None) == "40P01"
    assert outage(failed[0]) is Outage.BUSY

    async with engine.connect() as reader, engine.connect() as writer:
        await reader.execute(text("BEGIN ISOLATION LEVEL SERIALIZABLE"))
        await writer.execute(text("BEGIN ISOLATION LEVEL SERIALIZABLE"))
        await reader.execute(text("SELECT count(*) FROM accounts"))
        await writer.execute(text("SELECT count(*) FROM accounts"))
        await writer.execute(
            text("INSERT INTO accounts (id, name, created_at) VALUES ('S1', 'S', now())")
        )
        await writer.execute(text("COMMIT"))

        async def second_commits() -> None:
            insert = "INSERT INTO accounts (id, name, created_at) VALUES ('S2', 'S', now())"
            await reader.execute(text(insert))
            await reader.execute(text("COMMIT"))

        with pytest.raises(DBAPIError) as refused:  # two serializable writers cannot both commit
            await second_commits()
        assert getattr(_cause_with_sqlstate(refused.value), "sqlstate", None) == "40001"
        assert outage(refused.value) is Outage.BUSY


def _cause_with_sqlstate(error: BaseException) -> BaseException | None:
    seen: BaseException | None = error
    while seen is not None and getattr(seen, "sqlstate", None) is None:
        seen = getattr(seen, "orig", None) or seen.__cause__
    return seen


async def test_a_database_that_cannot_be_reached_is_an_outage(backend: str, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "roster.db"
    if backend == "sqlite":
        # sqlite3's own error: through aiosqlite, a failed open leaves its worker thread
        # to outlive the test's event loop.
        with pytest.raises(sqlite3.OperationalError) as cannot_open:
            sqlite3.connect(missing)
        assert outage(cannot_open.value) is Outage.UNREACHABLE
        return
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    engine = create_engine(Settings(_env_file=None, database_url=nowhere))
    try:
        assert outage(await raised(engine, "SELECT 1")) is Outage.UNREACHABLE
    finally:
        await engine.dispose()


async def test_a_pool_with_no_connection_free_in_time_is_an_outage(settings: Settings) -> None:
    engine = create_engine(settings, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            error = await raised(engine, "SELECT 1")
        assert outage(error) is Outage.BUSY
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/people?accountId=E2&search=a%00b", None),
        ("POST", "/persons/find/", {"email_address": "a\u0000b@example.com"}),
        ("POST", "/persons/find/", {"first_name": "a\u0000b", "last_name": "c"}),
    ],
)
async def test_a_request_the_database_refuses_is_never_a_503(
    client: httpx.AsyncClient,
    directory: Directory,
    method: str,
    path: str,
    payload: object,
) -> None:
    """A NUL in a value reached the database (SQLite's FTS5: a syntax error; PostgreSQL:
    invalid text). Refusing it is the request's fault (400) or ours (500); a 503 would
    have clients retry forever."""
    await directory.account("E2")
    await directory.person(["E2"], first_name="Ada", last_name="Lovelace")
    caller: Client = await directory.client(["E2"])
    response = await client.request(method, path, json=payload, headers=caller.headers)
    assert response.status_code != 503, response.text
    if response.status_code >= 500:
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "internal_error"
