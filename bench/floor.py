"""The floor: the least work that gives the benchmark's finds and searches their answers.

A bare ASGI app (uvicorn with httptools and uvloop, asyncpg, orjson; ``--workers`` with a
listening socket per worker, as ``roster serve``) that answers

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

``tests/test_bench.py`` checks that the floor's answers are Roster's, and the suite checks
every distinct call of a figure against both before timing them.

    python -m bench.floor --database-url postgresql://... --port 8100 --workers 2
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import orjson
from sqlalchemy import Select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from roster.api.people.models import row_json
from roster.core import accounts as account_core
from roster.core import auth
from roster.core import persons as person_core
from roster.core.matching import search_terms
from roster.core.people import listing
from roster.core.people.persona_rows import PersonaRow
from roster.db.backends import SERVER_SETTINGS, backend_named, json_default
from roster.errors import RosterError, as_is
from roster.settings import Settings

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BACKEND = backend_named("postgresql")
DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
#: What a statement is built with where a request's values go, bound per request (by
#: name, or in place of these values where a builder gives a parameter no name).
ACCOUNT = "flooraccount"
TERMS = tuple(f"floorterm{letter}" for letter in "abcdefghijklmnopqrstuvwxyz")
LIMIT, OFFSET = 7_000_001, 7_000_002


@dataclass(frozen=True)
class Compiled:
    """A statement of Roster's, compiled once: its SQL (``$n`` placeholders) and, in order,
    each parameter's name and the value it was built with."""

    sql: str
    names: tuple[str, ...]
    built: tuple[Any, ...]

    @classmethod
    def of(cls, statement: Select[Any]) -> Compiled:
        compiled = statement.compile(dialect=DIALECT)
        names = tuple(compiled.positiontup or ())
        return cls(str(compiled), names, tuple(compiled.params[n] for n in names))

    def values(self, named: Mapping[str, Any], replaced: Mapping[Any, Any]) -> list[Any]:
        """The values of one request: a parameter bound by name from ``named``, else
        the value it was built with, or what ``replaced`` puts in its place."""
        return [
            named[name] if name in named else replaced.get(value, value) if value else value
            for name, value in zip(self.names, self.built, strict=True)
        ]


@dataclass(frozen=True)
class SearchStatements:
    """A search's statements for one number of terms (listing.py's builders)."""

    gathered: Compiled  # the count and the page's rows, as search_page reads them
    count: Compiled  # more than GATHER_FIRST matches: counted and paged as list_people does
    page: Compiled


#: Statements of every request, compiled at import.
CLIENT_BY_KEY = Compiled.of(auth._CLIENT_BY_KEY)
ACCOUNT_BY_ID = Compiled.of(account_core._ACCOUNT_BY_ID)
_searches: dict[int, SearchStatements] = {}
_finds: dict[tuple[tuple[str, ...], bool, bool], Compiled] = {}


def search_statements(terms: int) -> SearchStatements:
    if (found := _searches.get(terms)) is None:
        query = listing.PeopleQuery(limit=LIMIT, offset=OFFSET, search=" ".join(TERMS[:terms]))
        conditions = listing.conditions_of(BACKEND, ACCOUNT, query, [])
        many = listing.GATHER_FIRST + 1  # walk the ordered index, as list_people does
        shape = BACKEND.search_shape(TERMS[:terms])
        gathered = listing._search_statement(BACKEND, shape, TERMS[:terms], (), as_is)
        found = _searches[terms] = SearchStatements(
            Compiled.of(gathered),
            Compiled.of(listing.count_statement(conditions)),
            Compiled.of(listing.page_statement(conditions, query, many)),
        )
    return found


def find_statement(names: tuple[str, ...], scoped: bool, reach_limited: bool) -> Compiled:
    key = (names, scoped, reach_limited)
    if (found := _finds.get(key)) is None:
        statement = person_core._find_statement(BACKEND, names, scoped, reach_limited)
        found = _finds[key] = Compiled.of(statement)
    return found


class Floor:
    """The ASGI app: two pools, finds' (PostgreSQL's default plan caching) and searches'
    (custom plans, as Roster's listings ask with ``plan_cache_mode``)."""

    def __init__(self, database_url: str, pool_size: int, region: str) -> None:
        self.database_url = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self.pool_size = pool_size
        self.region = region
        self.finds: asyncpg.Pool | None = None
        #: Searches found to match more than GATHER_FIRST rows (search_page keeps these).
        self.many_matches: set[tuple[str, tuple[str, ...]]] = set()
        self.searches: asyncpg.Pool | None = None

    async def start(self) -> None:
        async def pool(**settings: str) -> asyncpg.Pool:
            made = await asyncpg.create_pool(
                self.database_url,
                min_size=1,
                max_size=self.pool_size,
                server_settings={**SERVER_SETTINGS, **settings},
            )
            assert made is not None
            return made

        self.finds = await pool()
        self.searches = await pool(plan_cache_mode="force_custom_plan")

    async def stop(self) -> None:
        for pool in (self.finds, self.searches):
            if pool is not None:
                await pool.close()

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
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def principal(self, conn: asyncpg.Connection, header: str) -> auth.Principal:
        """The client the header proves, as ``auth.authenticate`` finds an API key's."""
        _, credential = auth.parse_authorization(header)
        rows = await conn.fetch(CLIENT_BY_KEY.sql, auth.digest(credential))
        principal = auth.principal_of(rows)
        principal.require("read")
        return principal

    async def find(self, header: str, raw: bytes) -> tuple[int, bytes]:
        sent = orjson.loads(raw)
        after = sent.pop("after-id", sent.pop("after_id", 1))
        criteria = person_core.PersonCriteria(**sent)
        assert self.finds is not None
        async with self.finds.acquire() as conn:
            principal = await self.principal(conn, header)
            keys = person_core._comparison_keys(criteria, self.region)
            if keys is None:
                return 404, error_body("not_found", "")
            reach = principal.account_ids
            statement = find_statement(tuple(keys), reach is not None, reach is not None)
            named: dict[str, Any] = {**keys, "after": after, "limit": person_core.PAGE_SIZE + 1}
            if reach is not None:
                named["scope"] = named["reach"] = sorted(reach)
            rows = await conn.fetch(statement.sql, *statement.values(named, {}))
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
        terms = search_terms(search)
        statements = search_statements(len(terms))
        named = {
            "account_id": account_id,
            "offset": offset,
            "limit": limit,
            **BACKEND.search_parameters(terms),
        }
        replaced: dict[Any, Any] = {LIMIT: limit, OFFSET: offset}
        assert self.searches is not None
        async with self.searches.acquire() as conn:
            principal = await self.principal(conn, header)
            if not principal.can_reach(account_id) or not await conn.fetch(
                ACCOUNT_BY_ID.sql, *ACCOUNT_BY_ID.values(named, {})
            ):
                return 404, error_body("account_not_found", "")
            many = (account_id, tuple(sorted(terms)))
            found, count = [], listing.GATHER_FIRST + 1  # as search_page, known to be many
            if many not in self.many_matches:
                gathered = statements.gathered
                found = await conn.fetch(gathered.sql, *gathered.values(named, replaced))
                count = found[0][0]
            if count <= listing.GATHER_FIRST:
                rows = [row[1:] for row in found if row[1] is not None]
            else:
                self.many_matches.add(many)
                counting, paging = statements.count, statements.page
                count = await conn.fetchval(counting.sql, *counting.values(named, replaced))
                rows = await conn.fetch(paging.sql, *paging.values(named, replaced))
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
