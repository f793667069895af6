"""Where SQLite and PostgreSQL differ, and nowhere else.

The core asks :func:`backend_for` once and calls the answer; no other module
branches on the dialect. Search is a substring match of folded terms over
``personas.search_text`` (see core/matching.py), served by a trigram index on
each backend: pg_trgm's GIN index on PostgreSQL, an FTS5 trigram table on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    and_,
    any_,
    bindparam,
    column,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.schema import Table

from roster.db.tables import personas

UpsertingInsert = postgresql.Insert | sqlite.Insert

#: Terms shorter than this have no trigram; both backends then scan the
#: (already filtered) rows instead of using the index.
TRIGRAM = 3


class Backend(Protocol):
    name: str

    def __hash__(self) -> int: ...  # one instance per backend; statements are cached by it

    #: Execution options of a read transaction whose statements all see one snapshot.
    snapshot_options: Mapping[str, Any]
    #: Statements run at the start of that transaction.
    snapshot_setup: Sequence[str]
    #: Whether embeds are written as JSON by the database (json_agg keeps its ORDER BY;
    #: SQLite's json_group_array takes no ORDER BY before 3.44).
    renders_json: bool

    def search_condition(self, terms: Sequence[str]) -> ColumnElement[bool]:
        """True for personas whose search text holds every (folded) term."""
        ...

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """``column`` equals one of the values of the list bound as ``name``, however many."""

    async def fetch_plain(
        self, conn: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of a read, as tuples, for a statement whose parameters and columns
        need no conversion (text, numbers, booleans, UUIDs, lists of these; a list is
        bound with :meth:`one_of`)."""

    async def estimated_rows(self, conn: AsyncConnection, statement: Select[Any]) -> int | None:
        """How many rows the planner expects ``statement`` to give, if it says."""
        ...

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        """``text`` to sort by code point, whatever the database's collation."""
        ...

    def insert(self, table: Table) -> UpsertingInsert:
        """An INSERT that supports ``on_conflict_do_nothing`` and ``on_conflict_do_update``."""
        ...

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert rows (all with the same keys) by the fastest path the backend has."""
        ...

    async def analyze(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
        """Refresh the query planner's statistics of these tables, after a bulk load."""
        ...

    #: Whether writing transactions run side by side (else one at a time).
    concurrent_writers: bool

    async def lock_for_writing(self, conn: AsyncConnection, keys: Sequence[int] | None) -> None:
        """Hold, until the transaction ends, the writers' locks of these keys (ints, in
        order), beside writers of other keys; ``None``: one lock that excludes every other
        writer (a bulk write). Writers of persons take these before they read."""
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


@lru_cache(maxsize=512)
def _asyncpg_sql(statement: Select[Any], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """A statement's SQL for asyncpg (``$1`` placeholders) and its parameters' names in
    order; statements are built once and kept, so this is too."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ())


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's metacharacters escaped, so the term is taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a statement: its plan, nothing run."""

    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


#: The namespaces (first key) of Roster's advisory locks: the bulk lock, and the keys.
_BULK_LOCK, _KEY_LOCKS = 0x526F7300, 0x526F7301
_LOCK_BULK = text("SELECT pg_advisory_xact_lock(:space, 0)")
_SHARE_BULK = text("SELECT pg_advisory_xact_lock_shared(:space, 0)")
_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(:space, key)) FROM unnest(CAST(:keys AS integer[])) AS key"
)


class PostgresBackend:
    name = "postgresql"
    # READ COMMITTED would give each statement its own snapshot.
    snapshot_options: Mapping[str, Any] = {
        "isolation_level": "REPEATABLE READ",
        "postgresql_readonly": True,
    }
    # A listing's plan depends on its search terms and ids (a rare substring wants the
    # trigram index, a common one the ordered walk): never reuse a generic plan for them.
    snapshot_setup: Sequence[str] = ("SET LOCAL plan_cache_mode = force_custom_plan",)
    renders_json = True

    def search_condition(self, terms: Sequence[str]) -> ColumnElement[bool]:
        return and_(
            true(),
            *(personas.c.search_text.like(like_pattern(term), escape="\\") for term in terms),
        )

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        # One array parameter: the statement stays the same whatever the number of
        # values, so it is prepared once, and there is no limit on bound parameters.
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))

    async def fetch_plain(
        self, conn: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        # On asyncpg directly: SQLAlchemy's execution costs about 130 µs of CPU a
        # statement, as much as the rest of a find's work in the database layer. A
        # connection that fails here is discarded when it goes back to the pool (its
        # reset fails), as test_database_outage_is_503_and_service_resumes_without_restart
        # shows.
        sql, names = _asyncpg_sql(statement, conn.dialect)
        raw = (await conn.get_raw_connection()).driver_connection
        rows: Sequence[Sequence[Any]] = await raw.fetch(  # type: ignore[union-attr]
            sql, *(parameters[name] for name in names)
        )
        return rows

    async def estimated_rows(self, conn: AsyncConnection, statement: Select[Any]) -> int | None:
        plan = await conn.scalar(_Explain(statement))
        rows = (orjson.loads(plan) if isinstance(plan, str | bytes) else plan)[0]["Plan"]
        return int(rows["Plan Rows"])

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        return text.collate("C")

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
        raw = await conn.get_raw_connection()
        try:
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name,
                records=[tuple(row[c] for c in columns) for row in rows],
                columns=columns,
            )
        except asyncpg.IntegrityConstraintViolationError as error:
            raise IntegrityError(f"COPY {table.name}", None, error) from error

    async def analyze(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
        # Autovacuum may be off (or late): a planner that believes a table still
        # holds no rows picks sequential scans for the import's lookups.
        await conn.exec_driver_sql(f"ANALYZE {', '.join(t.name for t in tables)}")

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


#: The FTS5 table the SQLite migration creates beside personas.
_FTS = table("personas_search", column("rowid"))


class SqliteBackend:
    name = "sqlite"
    # In WAL mode a transaction reads one snapshot, taken at its first read.
    snapshot_options: Mapping[str, Any] = {}
    snapshot_setup: Sequence[str] = ()
    renders_json = False

    def search_condition(self, terms: Sequence[str]) -> ColumnElement[bool]:
        indexed = [term for term in terms if len(term) >= TRIGRAM]
        scanned = [term for term in terms if len(term) < TRIGRAM]
        conditions: list[ColumnElement[bool]] = []
        if indexed:
            # A quoted FTS5 phrase over trigrams is an exact substring match.
            phrase = " ".join('"' + term.replace('"', '""') + '"' for term in indexed)
            matching = select(_FTS.c.rowid).where(literal_column(_FTS.name).match(phrase))
            conditions.append(personas.c.seq.in_(matching))
        conditions.extend(func.instr(personas.c.search_text, term) > 0 for term in scanned)
        return and_(true(), *conditions)

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        return column.in_(bindparam(name, expanding=True))

    async def fetch_plain(
        self, conn: AsyncConnection, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = (await conn.execute(statement, parameters)).all()
        return rows

    async def estimated_rows(self, conn: AsyncConnection, statement: Select[Any]) -> int | None:
        return None  # SQLite's EXPLAIN QUERY PLAN gives no row counts

    def byte_order(self, text: ColumnElement[str]) -> ColumnElement[str]:
        return text  # SQLite's default collation, BINARY, is code point order for UTF-8

    def insert(self, table: Table) -> UpsertingInsert:
        return sqlite.insert(table)

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        if rows:
            await conn.execute(insert(table), list(rows))

    async def analyze(self, conn: AsyncConnection, tables: Sequence[Table]) -> None:
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


_BACKENDS: dict[str, Backend] = {"postgresql": PostgresBackend(), "sqlite": SqliteBackend()}


def backend_for(connection: AsyncConnection) -> Backend:
    """The backend of a connection's database."""
    return _BACKENDS[connection.dialect.name]
