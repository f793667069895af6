"""Engines and units of work for both backends.

``create_engine(settings)`` builds an engine with the options its backend asks for
(``db/backends.py``: drivers, connection settings, how a transaction begins). A unit of
work (:func:`unit_of_work`) is one transaction that commits once or rolls back once;
requests and commands open one at their edge, core functions never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from roster.db.backends import Backend, backend_for, backend_named, outage
from roster.settings import Settings


def _backend_of(database_url: str) -> tuple[URL, Backend]:
    url = make_url(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return url, backend_named(url.get_backend_name())
    except KeyError:
        shown = url.render_as_string(hide_password=True)
        raise ValueError(f"unsupported database URL {shown}") from None


def async_url(database_url: str) -> URL:
    """The SQLAlchemy URL for the async driver of a ``sqlite:`` or ``postgresql:`` URL."""
    url, backend = _backend_of(database_url)
    return url.set(drivername=backend.driver)


def create_engine(
    settings: Settings,
    *,
    statement_timeout: float | None = None,
    custom_plans: bool = False,
    **overrides: Any,
) -> AsyncEngine:
    """An async engine for the configured database, with the backend's settings in place.

    ``statement_timeout`` (seconds) bounds each statement: the server's engine sets it
    (``ROSTER_DATABASE_STATEMENT_TIMEOUT_SECONDS``); the command line's long imports and
    migrations run without one. ``custom_plans``: every statement is planned for its
    values (the listing engine, where the backend may reuse plans).
    """
    url, backend = _backend_of(settings.database_url)
    pooled = settings.database_pooler is not None
    options = backend.engine_options(
        settings.database_pool_size, statement_timeout, pooled=pooled, custom_plans=custom_plans
    )
    engine = create_async_engine(
        url.set(drivername=backend.driver),
        # Errors never carry the values a client sent (emails, search terms) into logs.
        hide_parameters=True,
        **{**options, **overrides},
    )
    backend.prepare_engine(engine, statement_timeout, pooled=pooled)
    return engine


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine, *, write: bool) -> AsyncIterator[AsyncConnection]:
    """A writing unit of work is one transaction: committed when the block ends, rolled
    back if it raises. A reading one has nothing to commit, so its statements run in
    autocommit mode, sparing two round trips (BEGIN, COMMIT) per request; work that
    needs several reads to see one snapshot opens its own transaction. Behind a pooler
    in transaction mode that matters more: a statement outside a transaction holds a
    server connection only while it runs, where a transaction holds one from BEGIN to
    COMMIT, Python's work between its statements included.
    """
    async with engine.connect() as connection:
        backend = backend_for(connection)
        if not write:
            await connection.execution_options(**backend.read_options)
            yield connection
            return
        if backend.write_options:
            await connection.execution_options(**backend.write_options)
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
            await run_statements(connection, backend.snapshot_setup)
            yield connection
            await transaction.rollback()


async def run_statements(conn: AsyncConnection, statements: Sequence[str]) -> None:
    """Run a backend's statements of a kind (``snapshot_setup``, ``chunk_embeds_setup``)
    on ``conn``, in order."""
    for statement in statements:
        await conn.exec_driver_sql(statement)


def database_unavailable(error: BaseException) -> bool:
    """True for faults that mean the database cannot serve now (see ``backends.outage``):
    the request may succeed if retried."""
    return outage(error) is not None


def listing_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """The engine of GET /people: ``engine`` itself, or where the backend may run a
    prepared statement on a plan made for any values (PostgreSQL), one whose sessions
    plan each statement for its values, so a search runs on its own connection with no
    round trip to set that."""
    if not backend_named(engine.dialect.name).plans_reused or settings.database_pooler:
        return engine  # behind a pooler every statement is planned for its values already
    timeout = settings.database_statement_timeout_seconds
    return create_engine(settings, statement_timeout=timeout, custom_plans=True)
