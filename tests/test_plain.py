"""Statements run on the driver's own connection (db/plain.py, ``Backend.fetch_plain``):
every value is bound and read as SQLAlchemy binds and reads it, lists included."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Select, bindparam, func, literal_column, select, text
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from roster.db.backends import Backend, Outage, backend_for, outage
from roster.db.engine import unit_of_work
from roster.db.plain import EXPANSIONS_KEPT, plain
from roster.db.tables import accounts, personas, persons
from tests.factories import Directory


def _statement(backend: Backend) -> Select[Any]:
    """Text, UUIDs, times, a flag, numbers and a list, each bound and read."""
    return (
        select(
            persons.c.id,
            persons.c.last_name,
            personas.c.id,
            personas.c.account_id,
            personas.c.created_at,
            personas.c.created_at > bindparam("since"),
            personas.c.seq,
        )
        .join_from(personas, persons, persons.c.id == personas.c.person_id)
        .where(backend.one_of(personas.c.account_id, "accounts"))
        .where(personas.c.created_at > bindparam("after"))
        .order_by(personas.c.seq)
    )


async def test_a_plain_read_answers_as_sqlalchemy_does(directory: Directory) -> None:
    for account in ("PLAIN-A", "PLAIN-B", "PLAIN-C"):
        await directory.account(account)
    for n, last in enumerate(["Lee", "Strauß", "Ødegaard", "O'Neil"]):
        await directory.person(["PLAIN-A", "PLAIN-B"] if n % 2 else ["PLAIN-C"], last_name=last)
    now = datetime.now(UTC)
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        statement = _statement(backend)
        answers = []
        lists: tuple[list[str], ...] = (
            [],
            ["PLAIN-A"],
            ["PLAIN-A", "PLAIN-C"],
            ["PLAIN-A", "PLAIN-B", "PLAIN-C"],
        )
        for accounts in lists:
            for since in (now - timedelta(hours=1), now + timedelta(hours=1)):
                values = {"accounts": accounts, "since": since, "after": now - timedelta(days=1)}
                found = await backend.fetch_plain(conn, statement, values)
                built = (await conn.execute(statement, values)).all()
                assert [tuple(row) for row in found] == [tuple(row) for row in built]
                answers.append([tuple(row) for row in found])
        assert [len(rows) for rows in answers] == [0, 0, 2, 2, 4, 4, 6, 6]
        flags = {row[5] for rows in answers for row in rows}
        assert flags == {True, False}  # read as the flags they are, not as 0 and 1


def test_only_lists_bound_for_in_are_spread_over_placeholders() -> None:
    """A parameter is bound one placeholder per item because SQLAlchemy's statement says
    so (an ``expanding`` parameter), whatever the value's type: a set for IN is spread,
    a list for any other parameter is one value; a value the statement needs is never
    quietly bound as NULL."""
    dialect = create_async_engine("sqlite+aiosqlite://").dialect
    statement = select(persons.c.id).where(
        persons.c.last_name.in_(bindparam("names", expanding=True)),
        persons.c.first_name == bindparam("first"),
    )
    kept = plain(statement, dialect, converts=True)
    sql, sent = kept.bound(kept.values({"names": {"Lee"}, "first": "Ann"}))
    assert sent == ["Lee", "Ann"]
    assert sql.count("?") == 2
    sql, sent = kept.bound(kept.values({"names": ("Lee", "Moss", "Ng"), "first": ["A"]}))
    assert sent == ["Lee", "Moss", "Ng", ["A"]]
    assert sql.count("?") == 4
    with pytest.raises(InvalidRequestError, match="'first'"):
        kept.values({"names": ["Lee"]})


def test_the_texts_kept_for_list_lengths_are_bounded() -> None:
    dialect = create_async_engine("sqlite+aiosqlite://").dialect
    statement = select(persons.c.id).where(
        persons.c.last_name.in_(bindparam("names", expanding=True))
    )
    kept = plain(statement, dialect, converts=True)
    for length in range(EXPANSIONS_KEPT * 3):
        sql, sent = kept.bound([["x"] * length])
        assert sql.count("?") == length == len(sent)
    assert len(kept.expanded) == EXPANSIONS_KEPT


def _slow(backend: Backend) -> Select[Any]:
    """A read that takes 10 s or so (SQLite: counting to thirty million)."""
    if backend.name == "postgresql":
        return select(func.pg_sleep(10))
    counted: ColumnElement[Any] = literal_column(
        "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
        " WHERE x < 30000000) SELECT count(*) FROM c)"
    )
    return select(counted)


async def _still_running(engine: AsyncEngine, backend: Backend, driver: Any) -> bool:
    """Whether the slow read still runs, waiting up to 10 s for it to stop."""
    for _ in range(100):
        if backend.name == "postgresql":
            async with unit_of_work(engine, write=False) as conn:
                running = await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE query LIKE 'SELECT pg_sleep(%' AND pid <> pg_backend_pid()"
                    )
                )
            if not running:
                return False
        elif not driver._thread.is_alive():
            return False
        await asyncio.sleep(0.1)
    return True


async def test_a_read_cancelled_midway_stops_and_its_connection_is_not_reused(
    directory: Directory,
) -> None:
    """A request cancelled (a client gone, a deadline) while its read runs on the
    driver's own connection: the read stops, and the connection is discarded, not given
    to the next request while its statement still runs."""
    await directory.account("PLAIN-CANCEL")
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        driver = (await conn.get_raw_connection()).driver_connection
        reading = asyncio.create_task(backend.fetch_plain(conn, _slow(backend), {}))
        await asyncio.sleep(0.3)
        reading.cancel()
        await asyncio.wait([reading], timeout=3)
        ended_promptly = reading.done()
        with contextlib.suppress(asyncio.CancelledError):
            await reading  # (a read left to run ends by itself in about 10 s)
        assert ended_promptly
        assert reading.cancelled()
        assert conn.invalidated
    assert not await _still_running(directory.engine, backend, driver)
    async with unit_of_work(directory.engine, write=False) as conn:
        assert (await conn.get_raw_connection()).driver_connection is not driver
        found = await backend.fetch_plain(conn, _ACCOUNT, {"id": "PLAIN-CANCEL"})
        assert [tuple(row) for row in found] == [("PLAIN-CANCEL",)]


async def test_a_sqlite_read_cancelled_before_it_starts_stops_too(directory: Directory) -> None:
    """A read cancelled while it waits behind another statement on its connection's
    thread (interrupt() then stops only the one running) does not run once it starts:
    the cancelled read ends at once, not after its own 10 s."""
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        if backend.name != "sqlite":
            pytest.skip("PostgreSQL cancels the statement on the server")
        driver: Any = (await conn.get_raw_connection()).driver_connection
        ahead = asyncio.create_task(driver.execute_fetchall(_SQLITE_SECOND))
        await asyncio.sleep(0.1)  # the thread runs the statement ahead
        reading = asyncio.create_task(backend.fetch_plain(conn, _slow(backend), {}))
        await asyncio.sleep(0.1)
        reading.cancel()
        started = time.monotonic()
        await asyncio.wait([reading], timeout=5)
        took = time.monotonic() - started
        with contextlib.suppress(asyncio.CancelledError):
            await reading  # (a read left to run ends by itself in about 10 s)
        with contextlib.suppress(sqlite3.OperationalError):  # interrupted
            await ahead
        assert took < 2, f"the cancelled read took {took:.1f} s"
        assert reading.cancelled()
        assert conn.invalidated
    assert not await _still_running(directory.engine, backend, driver)


#: About a second of SQLite's work (counting to three million).
_SQLITE_SECOND = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
    " SELECT count(*) FROM c"
)


_ACCOUNT = select(accounts.c.id).where(accounts.c.id == bindparam("id"))


async def test_a_read_on_a_closed_connection_is_an_outage_and_the_next_is_served(
    directory: Directory,
) -> None:
    """A connection the driver found closed is answered as the database being out of
    reach (503), and discarded: the next read gets a working one."""
    await directory.account("PLAIN-CLOSED")
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.close()  # type: ignore[union-attr]
        with pytest.raises(DBAPIError) as raised:
            await backend.fetch_plain(conn, _ACCOUNT, {"id": "PLAIN-CLOSED"})
        assert outage(raised.value) is Outage.UNREACHABLE
    async with unit_of_work(directory.engine, write=False) as conn:
        found = await backend.fetch_plain(conn, _ACCOUNT, {"id": "PLAIN-CLOSED"})
        assert [tuple(row) for row in found] == [("PLAIN-CLOSED",)]


async def test_a_sqlite_connection_goes_back_to_the_pool_outside_any_transaction(
    directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's pooled connections are rolled back on their return only when a
    transaction is open on them (db/backends.py): one left open is rolled back, and a
    connection closed under the pool is dropped quietly, not handed out again."""
    async with unit_of_work(directory.engine, write=False) as conn:
        if backend_for(conn).name != "sqlite":
            pytest.skip("PostgreSQL's connections are reset by SQLAlchemy's own ROLLBACK")
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.execute("BEGIN")  # type: ignore[union-attr]
        assert driver.in_transaction  # type: ignore[union-attr]
    assert not driver.in_transaction  # type: ignore[union-attr]
    await directory.account("PLAIN-RESET")
    with caplog.at_level(logging.ERROR, logger="sqlalchemy.pool"):
        async with unit_of_work(directory.engine, write=False) as conn:
            closed = (await conn.get_raw_connection()).driver_connection
            await closed.close()  # type: ignore[union-attr]
        # Every later read is served, by SQLAlchemy or on the driver, none on that one.
        for _ in range(12):
            async with unit_of_work(directory.engine, write=False) as conn:
                assert (await conn.get_raw_connection()).driver_connection is not closed
                assert await conn.scalar(_ACCOUNT, {"id": "PLAIN-RESET"}) == "PLAIN-RESET"
                found = await backend_for(conn).fetch_plain(conn, _ACCOUNT, {"id": "PLAIN-RESET"})
                assert [tuple(row) for row in found] == [("PLAIN-RESET",)]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")] == []
