"""Engines and units of work for both backends.

``create_engine(settings)`` is the only place that knows how a backend is
configured: drivers, SQLite pragmas, how a transaction begins. A unit of work
(:func:`unit_of_work`) is one transaction that commits once or rolls back once;
requests and commands open one at their edge, core functions never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from roster.db.backends import backend_for
from roster.settings import Settings

#: The execution option a writing unit of work sets; SQLite then takes its write
#: lock when the transaction begins instead of failing to upgrade later.
_WRITE_OPTION = "roster_write"
#: The execution option a reading unit of work sets on SQLite: no BEGIN is sent, so
#: each statement is a transaction of its own. SQLAlchemy's AUTOCOMMIT level does the
#: same on PostgreSQL; on SQLite setting it and resetting it when the connection goes
#: back to the pool cost five trips to the driver's thread a request, more than the
#: statements themselves.
_AUTOCOMMIT_OPTION = "roster_autocommit"


#: Session settings of every PostgreSQL connection (docs/operations.md). JIT compilation
#: costs tens of milliseconds a statement and pays off only for long analytic queries,
#: which Roster does not run. Parallel workers make one large count faster but cost
#: more processes and CPU in all: under concurrent requests they made the slowest
#: answers ten times slower.
SERVER_SETTINGS = {
    "application_name": "roster",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
}


def async_url(database_url: str) -> URL:
    """The SQLAlchemy URL for the async driver of a ``sqlite:`` or ``postgresql:`` URL."""
    url = make_url(database_url.replace("postgres://", "postgresql://", 1))
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return url.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database URL {url.render_as_string(hide_password=True)}")


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(settings: Settings, **overrides: Any) -> AsyncEngine:
    """An async engine for the configured database, with the backend's pragmas in place."""
    url = async_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            pool_size=settings.database_pool_size,
            connect_args={"timeout": 30},
            **overrides,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_timeout=10,
        pool_recycle=3600,
        connect_args={"timeout": 5, "server_settings": SERVER_SETTINGS},
        **overrides,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    # The driver's own transaction handling cannot do savepoints or take the write
    # lock at BEGIN; SQLAlchemy's documented recipe hands BEGIN to us instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
            "busy_timeout = 30000",
            # 8 MiB of pages per connection; the operating system caches the file for
            # all of them. Each pooled connection fills a cache of its own: with 64 MiB
            # a server's memory grew 14 to 43% over the benchmark's minute of steady
            # load (8 MiB: 1 to 8%), and it was no faster (docs/operations.md).
            "cache_size = -8192",
            "temp_store = MEMORY",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_AUTOCOMMIT_OPTION):
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION) else "BEGIN")


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """A writing unit of work is one transaction: committed when the block ends, rolled
    back if it raises. A reading one has nothing to commit, so its statements run in
    autocommit mode, sparing two round trips (BEGIN, COMMIT) per request; work that
    needs several reads to see one snapshot opens its own transaction.
    """
    async with engine.connect() as connection:
        if not write:
            await connection.execution_options(
                **{_AUTOCOMMIT_OPTION: True}
                if is_sqlite(connection)
                else {"isolation_level": "AUTOCOMMIT"}
            )
            yield connection
            return
        await connection.execution_options(**{_WRITE_OPTION: True})
        async with connection.begin():
            yield connection


@asynccontextmanager
async def read_snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction whose statements all see the same snapshot of the data
    (a count and the rows it counts agree), rolled back when the block ends.
    """
    async with engine.connect() as connection:
        backend = backend_for(connection)
        await connection.execution_options(**backend.snapshot_options)
        async with connection.begin() as transaction:
            for statement in backend.snapshot_setup:
                await connection.exec_driver_sql(statement)
            yield connection
            await transaction.rollback()


def database_unavailable(error: BaseException) -> bool:
    """True for faults that mean the database cannot be reached or cannot answer now.

    Connection refused or reset, a server starting up or shutting down, an
    exhausted pool, SQLite's busy timeout: the request may succeed if retried.
    """
    if isinstance(error, OSError | TimeoutError | sa_exc.TimeoutError):
        return True
    if isinstance(error, asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return True
    if isinstance(error, asyncpg.CannotConnectNowError | asyncpg.AdminShutdownError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return False
