"""Shared fixtures: every database test runs once on SQLite and once on PostgreSQL.

PostgreSQL comes from ``ROSTER_TEST_POSTGRES_URL`` (default: the local server as
user ``postgres``). Each session creates its own database there and drops it at
the end. If PostgreSQL cannot be reached, its half of the suite is skipped and the
summary says so in capitals; with ``CI=true`` the run fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from roster.api.app import create_app
from roster.db.engine import create_engine
from roster.db.migrate import upgrade
from roster.settings import Settings
from tests.factories import Directory, reset_database

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
BACKENDS = ("sqlite", "postgresql")
_postgres_problem: str | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _create_postgres_database(admin_url: str) -> str:
    url = make_url(admin_url)
    name = f"roster_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(
        admin_url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5
    )
    try:
        await admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_postgres_database(admin_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _migrate(database_url: str) -> None:
    engine = create_engine(Settings(database_url=database_url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'roster.db'}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    global _postgres_problem
    admin_url = os.environ.get("ROSTER_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    try:
        url = asyncio.run(_create_postgres_database(admin_url))
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        _postgres_problem = f"PostgreSQL at {admin_url} cannot be reached: {error}"
        if _in_ci():
            pytest.exit(f"{_postgres_problem} (CI=true: the PostgreSQL half is required)", 1)
        pytest.skip(_postgres_problem)
    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_drop_postgres_database(admin_url, url))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for one test, independent of the environment the suite runs in."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        token_ttl_seconds=3600,
        default_phone_region="GB",
        rate_limit="100000/minute",
        auth_failure_limit="100000/minute",
        redis_url=None,
        secret_key=None,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    await reset_database(application.state.services.engine)
    yield application
    await application.state.services.engine.dispose()
    await application.state.services.listing_engine.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
        yield http


@pytest.fixture
def directory(app: object, settings: Settings) -> Directory:
    """Factories that write through the core, on the app's own database."""
    return Directory(app.state.services.engine, settings)  # type: ignore[attr-defined]


def emptied(database_url: str, **settings: Any) -> str:
    """A test database with its tables emptied (as after a fresh migration); ``settings``:
    how to reach it (``database_pooler="transaction"`` through PgBouncer)."""

    async def reset() -> None:
        engine = create_engine(Settings(_env_file=None, database_url=database_url, **settings))
        try:
            await reset_database(engine)
        finally:
            await engine.dispose()

    asyncio.run(reset())
    return database_url


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    admin = os.environ.get("ROSTER_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    try:
        url = asyncio.run(_create_postgres_database(admin))
    except (OSError, TimeoutError) as error:
        pytest.skip(f"PostgreSQL cannot be reached: {error}")
    yield url
    asyncio.run(_drop_postgres_database(admin, url))


@pytest.fixture
def fresh_database(database_url: str) -> str:
    """The backend's test database, emptied, for tests that drive the `roster` command."""
    return emptied(database_url)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _postgres_problem:
        terminalreporter.write_sep("!", "POSTGRESQL HALF SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_postgres_problem)
        terminalreporter.write_line(
            "Only the SQLite half of the suite ran. Start PostgreSQL (see DEVELOPERS.md) "
            "or set ROSTER_TEST_POSTGRES_URL."
        )
