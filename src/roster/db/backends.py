"""Where SQLite and PostgreSQL differ, and nowhere else.

The core asks :func:`backend_for` once and calls the answer; no other module
branches on the dialect. Search is a substring match of folded terms over
``personas.search_text`` (see core/matching.py), served by a trigram index on
each backend: pg_trgm's GIN index on PostgreSQL, an FTS5 trigram table on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import reduce
from typing import Any, Protocol

import aiosqlite
import asyncpg
from sqlalchemy import (
    Column,
    ColumnElement,
    FromClause,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    column,
    event,
    func,
    insert,
    literal,
    literal_column,
    select,
    table,
    text,
    true,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, PoolResetState
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.schema import Table

from roster.db.plain import plain, read
from roster.db.shapes import Build, shaped_sql
from roster.db.tables import personas

UpsertingInsert = postgresql.Insert | sqlite.Insert

#: Terms shorter than this have no trigram; both backends then scan the
#: (already filtered) rows instead of using the index.
TRIGRAM = 3


class Outage(enum.Enum):
    """Why the database cannot serve a request now; the request may succeed if retried."""

    #: The connection was lost, the server is shutting down or starting, or cannot be
    #: reached at all.
    UNREACHABLE = "unreachable"
    #: A statement ran (or waited for a lock) past its timeout, SQLite's write lock stayed
    #: taken past its busy timeout, or every pooled connection stayed in use.
    BUSY = "busy"


class Backend(Protocol):
    name: str
    #: SQLAlchemy's driver name for this backend's async driver.
    driver: str

    def __hash__(self) -> int: ...  # one instance per backend; statements are cached by it

    #: Execution options of a reading unit of work: its statements need no transaction.
    read_options: Mapping[str, Any]
    #: Execution options of a writing unit of work, set before its transaction begins.
    write_options: Mapping[str, Any]
    #: Statements that make a migration's transaction wait for any other migration.
    migration_lock: Sequence[str]

    #: Execution options of a read transaction whose statements all see one snapshot.
    snapshot_options: Mapping[str, Any]
    #: Statements run at the start of that transaction.
    snapshot_setup: Sequence[str]
    #: Whether embeds are written as JSON by the database (json_agg keeps its ORDER BY;
    #: SQLite's json_group_array takes no ORDER BY before 3.44).
    renders_json: bool
    #: Statements run in a snapshot once a large page's statement runs, before the
    #: embeds of its chunks are written, each by one statement for a chunk's personas
    #: (``render_embeds``): each item is then found by index, never by scanning its table.
    chunk_embeds_setup: Sequence[str]
    #: Statements that undo them once the page's rows are read.
    chunk_embeds_done: Sequence[str]

    #: Whether a prepared statement may come to run on a plan made for any values; where
    #: it may, listings have an engine of their own whose sessions never do (the
    #: ``custom_plans`` engine option).
    plans_reused: bool

    def engine_options(
        self,
        pool_size: int,
        statement_timeout: float | None,
        *,
        pooled: bool,
        custom_plans: bool = False,
    ) -> dict[str, Any]:
        """``create_async_engine``'s options for this backend. ``statement_timeout``
        (seconds; None or 0 for none) bounds how long one statement runs or waits for a
        lock: a request's database work is cut off then, and answered 503. ``pooled``:
        the database is reached through a pooler in transaction mode
        (``ROSTER_DATABASE_POOLER``), which may hand each transaction to another server
        connection. With ``custom_plans`` each statement is planned for its values (see
        ``custom_plans``)."""
        ...

    def prepare_engine(
        self, engine: AsyncEngine, statement_timeout: float | None, *, pooled: bool
    ) -> None:
        """What every connection (or, ``pooled``, every transaction) of a new engine
        needs before its first statement."""
        ...

    def outage(self, error: BaseException) -> Outage | None:
        """Why the database cannot serve now, if ``error`` (the driver's own) says so."""
        ...

    def search_condition(self, terms: Sequence[str], prefix: str = "search") -> ColumnElement[bool]:
        """True for personas whose search text holds every (folded) term. Its values are
        bound parameters named as in :meth:`search_parameters` (each name starts with
        ``prefix``: two conditions of one statement need two), so a statement built for
        some terms runs for any others of the same :meth:`search_shape` with theirs."""
        ...

    def search_shape(self, terms: Sequence[str]) -> Hashable:
        """What the search condition's SQL depends on: terms of one shape share it."""
        ...

    def search_parameters(self, terms: Sequence[str], prefix: str = "search") -> dict[str, Any]:
        """The values of the search condition's parameters for these terms."""
        ...

    def starts_with(self, column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
        """``column`` starts with ``prefix`` (code point for code point), as a range of
        the column's index: every text from ``prefix`` up to the first one after all
        that start with it."""
        ...

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """``column`` equals one of the values of the list bound as ``name``, however many."""

    def text_compare(
        self, column: ColumnElement[Any], op: str, value: str, case_exact: bool
    ) -> ColumnElement[bool]:
        """``column`` compared with ``value`` by a SCIM filter operator (``eq``, ``co``,
        ``sw``, ``ew``, ``gt``, ``ge``, ``lt``, ``le``), with or without case. Without case,
        letters compare as ``lower()`` does: every letter on PostgreSQL, ASCII on SQLite."""
        ...

    async def fetch_plain(
        self, conn: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of a read, as tuples, for a statement whose parameters and columns
        need no conversion (text, numbers, booleans, UUIDs, lists of these; a list is
        bound with :meth:`one_of`). Build the statement once and keep it: its SQL is
        kept by the statement. A parameter not in ``parameters`` has the value it was
        built with."""

    async def fetch_shaped(
        self,
        conn: AsyncConnection,
        build: Build,
        parts: Sequence[ClauseElement],
        parameters: Mapping[str, Any],
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``build(backend, *parts)``, as :meth:`fetch_plain` reads them,
        compiled once for the parts' shape (db/shapes.py): for a large statement around a
        small condition. ``build`` names its other values ``bindparam`` for
        ``parameters``."""

    def custom_plans(self, conn: AsyncConnection) -> AbstractAsyncContextManager[None]:
        """While the block runs, each statement is planned for its values, never with a
        plan made for any values (a search's best plan depends on how rare its terms
        are). Outside a transaction: ``snapshot_setup`` does the same in one."""
        ...

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        """``text`` to sort by code point, whatever the database's collation."""
        ...

    def uuid_text(self, uuid_column: ColumnElement[Any]) -> ColumnElement[str]:
        """A UUID column as the text a client reads: 36 characters, lower case."""
        ...

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        """A JSON object of these keys and values (where ``renders_json``)."""
        ...

    def json_list(
        self,
        item: ColumnElement[Any],
        order: Sequence[ColumnElement[Any]],
        source: FromClause,
    ) -> ColumnElement[str]:
        """The text of a JSON array of ``item`` over the rows of ``source``, in ``order``;
        ``[]`` for none (where ``renders_json``)."""
        ...

    def json_item(self, item: ColumnElement[Any], source: FromClause) -> ColumnElement[str]:
        """The text of ``item`` for the one row of ``source``; ``null`` for none (where
        ``renders_json``)."""
        ...

    def json_aggregate(
        self, item: ColumnElement[Any], order: Sequence[ColumnElement[Any]]
    ) -> ColumnElement[str]:
        """The text of a JSON array of ``item`` over a group's rows, in ``order`` (an
        aggregate, where ``renders_json``)."""
        ...

    def insert(self, table: Table) -> UpsertingInsert:
        """An INSERT that supports ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""
        ...

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert rows (all with the same keys) by the fastest path the backend has."""
        ...

    async def analyze(
        self, conn: AsyncConnection, tables: Sequence[Table], only: Sequence[Column[Any]] = ()
    ) -> None:
        """Refresh the query planner's statistics of these tables, after a bulk load;
        with ``only``, of those of their columns alone where the backend can (the tables'
        sizes are refreshed all the same)."""
        ...

    #: Whether writing transactions run side by side (else one at a time).
    concurrent_writers: bool

    async def lock_for_writing(self, conn: AsyncConnection, keys: Sequence[int] | None) -> None:
        """Hold, until the transaction ends, the writers' locks of these keys (ints, in
        order), beside writers of other keys; ``None``: one lock that excludes every other
        writer (a bulk write). Writers of persons take these before they read."""
        ...

    async def lock_event_log(self, conn: AsyncConnection) -> None:
        """Hold, until the transaction ends, the lock that makes event ids follow commit
        order: taken just before a transaction appends events, it lets no other
        transaction append (and so take a larger id) until this one has committed or
        rolled back (docs/events.md)."""
        ...


async def update_many(
    conn: AsyncConnection, table: Table, key: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Update rows (all with the same keys) found by their ``key`` column, in one executemany."""
    if not rows:
        return
    names = [name for name in rows[0] if name != key]
    statement = (
        update(table)
        .where(table.c[key] == bindparam("k_" + key))
        .values({name: bindparam("v_" + name) for name in names})
    )
    await conn.execute(
        statement,
        [{"k_" + key: row[key], **{"v_" + name: row[name] for name in names}} for row in rows],
    )


def code_point_prefix(column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    """``column``, one that sorts by code point on both backends (SQLite's ``BINARY``,
    ``COLLATE "C"`` on PostgreSQL), starts with ``prefix``: a range of its own index."""
    after = _after_prefix(prefix)
    return column >= prefix if after is None else and_(column >= prefix, column < after)


def _after_prefix(prefix: str) -> str | None:
    """The first text after every text that starts with ``prefix`` (its last character
    that can be is moved up by one, skipping the surrogates UTF-8 cannot hold); ``None``
    if there is none (nothing ever sorts after it)."""
    for at in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[at]) + 1
        if code > 0x10FFFF:
            continue
        return prefix[:at] + chr(0xE000 if 0xD800 <= code < 0xE000 else code)
    return None


def like_pattern(term: str, op: str = "co") -> str:
    """``%term%`` (``sw``: ``term%``, ``ew``: ``%term``) with LIKE's metacharacters
    escaped, so the term is taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{'' if op == 'sw' else '%'}{escaped}{'' if op == 'ew' else '%'}"


def compare_ordered(
    column: ColumnElement[Any], op: str, value: ColumnElement[Any]
) -> ColumnElement[bool]:
    """``column`` and ``value`` compared by eq, gt, ge, lt or le."""
    compared: ColumnElement[bool] = {
        "eq": column == value,
        "gt": column > value,
        "ge": column >= value,
        "lt": column < value,
        "le": column <= value,
    }[op]
    return compared


#: The session's plan caching around a statement that ``fetch_planned`` runs.
_CUSTOM_PLANS = "SET plan_cache_mode = force_custom_plan"
_ANY_PLANS = "RESET plan_cache_mode"
#: The execution option of an engine whose sessions plan every statement so already.
_PLANNED_OPTION = "roster_custom_plans"

#: The namespaces (first key) of Roster's advisory locks: the bulk lock, the keys, and
#: the event log's.
_BULK_LOCK, _KEY_LOCKS, _EVENT_LOG_LOCK = 0x526F7300, 0x526F7301, 0x526F7302
_LOCK_BULK = text("SELECT pg_advisory_xact_lock(:space, 0)")
_SHARE_BULK = text("SELECT pg_advisory_xact_lock_shared(:space, 0)")
_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(:space, key)) FROM unnest(CAST(:keys AS integer[])) AS key"
)


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

#: The session settings PgBouncer (1.18) passes on when a client connects; it refuses
#: the others, which a pooled engine sets in each transaction instead.
_POOLER_STARTUP = frozenset({"application_name"})


def _session_settings(statement_timeout: float | None) -> dict[str, str]:
    """Roster's settings of a PostgreSQL session: ``SERVER_SETTINGS`` and the statement
    timeout (seconds; None or 0 for none)."""
    settings = dict(SERVER_SETTINGS)
    if statement_timeout:
        settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
    return settings


def _unnamed() -> str:
    """The name of every statement SQLAlchemy prepares behind a pooler: the unnamed one,
    which the next statement replaces, so none is left behind on a server connection."""
    return ""


#: PostgreSQL's error codes (SQLSTATE) of a server that cannot serve now: shutting down
#: (57P01 admin, 57P02 crash), starting up (57P03), out of connection slots (53300).
_PG_UNREACHABLE = {"57P01", "57P02", "57P03", "53300"}
#: A statement cancelled by statement_timeout (or by an operator's pg_cancel_backend),
#: a transaction PostgreSQL failed to break a deadlock, one that could not serialize:
#: each succeeds when retried, so the client is told to retry (503, Retry-After).
_PG_BUSY = {"57014", "40P01", "40001"}


def _causes(error: BaseException) -> list[BaseException]:
    """An error and the errors it was raised from: SQLAlchemy wraps the driver's error
    (``.orig``), which its asyncpg adapter raised from asyncpg's own."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(found) < 8:
        found.append(current)
        if isinstance(current, sa_exc.DBAPIError) and current.orig is not None:
            current = current.orig
        else:
            current = current.__cause__
    return found


async def _discard_if_lost(
    conn: AsyncConnection, pooled: PoolProxiedConnection, error: BaseException, *, closed: bool
) -> sa_exc.DBAPIError | None:
    """SQLAlchemy's disconnect handling, for a statement run on the driver's own
    connection (``pooled``) that failed with ``error``: a connection found ``closed`` is
    discarded, and so is every pooled connection opened before it (after a restart they
    are all dead), as SQLAlchemy's ``Connection._handle_dbapi_exception`` does for its
    own statements; the error to raise instead is returned. Without this a dead
    connection went back to the pool and every request on it failed until something
    else noticed (tests/test_faults.py).
    """
    if closed:
        conn.sync_engine.pool._invalidate(pooled, error, _checkin=False)
        await conn.invalidate(error)
        # Whatever the driver called it (asyncpg's connection killed mid-statement can
        # say "another operation is in progress"), the connection was lost.
        return sa_exc.DBAPIError(
            None, None, error, hide_parameters=True, connection_invalidated=True
        )
    if not isinstance(error, Exception):
        # Cancelled mid-statement: the connection's state is unknown (SQLAlchemy
        # discards it too, and only it).
        await conn.invalidate(error)
    return None


async def _asyncpg_lost(
    conn: AsyncConnection, pooled: PoolProxiedConnection, error: BaseException
) -> sa_exc.DBAPIError | None:
    """``_discard_if_lost`` for asyncpg, which says whether its connection is closed."""
    closed = bool(pooled.driver_connection.is_closed())  # type: ignore[union-attr]
    return await _discard_if_lost(conn, pooled, error, closed=closed)


async def _setting(conn: AsyncConnection, pooled: PoolProxiedConnection, statement: str) -> None:
    """A statement without parameters or rows (``SET``) on the driver's own connection."""
    try:
        await pooled.driver_connection.execute(statement)  # type: ignore[union-attr]
    except BaseException as error:
        if (lost := await _asyncpg_lost(conn, pooled, error)) is not None:
            raise lost from error
        raise


class _DriverReads:
    """The reads of :meth:`Backend.fetch_plain` and :meth:`Backend.fetch_shaped`, run on
    the driver's own connection (``_fetch``); with ``converts``, each value is bound and
    each column read by its type's processors, as SQLAlchemy would (db/plain.py)."""

    converts: bool

    async def fetch_plain(
        self, conn: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        kept = plain(statement, conn.dialect, converts=self.converts)
        sql, values = kept.bound(kept.values(parameters))
        return kept.read(await self._fetch(conn, sql, values))

    async def fetch_shaped(
        self,
        conn: AsyncConnection,
        build: Build,
        parts: Sequence[ClauseElement],
        parameters: Mapping[str, Any],
    ) -> Sequence[Sequence[Any]]:
        shaped = shaped_sql(conn.dialect, self, build, parts, parameters)
        if shaped is None:
            return (await conn.execute(build(self, *parts), parameters)).all()
        rows = await self._fetch(conn, shaped.sql, shaped.values)
        return read(shaped.columns, rows) if self.converts else rows

    async def _fetch(
        self, conn: AsyncConnection, sql: str, values: Sequence[Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``sql`` with ``values``, on the driver's own connection; a lost
        connection is discarded and raised as SQLAlchemy's ``DBAPIError``."""
        raise NotImplementedError


class PostgresBackend(_DriverReads):
    name = "postgresql"
    driver = "postgresql+asyncpg"
    read_options: Mapping[str, Any] = {"isolation_level": "AUTOCOMMIT"}
    write_options: Mapping[str, Any] = {}
    # Any fixed number (0x524F5354), held until the migration's transaction ends.
    migration_lock: Sequence[str] = ("SELECT pg_advisory_xact_lock(1380930388)",)
    # READ COMMITTED would give each statement its own snapshot.
    snapshot_options: Mapping[str, Any] = {
        "isolation_level": "REPEATABLE READ",
        "postgresql_readonly": True,
    }
    # A listing's plan depends on its search terms and ids (a rare substring wants the
    # trigram index, a common one the ordered walk): never reuse a generic plan for them.
    snapshot_setup: Sequence[str] = ("SET LOCAL plan_cache_mode = force_custom_plan",)
    renders_json = True
    # Planned for a chunk's 1,000 ids, the lookups of a table of up to a few hundred
    # thousand rows were costed as random reads from disk and scanned the whole table
    # instead (twice as slow where the table is in memory, as a directory's is): a
    # 100,000-row page of a 200,000-person account took 5.5 s, 3.8 s by index. Set once
    # the page's own statement is planned, and back to the session's value after.
    chunk_embeds_setup: Sequence[str] = ("SET LOCAL enable_seqscan = off",)
    chunk_embeds_done: Sequence[str] = ("SET LOCAL enable_seqscan TO DEFAULT",)
    converts = False  # asyncpg binds and reads each value itself

    plans_reused = True

    def engine_options(
        self,
        pool_size: int,
        statement_timeout: float | None,
        *,
        pooled: bool,
        custom_plans: bool = False,
    ) -> dict[str, Any]:
        settings = _session_settings(statement_timeout)
        planned: dict[str, Any] = {}
        if custom_plans and not pooled:  # no round trips: custom_plans finds it set already
            settings["plan_cache_mode"] = "force_custom_plan"
        if custom_plans or pooled:
            # Behind a pooler every statement is unnamed, and PostgreSQL plans an unnamed
            # statement for the values it is bound with: custom plans, always.
            planned["execution_options"] = {_PLANNED_OPTION: True}
        connect_args: dict[str, Any] = {"timeout": 5, "server_settings": settings}
        if pooled:
            connect_args = {
                "timeout": 5,
                # PgBouncer refuses a startup parameter it does not track; the others are
                # set in each transaction instead (prepare_engine).
                "server_settings": {
                    name: value for name, value in settings.items() if name in _POOLER_STARTUP
                },
                # A server connection serves one transaction, then any client: a statement
                # prepared on it is gone (or, by its name, someone else's) next time. No
                # cache, and unnamed statements, which asyncpg parses again at each
                # execution (so a statement outside a transaction is one message too).
                "statement_cache_size": 0,
                "prepared_statement_cache_size": 0,
                "prepared_statement_name_func": _unnamed,
            }
        return {
            **planned,
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_timeout": 10,
            "pool_recycle": 3600,
            "connect_args": connect_args,
        }

    def prepare_engine(
        self, engine: AsyncEngine, statement_timeout: float | None, *, pooled: bool
    ) -> None:
        if not pooled:
            return  # the settings are the session's, given when it starts

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # asyncpg turns jit off for the session while it looks up a type it has no
            # codec for, and back on in another statement: behind a pooler those two
            # land on different server connections, and one keeps jit off for whichever
            # client comes next. Tell it the server has no JIT: no session setting then.
            driver = dbapi_connection.driver_connection
            driver._server_caps = driver._server_caps._replace(jit=False)

        local = [
            (name, value)
            for name, value in _session_settings(statement_timeout).items()
            if name not in _POOLER_STARTUP
        ]
        # SET LOCAL of each, in one statement: they end with the transaction, so no
        # server connection keeps them for the next client. Constants and a number.
        set_local = "SELECT " + ", ".join(
            f"set_config('{name}', '{value}', true)" for name, value in local
        )

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            connection.exec_driver_sql(set_local)

    def outage(self, error: BaseException) -> Outage | None:
        if isinstance(error, asyncpg.PostgresConnectionError):
            return Outage.UNREACHABLE  # SQLSTATE class 08, and a connection that is gone
        if isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error):
            return Outage.UNREACHABLE  # asyncpg's word for a connection lost earlier
        code = getattr(error, "sqlstate", None)
        if code in _PG_UNREACHABLE:
            return Outage.UNREACHABLE
        if code in _PG_BUSY:
            return Outage.BUSY
        return None

    def search_condition(self, terms: Sequence[str], prefix: str = "search") -> ColumnElement[bool]:
        return and_(
            true(),
            *(
                personas.c.search_text.like(bindparam(name, pattern), escape="\\")
                for name, pattern in self.search_parameters(terms, prefix).items()
            ),
        )

    def search_shape(self, terms: Sequence[str]) -> Hashable:
        return len(terms)

    def search_parameters(self, terms: Sequence[str], prefix: str = "search") -> dict[str, Any]:
        return {f"{prefix}_{n}": like_pattern(term) for n, term in enumerate(terms)}

    def starts_with(self, column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
        # The pattern operators compare bytes, as the index's text_pattern_ops (a LIKE
        # with a bound pattern could use no index in a generic plan).
        after = _after_prefix(prefix)
        starting = column.op("~>=~", is_comparison=True)(prefix)
        return (
            starting
            if after is None
            else and_(starting, column.op("~<~", is_comparison=True)(after))
        )

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        # One array parameter: the statement stays the same whatever the number of
        # values, so it is prepared once, and there is no limit on bound parameters.
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))

    def text_compare(
        self, column: ColumnElement[Any], op: str, value: str, case_exact: bool
    ) -> ColumnElement[bool]:
        if op in ("co", "sw", "ew"):
            pattern = like_pattern(value, op)
            if case_exact:
                return column.like(pattern, escape="\\")
            return column.ilike(pattern, escape="\\")
        if case_exact:
            return compare_ordered(column, op, literal(value))
        return compare_ordered(func.lower(column), op, func.lower(literal(value)))

    async def _fetch(
        self, conn: AsyncConnection, sql: str, values: Sequence[Any]
    ) -> Sequence[Sequence[Any]]:
        pooled = await conn.get_raw_connection()
        try:
            rows: Sequence[Sequence[Any]] = await pooled.driver_connection.fetch(  # type: ignore[union-attr]
                sql, *values
            )
        except BaseException as error:
            if (lost := await _asyncpg_lost(conn, pooled, error)) is not None:
                raise lost from error
            raise
        return rows

    @asynccontextmanager
    async def custom_plans(self, conn: AsyncConnection) -> AsyncIterator[None]:
        # A prepared statement is planned for its values five times, then PostgreSQL may
        # keep a plan made for any values: for a search, one that walked the whole
        # account for a rare term (a second instead of milliseconds, measured). The
        # session's setting is changed around the block: two short round trips
        # (preparing the statement anew each time cost more).
        synced = conn.sync_connection
        if synced is not None and synced.get_execution_options().get(_PLANNED_OPTION):
            yield  # a listing engine's session: set so when it connected
            return
        pooled = await conn.get_raw_connection()
        driver: asyncpg.Connection = pooled.driver_connection
        await _setting(conn, pooled, _CUSTOM_PLANS)
        try:
            yield
        finally:
            if not driver.is_closed():  # a connection lost in the block is discarded
                await _setting(conn, pooled, _ANY_PLANS)

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        return text.collate("C")

    def uuid_text(self, uuid_column: ColumnElement[Any]) -> ColumnElement[str]:
        return cast(uuid_column, Text)

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        arguments: list[ColumnElement[Any]] = []
        for key, value in pairs:
            assert key.isidentifier(), key  # written into the statement, not bound
            arguments += [literal_column(f"'{key}'"), value]
        return func.json_build_object(*arguments)

    def json_list(
        self,
        item: ColumnElement[Any],
        order: Sequence[ColumnElement[Any]],
        source: FromClause,
    ) -> ColumnElement[str]:
        array = func.coalesce(self.json_aggregate(item, order), "[]")
        return select(array).select_from(source).scalar_subquery()

    def json_aggregate(
        self, item: ColumnElement[Any], order: Sequence[ColumnElement[Any]]
    ) -> ColumnElement[str]:
        return cast(func.json_agg(aggregate_order_by(item, *order) if order else item), Text)

    def json_item(self, item: ColumnElement[Any], source: FromClause) -> ColumnElement[str]:
        found = select(cast(item, Text)).select_from(source).scalar_subquery()
        return func.coalesce(found, "null")

    def insert(self, table: Table) -> UpsertingInsert:
        return postgresql.insert(table)

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        if not rows:
            return
        # COPY, through the asyncpg connection under this same transaction. Its errors
        # bypass SQLAlchemy's wrapping: a violated constraint is raised as the
        # IntegrityError every other write path raises.
        columns = list(rows[0])
        pooled = await conn.get_raw_connection()
        try:
            await pooled.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name,
                records=[tuple(row[c] for c in columns) for row in rows],
                columns=columns,
            )
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(f"COPY {table.name}", None, error) from error
        except BaseException as error:
            if (lost := await _asyncpg_lost(conn, pooled, error)) is not None:
                raise lost from error
            raise

    async def analyze(
        self, conn: AsyncConnection, tables: Sequence[Table], only: Sequence[Column[Any]] = ()
    ) -> None:
        # Autovacuum may be off (or late): a planner that believes a table still
        # holds no rows picks sequential scans for the import's lookups.
        def analyzed(whole: Table) -> str:
            names = [each.name for each in only if each.table is whole]
            return f"{whole.name} ({', '.join(names)})" if names else whole.name

        await conn.exec_driver_sql(f"ANALYZE {', '.join(map(analyzed, tables))}")

    concurrent_writers = True

    async def lock_for_writing(self, conn: AsyncConnection, keys: Sequence[int] | None) -> None:
        # Advisory locks, released at commit or rollback. Every writer holds the bulk
        # lock, shared unless it is a bulk write, then its keys' locks in one order, so no
        # two writers wait for each other.
        if keys is None:
            await conn.execute(_LOCK_BULK, {"space": _BULK_LOCK})
            return
        await conn.execute(_SHARE_BULK, {"space": _BULK_LOCK})
        if keys:
            await conn.execute(_LOCK_KEYS, {"space": _KEY_LOCKS, "keys": list(keys)})

    async def lock_event_log(self, conn: AsyncConnection) -> None:
        # A sequence hands out ids in the order transactions ask, not the order they
        # commit: a transaction that took id 5 may commit after one that took id 6, and a
        # consumer that read 6 would never see 5. Held from the first append to the
        # commit, this lock makes ids follow commit order. Taken again by the same
        # transaction, it is granted at once.
        await conn.execute(_LOCK_BULK, {"space": _EVENT_LOG_LOCK})


#: The FTS5 table the SQLite migration creates beside personas.
_FTS = table("personas_search", column("rowid"))


#: The execution option a writing unit of work sets on SQLite: it takes the write lock
#: when its transaction begins instead of failing to upgrade a read lock later.
_WRITE_OPTION = "roster_write"
#: The execution option a reading unit of work sets on SQLite: no BEGIN is sent, so
#: each statement is a transaction of its own. SQLAlchemy's AUTOCOMMIT level does the
#: same on PostgreSQL; on SQLite setting it and resetting it when the connection goes
#: back to the pool cost five trips to the driver's thread a request, more than the
#: statements themselves.
_AUTOCOMMIT_OPTION = "roster_autocommit"
#: How long a SQLite statement waits for another connection's write lock when no
#: statement timeout is configured (the command line's engines).
_SQLITE_BUSY_SECONDS = 30.0
#: SQLite's result codes of a database that cannot serve now: another connection holds
#: the lock past the busy timeout, or the file cannot be opened.
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_UNREACHABLE = ("SQLITE_CANTOPEN",)
#: How aiosqlite (a ValueError) and sqlite3 (a ProgrammingError) say a connection is
#: closed; SQLAlchemy's SQLite dialect reads the same words.
_SQLITE_CLOSED = ("no active connection", "connection closed", "closed database")


#: How often a cancelled SQLite read's statement is interrupted until it ends, and
#: for how long at most.
_SQLITE_INTERRUPT_EVERY = 0.005
_SQLITE_INTERRUPT_FOR = 30.0


async def _interrupted(driver: aiosqlite.Connection) -> None:
    """Stop the statement on a SQLite connection's thread, once it runs: ``interrupt()``
    stops only a statement running, and one queued on the thread may not have started
    yet; so it is interrupted again every 5 ms until a read queued behind it answers.
    (A progress handler checking a flag would run Python on the connection's thread
    every so many instructions: under a busy event loop, waiting for the GIL each time
    starved the statement, 1 s of work taking minutes.)"""
    behind = asyncio.ensure_future(driver.execute_fetchall("SELECT 1"))
    # Bounded: a thread stuck where interrupt() cannot reach is left to the discard.
    give_up = time.monotonic() + _SQLITE_INTERRUPT_FOR
    try:
        while not behind.done() and time.monotonic() < give_up:
            with contextlib.suppress(sqlite3.Error, ValueError):  # closed meanwhile
                await driver.interrupt()
            await asyncio.wait([behind], timeout=_SQLITE_INTERRUPT_EVERY)
    finally:
        behind.cancel()  # (done already, unless this task is cancelled again)
        if behind.done() and not behind.cancelled():
            behind.exception()  # interrupted too, or closed: either way the thread is free


#: What each SQLite connection is set to when it opens.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    # 8 MiB of pages per connection; the operating system caches the file for all of
    # them. Each pooled connection fills a cache of its own: with 64 MiB a server's memory
    # grew 14 to 43% over the benchmark's minute of steady load (8 MiB: 1 to 8%), and it
    # was no faster (docs/operations.md).
    "PRAGMA cache_size = -8192",
    "PRAGMA temp_store = MEMORY",
)


class SqliteBackend(_DriverReads):
    name = "sqlite"
    driver = "sqlite+aiosqlite"
    read_options: Mapping[str, Any] = {_AUTOCOMMIT_OPTION: True}
    write_options: Mapping[str, Any] = {_WRITE_OPTION: True}
    # A migration's transaction writes, and SQLite has one writer at a time.
    migration_lock: Sequence[str] = ()
    # In WAL mode a transaction reads one snapshot, taken at its first read.
    snapshot_options: Mapping[str, Any] = {}
    snapshot_setup: Sequence[str] = ()
    renders_json = False
    chunk_embeds_setup: Sequence[str] = ()  # SQLite writes no embeds (renders_json)
    chunk_embeds_done: Sequence[str] = ()
    converts = True

    plans_reused = False

    def engine_options(
        self,
        pool_size: int,
        statement_timeout: float | None,
        *,
        pooled: bool,
        custom_plans: bool = False,
    ) -> dict[str, Any]:
        # (Settings refuse a pooler with SQLite.) SQLite has no statement timeout; its
        # busy timeout (the driver's ``timeout``) bounds the wait for another
        # connection's write lock.
        busy = statement_timeout or _SQLITE_BUSY_SECONDS
        # Reset as prepare_engine says, not by a ROLLBACK each time.
        return {
            "pool_size": pool_size,
            "connect_args": {"timeout": busy},
            "pool_reset_on_return": None,
        }

    def prepare_engine(
        self, engine: AsyncEngine, statement_timeout: float | None, *, pooled: bool
    ) -> None:
        # The driver's own transaction handling cannot do savepoints or take the write
        # lock at BEGIN; SQLAlchemy's documented recipe hands BEGIN to us instead.
        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
            cursor.close()

        @event.listens_for(engine.sync_engine, "reset")
        def _on_reset(
            dbapi_connection: Any, record: ConnectionPoolEntry, state: PoolResetState
        ) -> None:
            # A connection given back to the pool is rolled back only if a transaction
            # is open on it: a read in autocommit mode opens none, and the ROLLBACK that
            # SQLAlchemy would send anyway is a trip to the connection's thread (a tenth
            # of a find's time on SQLite, measured). One closed under the pool is
            # dropped, so the next checkout opens a new one (SQLAlchemy's adapter asks
            # whether it is closed the same way).
            driver: aiosqlite.Connection = dbapi_connection.driver_connection
            if state.terminate_only:
                return
            if driver._connection is None:
                record.invalidate()
            elif driver.in_transaction:
                dbapi_connection.rollback()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Connection) -> None:
            options = connection.get_execution_options()
            if options.get(_AUTOCOMMIT_OPTION):
                return
            connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION) else "BEGIN")

    def outage(self, error: BaseException) -> Outage | None:
        if not isinstance(error, sqlite3.OperationalError):
            return None
        name = getattr(error, "sqlite_errorname", "")
        if name.startswith(_SQLITE_BUSY):
            return Outage.BUSY
        if name.startswith(_SQLITE_UNREACHABLE):
            return Outage.UNREACHABLE
        return None

    def search_condition(self, terms: Sequence[str], prefix: str = "search") -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        for name, value in self.search_parameters(terms, prefix).items():
            if name == f"{prefix}_phrase":
                phrase = literal_column(_FTS.name).match(bindparam(name, value))
                matching = select(_FTS.c.rowid).where(phrase)
                conditions.append(personas.c.seq.in_(matching))
            else:
                conditions.append(func.instr(personas.c.search_text, bindparam(name, value)) > 0)
        return and_(true(), *conditions)

    def search_shape(self, terms: Sequence[str]) -> Hashable:
        return tuple(len(term) >= TRIGRAM for term in terms)

    def search_parameters(self, terms: Sequence[str], prefix: str = "search") -> dict[str, Any]:
        indexed = [term for term in terms if len(term) >= TRIGRAM]
        scanned = [term for term in terms if len(term) < TRIGRAM]
        # A quoted FTS5 phrase over trigrams is an exact substring match.
        phrase = " ".join('"' + term.replace('"', '""') + '"' for term in indexed)
        found: dict[str, Any] = {f"{prefix}_phrase": phrase} if indexed else {}
        return found | {f"{prefix}_{n}": term for n, term in enumerate(scanned)}

    def starts_with(self, column: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
        return code_point_prefix(column, prefix)  # BINARY collation: bytes, so code points

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        return column.in_(bindparam(name, expanding=True))

    def text_compare(
        self, column: ColumnElement[Any], op: str, value: str, case_exact: bool
    ) -> ColumnElement[bool]:
        if op in ("co", "sw", "ew") and not case_exact:
            # SQLite's LIKE ignores the case of ASCII letters.
            return column.like(like_pattern(value, op), escape="\\")
        given = literal(value)
        if op == "co":
            return func.instr(column, given) > 0
        if op == "sw":
            return func.substr(column, 1, func.length(given)) == given
        if op == "ew":
            return and_(
                func.length(column) >= func.length(given),
                func.substr(column, func.length(column) - func.length(given) + 1) == given,
            )
        if case_exact:
            return compare_ordered(column, op, given)
        return compare_ordered(func.lower(column), op, func.lower(given))

    async def _fetch(
        self, conn: AsyncConnection, sql: str, values: Sequence[Any]
    ) -> Sequence[Sequence[Any]]:
        pooled = await conn.get_raw_connection()
        driver: aiosqlite.Connection = pooled.driver_connection  # type: ignore[assignment]
        try:
            return list(await driver.execute_fetchall(sql, values))
        except BaseException as error:
            if not isinstance(error, Exception) and driver._connection is not None:
                # Cancelled: the statement still runs on the connection's thread, and
                # would hold up whatever came next on it; stop it.
                await _interrupted(driver)
            closed = isinstance(error, ValueError | sqlite3.ProgrammingError) and any(
                words in str(error).lower() for words in _SQLITE_CLOSED
            )
            if (lost := await _discard_if_lost(conn, pooled, error, closed=closed)) is not None:
                raise lost from error
            raise

    @asynccontextmanager
    async def custom_plans(self, conn: AsyncConnection) -> AsyncIterator[None]:
        yield  # SQLite plans each statement as it runs

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        return text  # SQLite's default collation, BINARY, is code point order for UTF-8

    def uuid_text(self, uuid_column: ColumnElement[Any]) -> ColumnElement[str]:
        # SQLAlchemy's Uuid keeps a UUID on SQLite as its 32 hex digits.
        hexed = func.lower(cast(uuid_column, Text))
        first, *rest = (
            func.substr(hexed, at, length, type_=Text)
            for at, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
        )
        dash = literal_column("'-'", Text)
        return reduce(lambda text, part: text + dash + part, rest, first)

    # SQLite's json_group_array takes no ORDER BY before 3.44: its embeds are loaded as
    # objects (renders_json is false), and these are never asked for.

    def json_object(self, pairs: Sequence[tuple[str, ColumnElement[Any]]]) -> ColumnElement[Any]:
        raise NotImplementedError

    def json_list(
        self,
        item: ColumnElement[Any],
        order: Sequence[ColumnElement[Any]],
        source: FromClause,
    ) -> ColumnElement[str]:
        raise NotImplementedError

    def json_item(self, item: ColumnElement[Any], source: FromClause) -> ColumnElement[str]:
        raise NotImplementedError

    def json_aggregate(
        self, item: ColumnElement[Any], order: Sequence[ColumnElement[Any]]
    ) -> ColumnElement[str]:
        raise NotImplementedError

    def insert(self, table: Table) -> UpsertingInsert:
        return sqlite.insert(table)

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        if rows:
            await conn.execute(insert(table), list(rows))

    async def analyze(
        self, conn: AsyncConnection, tables: Sequence[Table], only: Sequence[Column[Any]] = ()
    ) -> None:
        # SQLite's statistics are its indexes', each table's at once (``only`` aside).
        # Without statistics SQLite takes `account_id = ?` for selective, and a search
        # walked the whole account's index to test each row against the few its terms
        # match (15 ms at 100,000 people); with them it starts from those few (0.5 ms).
        # A sampled ANALYZE takes a fraction of a second at 200,000 personas.
        await conn.exec_driver_sql("PRAGMA analysis_limit = 1000")
        for analyzed in tables:
            await conn.exec_driver_sql(f"ANALYZE {analyzed.name}")

    concurrent_writers = False

    async def lock_for_writing(self, conn: AsyncConnection, keys: Sequence[int] | None) -> None:
        pass  # a writing transaction began with BEGIN IMMEDIATE: it is the only writer

    async def lock_event_log(self, conn: AsyncConnection) -> None:
        pass  # one writer at a time: ids are assigned, and committed, in order


_BACKENDS: dict[str, Backend] = {"postgresql": PostgresBackend(), "sqlite": SqliteBackend()}


def backend_for(connection: AsyncConnection) -> Backend:
    """The backend of a connection's database."""
    return _BACKENDS[connection.dialect.name]


def json_default(value: object) -> str:
    """orjson's ``default`` for values of a driver's own types: asyncpg gives UUIDs as a
    subclass of ``uuid.UUID`` that orjson does not know. Converting them in the database
    layer would cost every row of a page; orjson asks only for the values it cannot write.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def backend_named(name: str) -> Backend:
    """The backend of a database URL's scheme (``sqlite``, ``postgresql``)."""
    return _BACKENDS[name]


#: The exceptions a database fault can raise through SQLAlchemy or the drivers directly.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    sa_exc.DBAPIError,
    sa_exc.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    sqlite3.Error,
)


def outage(error: BaseException) -> Outage | None:
    """Why the database cannot serve a request now, if ``error`` says it cannot: the
    connection was lost, the server is shutting down, starting or out of connections,
    it cannot be reached, every pooled connection is in use, a statement ran past its
    timeout, SQLite's lock stayed taken. Any other database error (a constraint, a
    syntax error, a bad value) is a fault of the request or of ours: None.
    """
    for cause in _causes(error):
        if isinstance(cause, sa_exc.TimeoutError):
            return Outage.BUSY  # no pooled connection came free in time
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return Outage.UNREACHABLE  # SQLAlchemy found the connection gone
        if isinstance(cause, OSError | TimeoutError):
            return Outage.UNREACHABLE  # refused, reset, or no answer to connect
        for backend in _BACKENDS.values():
            found = backend.outage(cause)
            if found is not None:
                return found
    return None
