"""The floor: the least work that gives the benchmark's finds and searches their answers.

A bare ASGI app (uvicorn with httptools and uvloop, orjson; asyncpg on PostgreSQL,
aiosqlite on SQLite; ``--workers`` with a listening socket per worker, as ``roster serve``)
that answers

- ``POST /persons/find/`` with criteria and no groups, and
- ``GET /people?accountId=...&search=...`` (``limit``, ``offset``; no filters, no embeds)

with Roster's own SQL: the statements are built by Roster's own builders (auth, accounts,
persons, people/listing), compiled once per shape for asyncpg, and run with each
request's values bound. The API key is checked the same way (its digest looked up with
the client's reach, the scope required), the account must exist and be reachable, and the
JSON is Roster's (``row_json`` renders a ROW; a find's person has the same keys). Anything
else is answered 404 ``not_in_floor``: the floor is a yardstick, not a server.

What it leaves out is what the benchmark measures Roster's overhead by: the framework
(routing, dependency solving, middleware, validation models), SQLAlchemy's execution,
the pool's checkout bookkeeping, and every round trip Roster spends beyond its
statements (the floor takes one pooled connection per request and sends no BEGIN).

On SQLite the floor runs the statements through aiosqlite, the driver Roster uses, which
runs each on a thread of its connection: calling SQLite on the event loop would be less
work for one request at a time, but no server can do it, since a search's milliseconds
would stall every other request. The values SQLite gives are converted as SQLAlchemy
converts them (a UUID's hex, a flag's 0 or 1, a time's text), by the statement's own
result processors; asyncpg gives them converted.

``tests/test_bench.py`` checks that the floor's answers are Roster's, and the suite checks
every distinct call of a figure against both before timing them.

    python -m bench.floor --database-url postgresql://... --port 8100 --workers 2
    python -m bench.floor --database-url sqlite:///roster.db --port 8100 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs

import aiosqlite
import asyncpg
import orjson
from sqlalchemy import Select, make_url
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.sqlite.aiosqlite import dialect as aiosqlite_dialect
from sqlalchemy.engine import Dialect

from roster.api.people.models import row_json
from roster.core import accounts as account_core
from roster.core import auth
from roster.core import persons as person_core
from roster.core.matching import search_terms
from roster.core.people import listing
from roster.core.people.persona_rows import PersonaRow
from roster.db.backends import (
    SERVER_SETTINGS,
    SQLITE_PRAGMAS,
    Backend,
    backend_named,
    json_default,
)
from roster.db.plain import Plain, plain
from roster.errors import RosterError, as_is
from roster.settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

DIALECTS: dict[str, Dialect] = {
    "postgresql": asyncpg_dialect(),  # type: ignore[no-untyped-call]
    "sqlite": aiosqlite_dialect(),
}


def compiled(statement: Select[Any], dialect: Dialect) -> Plain:
    """A statement of Roster's as Roster's ``fetch_plain`` runs it (roster/db/plain.py)."""
    return plain(statement, dialect, converts=dialect.name == "sqlite")


class Connection(Protocol):
    async def fetch(self, statement: Plain, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """The rows of ``statement`` with these values, as Roster reads them."""
        ...


class Database(Protocol):
    def acquire(self, for_search: bool) -> AbstractAsyncContextManager[Connection]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class SearchStatements:
    """A search's statements for one shape of terms (listing.py's builders)."""

    gathered: Plain  # the count and the page's rows, as search_page reads them
    #: More than GATHER_FIRST matches: every match counted and the page walked from the
    #: ordered index, as search_page reads them then.
    counted: Plain


class Statements:
    """Roster's statements for one database, each compiled once (per shape)."""

    def __init__(self, backend: Backend, dialect: Dialect) -> None:
        self.backend, self.dialect = backend, dialect
        self.client_by_key = compiled(auth._CLIENT_BY_KEY, dialect)
        self.account_by_id = compiled(account_core._ACCOUNT_BY_ID, dialect)
        self._searches: dict[Any, SearchStatements] = {}
        self._finds: dict[tuple[tuple[str, ...], bool, bool], Plain] = {}

    def search(self, terms: tuple[str, ...]) -> SearchStatements:
        """Built with the first search of their shape's terms; every term's value is a
        parameter, bound by name per request."""
        shape = self.backend.search_shape(terms)
        if (found := self._searches.get(shape)) is None:
            found = self._searches[shape] = SearchStatements(
                *(
                    compiled(
                        listing._search_statement(self.backend, shape, terms, (), as_is, counted),
                        self.dialect,
                    )
                    for counted in (False, True)
                )
            )
        return found

    def find(self, names: tuple[str, ...], scoped: bool, reach_limited: bool) -> Plain:
        key = (names, scoped, reach_limited)
        if (found := self._finds.get(key)) is None:
            statement = person_core._find_statement(self.backend, names, scoped, reach_limited)
            found = self._finds[key] = compiled(statement, self.dialect)
        return found


class _Postgres:
    """Two asyncpg pools: finds' (PostgreSQL's default plan caching) and searches'
    (custom plans, as Roster's listings ask with ``plan_cache_mode``)."""

    def __init__(self, url: str, pool_size: int) -> None:
        self.url, self.pool_size = url.replace("postgresql+asyncpg://", "postgresql://"), pool_size
        self.pools: dict[bool, asyncpg.Pool] = {}

    async def start(self) -> None:
        for for_search, settings in ((False, {}), (True, {"plan_cache_mode": "force_custom_plan"})):
            made = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                server_settings={**SERVER_SETTINGS, **settings},
            )
            assert made is not None
            self.pools[for_search] = made

    async def stop(self) -> None:
        for pool in self.pools.values():
            await pool.close()

    @asynccontextmanager
    async def acquire(self, for_search: bool) -> AsyncIterator[Connection]:
        async with self.pools[for_search].acquire() as conn:
            yield _PostgresConnection(conn)


@dataclass(frozen=True)
class _PostgresConnection:
    conn: asyncpg.Connection

    async def fetch(self, statement: Plain, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await self.conn.fetch(statement.sql, *values)
        return rows


class _Sqlite:
    """aiosqlite connections, set up as Roster's (``SQLITE_PRAGMAS``), one per request."""

    def __init__(self, url: str, pool_size: int) -> None:
        self.path, self.pool_size = make_url(url).database or "", pool_size
        self.idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self.opened: list[aiosqlite.Connection] = []

    async def start(self) -> None:
        for _ in range(self.pool_size):
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in SQLITE_PRAGMAS:
                await conn.execute(pragma)
            self.opened.append(conn)
            self.idle.put_nowait(conn)

    async def stop(self) -> None:
        for conn in self.opened:
            await conn.close()

    @asynccontextmanager
    async def acquire(self, for_search: bool) -> AsyncIterator[Connection]:
        conn = await self.idle.get()
        try:
            yield _SqliteConnection(conn)
        finally:
            self.idle.put_nowait(conn)


@dataclass(frozen=True)
class _SqliteConnection:
    conn: aiosqlite.Connection

    async def fetch(self, statement: Plain, values: Sequence[Any]) -> Sequence[Sequence[Any]]:
        sql, sent = statement.bound(values)
        return statement.read(list(await self.conn.execute_fetchall(sql, sent)))


class Floor:
    """The ASGI app, on the database its URL names."""

    def __init__(self, database_url: str, pool_size: int, region: str) -> None:
        self.region = region
        if database_url.startswith("sqlite"):
            self.database: Database = _Sqlite(database_url, pool_size)
            self.statements = Statements(backend_named("sqlite"), DIALECTS["sqlite"])
        else:
            self.database = _Postgres(database_url, pool_size)
            self.statements = Statements(backend_named("postgresql"), DIALECTS["postgresql"])
        #: Searches found to match more than GATHER_FIRST rows (search_page keeps these).
        self.many_matches: set[tuple[str, tuple[str, ...]]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        header = headers.get(b"authorization", b"").decode("latin-1")
        try:
            if path == "/readyz":
                status, body = 200, b'{"status":"ready"}'
            elif method == "POST" and path in ("/persons/find/", "/persons/find"):
                status, body = await self.find(header, await read_body(receive))
            elif method == "GET" and path == "/people":
                status, body = await self.people(header, scope["query_string"])
            else:
                status, body = 404, error_body("not_in_floor", "The floor does not answer this.")
        except RosterError as error:
            status, body = error.status, error_body(error.type, error.message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.database.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.database.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def principal(self, conn: Connection, header: str) -> auth.Principal:
        """The client the header proves, as ``auth.authenticate`` finds an API key's."""
        _, credential = auth.parse_authorization(header)
        rows = await conn.fetch(self.statements.client_by_key, [auth.digest(credential)])
        principal = auth.principal_of(rows)
        principal.require("read")
        return principal

    async def find(self, header: str, raw: bytes) -> tuple[int, bytes]:
        sent = orjson.loads(raw)
        after = sent.pop("after-id", sent.pop("after_id", 1))
        criteria = person_core.PersonCriteria(**sent)
        async with self.database.acquire(for_search=False) as conn:
            principal = await self.principal(conn, header)
            keys = person_core._comparison_keys(criteria, self.region)
            if keys is None:
                return 404, error_body("not_found", "")
            reach = principal.account_ids
            statement = self.statements.find(tuple(keys), reach is not None, reach is not None)
            named: dict[str, Any] = {**keys, "after": after, "limit": person_core.PAGE_SIZE + 1}
            if reach is not None:
                named["scope"] = named["reach"] = sorted(reach)
            rows = await conn.fetch(statement, statement.values(named))
        records = person_core._group_rows(rows)
        if not records:
            return 404, error_body("not_found", "")
        more = len(records) > person_core.PAGE_SIZE
        records = records[: person_core.PAGE_SIZE]
        answer = {
            "last_id": records[-1].seq if more else -1,
            "persons": [
                {
                    "identifier": str(r.id),
                    "first_name": r.first_name,
                    "last_name": r.last_name,
                    "email_address": r.email_address,
                    "phone_number": r.phone_number,
                    "external_ref": r.external_ref,
                    "group_ids": list(r.group_ids),
                }
                for r in records
            ],
        }
        return 200, orjson.dumps(answer)

    async def people(self, header: str, query_string: bytes) -> tuple[int, bytes]:
        given = {
            k: v[-1] for k, v in parse_qs(query_string.decode(), keep_blank_values=True).items()
        }
        account_id = given.pop("accountId", "")
        search = given.pop("search", None)
        limit, offset = int(given.pop("limit", 100)), int(given.pop("offset", 0))
        if given or not search_terms(search):
            return 404, error_body("not_in_floor", "Only searches, with limit and offset.")
        terms = tuple(search_terms(search))
        statements = self.statements.search(terms)
        named = {
            "account_id": account_id,
            "offset": offset,
            "limit": limit,
            **self.statements.backend.search_parameters(terms),
        }
        async with self.database.acquire(for_search=True) as conn:
            principal = await self.principal(conn, header)
            account = self.statements.account_by_id
            if not principal.can_reach(account_id) or not await conn.fetch(
                account, account.values(named)
            ):
                return 404, error_body("account_not_found", "")
            many = (account_id, tuple(sorted(terms)))
            counted = many in self.many_matches
            statement = statements.counted if counted else statements.gathered
            found = await conn.fetch(statement, statement.values(named))
            if found[0][0] > listing.GATHER_FIRST and not counted:
                self.many_matches.add(many)  # as search_page: counted, the page walked
                statement = statements.counted
                found = await conn.fetch(statement, statement.values(named))
            count = found[0][0]
            rows = [row[1:] for row in found if row[1] is not None]
        head = {"limit": limit, "offset": offset, "count": count, "search": search}
        shown = b",".join(
            orjson.dumps(row_json(PersonaRow.of(row)), default=json_default) for row in rows
        )
        return 200, orjson.dumps(head)[:-1] + b',"rows":[' + shown + b"]}"


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"error": {"type": kind, "message": message}})


def app_from_environment() -> Floor:
    """The app each worker serves (uvicorn's factory), configured by FLOOR_* variables."""
    settings = Settings(_env_file=None, database_url=os.environ["FLOOR_DATABASE_URL"])
    return Floor(
        settings.database_url,
        int(os.environ.get("FLOOR_POOL_SIZE", "10")),
        settings.default_phone_region,
    )


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    from roster.listeners import FAIR_SHARING, WorkerListener, reserve, serve_on, supervise

    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pool-size", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ["FLOOR_DATABASE_URL"] = args.database_url
    os.environ["FLOOR_POOL_SIZE"] = str(args.pool_size)
    config = uvicorn.Config(
        "bench.floor:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    if args.workers > 1 and FAIR_SHARING:
        supervise(config, WorkerListener(args.host, args.port, config.backlog))
    else:
        serve_on(config, reserve(args.host, args.port, config.backlog))


if __name__ == "__main__":
    main()
