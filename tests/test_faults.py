"""The service keeps its head when its database or Redis go away, and recovers by itself.

Faults happen here the way they happen in production, on a PostgreSQL cluster of this
module's own: the server stopped (``pg_ctl stop -m immediate``) and started again,
Roster's connections killed (``pg_terminate_backend``), statements held past their
timeout by another connection's lock; and SQLite's write lock held by another process.
No test calls /readyz or retries on the service's behalf: it must recover by itself.

Each door (each path by which a request reaches the database first: the raw asyncpg
finds and logins, SQLAlchemy's reads, streams and writes) has an app and a connection
pool of its own, so that one door's recovery cannot hide another's.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from bench.server import serve
from roster.api.app import create_app
from roster.db.engine import create_engine
from roster.db.migrate import upgrade
from roster.settings import Settings
from tests.commands import succeeds
from tests.factories import Client, Directory, bearer_token
from tests.servers import ThrowawayPostgres, ThrowawayRedis, throwaway_postgres

pytestmark = pytest.mark.slow

#: Every door serves again within this many seconds of the database answering.
RECOVERY_SECONDS = 2.0


async def _migrate(database_url: str) -> None:
    engine = create_engine(Settings(_env_file=None, database_url=database_url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server:
        asyncio.run(_migrate(server.url))
        yield server


@pytest.fixture
def private_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


# -- the doors -------------------------------------------------------------------------


@dataclass
class Seeded:
    """One door's account, client and person."""

    account: str
    caller: Client
    email: str
    bearer: dict[str, str] = field(default_factory=dict)


Send = Callable[[httpx.AsyncClient, Seeded], Awaitable[httpx.Response]]


async def _find(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    body = {"email_address": seeded.email}
    return await http.post("/persons/find/", json=body, headers=seeded.caller.headers)


async def _find_with_token(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    return await http.post(
        "/persons/find/", json={"email_address": seeded.email}, headers=seeded.bearer
    )


def _found(body: Any, seeded: Seeded) -> bool:
    return bool([p["email_address"] for p in body["persons"]] == [seeded.email])


async def _upsert(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    item = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email_address": seeded.email,
        "group_ids": [seeded.account],
    }
    return await http.post(
        "/persons/multiple/", json={"persons": [item]}, headers=seeded.caller.headers
    )


def _upserted(body: Any, seeded: Seeded) -> bool:
    [entry] = body["persons"]
    return bool(entry["success"] and entry["email_address"] == seeded.email)


async def _list(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    return await http.get(
        "/people", params={"accountId": seeded.account}, headers=seeded.caller.headers
    )


def _listed(body: Any, seeded: Seeded) -> bool:
    return bool(
        body["count"] >= 1 and seeded.email in {row["primaryEmailAddress"] for row in body["rows"]}
    )


async def _add_person(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    body = {
        "accountId": seeded.account,
        "firstName": "Ada",
        "lastName": "Byron",
        "roleName": "User",
    }
    return await http.post("/people", json=body, headers=seeded.caller.headers)


def _added(body: Any, _: Seeded) -> bool:
    return bool(body["lastName"] == "Byron" and body["id"])


async def _token(http: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": seeded.caller.client_id,
        "client_secret": seeded.caller.secret,
    }
    return await http.post("/oauth2/token", data=form)


def _issued(body: Any, _: Seeded) -> bool:
    return bool(body["access_token"] and body["token_type"] == "Bearer")


@dataclass(frozen=True)
class Door:
    send: Send
    status: int
    served: Callable[[Any, Seeded], bool]
    #: Whether it writes (SQLite: it needs the write lock).
    writes: bool


DOORS = {
    "POST /persons/find/": Door(_find, 200, _found, writes=False),
    "bearer token": Door(_find_with_token, 200, _found, writes=False),
    "POST /persons/multiple/": Door(_upsert, 200, _upserted, writes=True),
    "GET /people": Door(_list, 200, _listed, writes=False),
    "POST /people": Door(_add_person, 201, _added, writes=True),
    "POST /oauth2/token": Door(_token, 200, _issued, writes=True),
}


@dataclass
class Opened:
    """One door's own app, engine and client."""

    name: str
    door: Door
    http: httpx.AsyncClient
    seeded: Seeded

    async def send(self) -> httpx.Response:
        return await self.door.send(self.http, self.seeded)

    def is_served(self, response: httpx.Response) -> bool:
        if response.status_code != self.door.status:
            return False
        assert self.door.served(response.json(), self.seeded), (self.name, response.text)
        return True


@asynccontextmanager
async def open_doors(database_url: str, **settings: Any) -> AsyncIterator[list[Opened]]:
    """An app per door on ``database_url``, each with its own account and client."""
    opened: list[Opened] = []
    apps = []
    try:
        for number, (name, door) in enumerate(DOORS.items()):
            config = Settings(
                _env_file=None, database_url=database_url, rate_limit="100000/minute", **settings
            )
            app = create_app(config)
            apps.append(app)
            directory = Directory(app.state.services.engine, config)
            account = await directory.account(f"D{number}T{time.monotonic_ns()}")
            email = f"{account.lower()}@example.com"
            await directory.person([account], first_name="Ada", email_address=email)
            seeded = Seeded(account, await directory.client([account]), email)
            transport = httpx.ASGITransport(app=app)
            http = httpx.AsyncClient(transport=transport, base_url="http://roster.test")
            seeded.bearer = {"Authorization": f"Bearer {await bearer_token(http, seeded.caller)}"}
            opened.append(Opened(name, door, http, seeded))
        yield opened
    finally:
        for each in opened:
            await each.http.aclose()
        for app in apps:
            await app.state.services.engine.dispose()
            await app.state.services.listing_engine.dispose()


async def all_served(opened: list[Opened], at_once: int = 4) -> None:
    """Each door serves ``at_once`` concurrent requests (which fills its pool)."""
    for each in opened:
        responses = await asyncio.gather(*(each.send() for _ in range(at_once)))
        assert all(each.is_served(r) for r in responses), [
            (each.name, r.status_code, r.text) for r in responses
        ]


def assert_unavailable(response: httpx.Response, name: str) -> None:
    """A 503 in the error shape, saying when to retry."""
    assert response.status_code == 503, (name, response.status_code, response.text)
    assert response.headers["retry-after"] == "1", name
    assert response.json()["error"]["type"] == "service_unavailable", (name, response.text)


async def seconds_to_recovery(opened: list[Opened], since: float) -> dict[str, float]:
    """Each door asked every 50 ms until it serves: how long that took from ``since``.
    Until then it must answer 503, nothing else."""
    pending = {each.name: each for each in opened}
    took: dict[str, float] = {}
    seen: dict[str, list[int]] = {name: [] for name in pending}
    while pending and time.monotonic() < since + 30:
        asked = list(pending.values())
        answers = await asyncio.gather(*(each.send() for each in asked))
        for each, response in zip(asked, answers, strict=True):
            seen[each.name].append(response.status_code)
            if each.is_served(response):
                took[each.name] = round(time.monotonic() - since, 3)
                del pending[each.name]
            else:
                assert_unavailable(response, each.name)
        await asyncio.sleep(0.05)
    assert not pending, seen
    return took


# -- recovery --------------------------------------------------------------------------


async def test_every_door_answers_503_while_postgres_is_down_and_recovers_by_itself(
    private_postgres: ThrowawayPostgres,
) -> None:
    async with open_doors(private_postgres.url) as opened:
        await all_served(opened)

        await asyncio.to_thread(private_postgres.stop)
        for each in opened:
            for _ in range(2):
                assert_unavailable(await each.send(), each.name)

        await asyncio.to_thread(private_postgres.start)  # returns once it accepts connections
        took = await seconds_to_recovery(opened, time.monotonic())
        print(f"\nseconds to recovery after a restart: {took}")
        assert max(took.values()) < RECOVERY_SECONDS, took
        await all_served(opened)


async def _kill_roster_connections(server: ThrowawayPostgres) -> int:
    admin = await asyncpg.connect(server.url)
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'roster' AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return killed


async def test_every_door_recovers_by_itself_after_its_connections_are_killed(
    private_postgres: ThrowawayPostgres,
) -> None:
    async with open_doors(private_postgres.url) as opened:
        await all_served(opened)

        assert await _kill_roster_connections(private_postgres) >= len(opened)
        took = await seconds_to_recovery(opened, time.monotonic())
        print(f"\nseconds to recovery after killed connections: {took}")
        assert max(took.values()) < RECOVERY_SECONDS, took
        await all_served(opened)


# -- statement timeouts and locks ------------------------------------------------------


@asynccontextmanager
async def postgres_lock(server: ThrowawayPostgres, *tables: str) -> AsyncIterator[None]:
    """Another session holding ``tables`` exclusively: every statement on them waits."""
    holder = await asyncpg.connect(server.url)
    transaction = holder.transaction()
    await transaction.start()
    try:
        await holder.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        await transaction.rollback()
        await holder.close()


@asynccontextmanager
async def search_column_renamed(server: ThrowawayPostgres) -> AsyncIterator[None]:
    """The search column renamed away, then back: a search meets an error of the
    database that is no outage (a 500, logged with its exception), its statement carrying
    the client's terms. (A NUL in a search used to be such an error; it is refused before
    the database now.)"""
    holder = await asyncpg.connect(server.url)
    try:
        await holder.execute("ALTER TABLE personas RENAME COLUMN search_text TO search_text_gone")
        yield
    finally:
        await holder.execute("ALTER TABLE personas RENAME COLUMN search_text_gone TO search_text")
        await holder.close()


def assert_busy(response: httpx.Response, name: str) -> None:
    assert_unavailable(response, name)
    assert "too busy" in response.json()["error"]["message"], (name, response.text)


async def test_a_statement_past_its_timeout_is_503_at_every_door(
    private_postgres: ThrowawayPostgres,
) -> None:
    async with open_doors(private_postgres.url, database_statement_timeout_seconds=0.3) as opened:
        await all_served(opened)

        # The directory's own tables: every door but the token endpoint reads them.
        async with postgres_lock(private_postgres, "persons", "personas"):
            for each in opened:
                if each.name != "POST /oauth2/token":
                    assert_busy(await each.send(), each.name)
        # The clients' table: every door authenticates against it first.
        async with postgres_lock(private_postgres, "api_clients"):
            for each in opened:
                assert_busy(await each.send(), each.name)

        await all_served(opened)  # a cancelled statement leaves its connection usable


async def test_sqlites_write_lock_held_past_the_busy_timeout_is_503(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    await _migrate(f"sqlite:///{path}")
    # Served, each door's four requests at once queue for SQLite's one write lock: the
    # timeout must outlast three writes ahead on a loaded machine (0.3 s did not, once).
    async with open_doors(f"sqlite:///{path}", database_statement_timeout_seconds=1.0) as opened:
        await all_served(opened)

        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
            for each in opened:
                response = await each.send()
                if each.door.writes:
                    assert_busy(response, each.name)
                else:  # readers do not wait for a writer (WAL)
                    assert each.is_served(response), (each.name, response.text)
        finally:
            holder.rollback()
            holder.close()

        await all_served(opened)


# -- a page cut short ------------------------------------------------------------------

#: People in the big account: a page of them (about 20 MB) is more than the sockets buffer.
BIG_ACCOUNT_PEOPLE = 30_000


@pytest.fixture(scope="module")
def big_account(
    private_postgres: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """An account of many people on the private cluster, and a key that reads it."""
    url = private_postgres.url
    people = tmp_path_factory.mktemp("big") / "people.csv"
    with people.open("w") as out:
        out.write("first_name,last_name,email_address,phone_number,external_ref\n")
        for n in range(BIG_ACCOUNT_PEOPLE):
            out.write(f"Person{n},Surname{n % 977},person{n}@big.example,,\n")
    succeeds(url, "accounts", "create", "BIG", "--name", "Big")
    succeeds(url, "import", str(people), "--account", "BIG")
    made = orjson.loads(
        succeeds(url, "clients", "create", "--name", "big", "--account", "BIG", "--json")
    )
    return {"Authorization": f"ApiKey {made['api_key']}"}


def test_a_page_cut_short_by_the_database_fails_visibly(
    private_postgres: ThrowawayPostgres, big_account: dict[str, str], tmp_path: Path
) -> None:
    """The answer has begun (200, chunked) when Roster's connections are killed: the
    client's read must fail, never end in a well-formed short page."""
    with (
        serve(private_postgres.url, workers=1, log_dir=tmp_path) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
        http.stream(
            "GET", "/people", params={"accountId": "BIG", "limit": 100000}, headers=big_account
        ) as response,
    ):
        assert response.status_code == 200
        pieces = response.iter_bytes()
        received = [next(pieces)]
        assert asyncio.run(_kill_roster_connections(private_postgres)) >= 1
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            received.extend(pieces)
    body = b"".join(received)
    assert body.startswith(b'{"limit":100000,"offset":0,"count":30000,')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


# -- nothing a client sent in the logs ---------------------------------------------------


def _leaky_requests(http: httpx.Client, account: str, key: str, mark: str) -> list[int]:
    """Requests carrying ``mark`` in every kind of value a client sends: emails, phones,
    names, search terms, keys, client ids and secrets. Their statuses."""
    good = {"Authorization": f"ApiKey {key}"}
    sent = [
        http.post(
            "/persons/find/",
            json={
                "email_address": f"{mark}@leak.example",
                "phone_number": "+44 7700 900" + mark[-3:],
            },
            headers=good,
        ),
        http.post("/persons/find/", json={"first_name": mark, "last_name": mark}, headers=good),
        http.get("/people", params={"accountId": account, "search": mark}, headers=good),
        http.post(
            "/people",
            json={
                "accountId": account,
                "firstName": mark,
                "lastName": mark,
                "emailAddress": f"{mark}@leak.example",
                "roleName": "User",
            },
            headers=good,
        ),
        http.post(
            "/persons/multiple/",
            json={
                "persons": [
                    {
                        "first_name": mark,
                        "last_name": mark,
                        "external_ref": mark,
                        "group_ids": [account],
                    }
                ]
            },
            headers=good,
        ),
        http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": mark, "client_secret": mark},
        ),
        http.post(
            "/persons/find/",
            json={"last_name": "x"},
            headers={"Authorization": f"ApiKey rk_{mark}"},
        ),
        # A NUL beside the mark: refused before the database (400).
        http.get("/people", params={"accountId": account, "search": f"{mark}\x00"}, headers=good),
    ]
    return [response.status_code for response in sent]


def test_no_value_a_client_sent_reaches_the_logs(
    private_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    """Every log line of a real server (JSON, every logger) while requests carrying a
    distinctive value meet a stopped database, a statement timeout and a 500."""
    url = private_postgres.url
    mark = "zqleak" + str(time.monotonic_ns())[-9:]
    account = f"L{time.monotonic_ns()}"
    succeeds(url, "accounts", "create", account, "--name", "Logs")
    made = orjson.loads(
        succeeds(
            url,
            "clients",
            "create",
            "--name",
            "logs",
            "--account",
            account,
            "--scope",
            "read",
            "--scope",
            "write",
            "--json",
        )
    )
    env = {"ROSTER_LOG_LEVEL": "INFO", "ROSTER_DATABASE_STATEMENT_TIMEOUT_SECONDS": "0.3"}
    statuses: dict[str, list[int]] = {}
    with (
        serve(url, workers=1, log_dir=tmp_path, **env) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        statuses["served"] = _leaky_requests(http, account, made["api_key"], mark)

        async def broken() -> list[int]:
            async with search_column_renamed(private_postgres):
                return await asyncio.to_thread(
                    _leaky_requests, http, account, made["api_key"], mark
                )

        statuses["broken"] = asyncio.run(broken())

        async def locked() -> list[int]:
            async with postgres_lock(private_postgres, "persons", "personas"):
                return await asyncio.to_thread(
                    _leaky_requests, http, account, made["api_key"], mark
                )

        statuses["timed out"] = asyncio.run(locked())
        private_postgres.stop()
        try:
            statuses["down"] = _leaky_requests(http, account, made["api_key"], mark)
        finally:
            private_postgres.start()
    print(f"\nstatuses: {statuses}")
    assert 500 in statuses["broken"], statuses
    assert 503 in statuses["timed out"], statuses
    assert 503 in statuses["down"], statuses
    lines = server.log_path.read_text().splitlines()
    logged = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert any("exception" in line for line in logged), "no error path was logged"
    leaked = [line for line in lines if mark in line or mark[-9:] in line]
    assert not leaked, leaked


# -- Redis -----------------------------------------------------------------------------


async def test_redis_outage_fails_open_and_shared_counting_resumes(
    settings: Settings, private_redis: ThrowawayRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roster.api import ratelimit

    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 0.2)
    shared = settings.model_copy(
        update={"rate_limit": "1000/minute", "redis_url": private_redis.url}
    )
    app = create_app(shared)
    directory = Directory(app.state.services.engine, shared)
    account = await directory.account(f"R{time.monotonic_ns()}")
    headers = (await directory.client([account])).headers
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://roster.test")
    try:

        def remaining(response: httpx.Response) -> int:
            assert response.status_code == 404, response.text
            return int(response.headers["ratelimit-remaining"])

        async def find() -> httpx.Response:
            return await http.post("/persons/find/", json={"last_name": "Nobody"}, headers=headers)

        before = [remaining(await find()) for _ in range(3)]
        assert before == [999, 998, 997]  # counted in Redis

        private_redis.stop()
        during = [await find() for _ in range(3)]
        assert [r.status_code for r in during] == [404, 404, 404]  # fail open: still served

        private_redis.start()  # a fresh Redis: it remembers nothing
        await asyncio.sleep(0.3)
        after = [remaining(await find()) for _ in range(2)]
        assert after == [999, 998]  # counting is shared (in Redis) again
    finally:
        await http.aclose()
        await app.state.services.engine.dispose()
        await app.state.services.listing_engine.dispose()
