"""The service keeps its head when PostgreSQL or Redis go away, and recovers by itself."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from roster.api.app import create_app
from roster.core.accounts import create_account
from roster.core.auth import create_client
from roster.db.engine import create_engine, unit_of_work
from roster.db.migrate import upgrade
from roster.settings import Settings
from tests.servers import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[ThrowawayPostgres]:
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="roster-pg-"))
    server = ThrowawayPostgres(root)
    server.create()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


async def _serve(settings: Settings) -> tuple[object, httpx.AsyncClient, dict[str, str]]:
    engine = create_engine(settings)
    await upgrade(engine)
    async with unit_of_work(engine, write=True) as conn:
        await create_account(conn, f"F{time.monotonic_ns()}", "Faults")
        credentials = await create_client(conn, "faults", ["read"], None)
    await engine.dispose()
    app = create_app(settings)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://roster.test")
    return app, http, {"Authorization": f"ApiKey {credentials.api_key}"}


@pytest.fixture
async def on_private_postgres(
    private_postgres: ThrowawayPostgres,
) -> AsyncIterator[tuple[ThrowawayPostgres, httpx.AsyncClient, dict[str, str]]]:
    settings = Settings(_env_file=None, database_url=private_postgres.url, rate_limit="1000/second")
    app, http, headers = await _serve(settings)
    yield private_postgres, http, headers
    await http.aclose()
    await app.state.services.engine.dispose()  # type: ignore[attr-defined]


async def test_database_outage_is_503_and_service_resumes_without_restart(
    on_private_postgres: tuple[ThrowawayPostgres, httpx.AsyncClient, dict[str, str]],
) -> None:
    server, http, headers = on_private_postgres
    assert (await http.post("/persons/find/", json={}, headers=headers)).status_code == 404
    assert (await http.get("/readyz")).status_code == 200

    server.stop()
    during = [await http.post("/persons/find/", json={}, headers=headers) for _ in range(3)]
    assert [r.status_code for r in during] == [503, 503, 503]
    assert {r.json()["error"]["type"] for r in during} == {"service_unavailable"}
    assert (await http.get("/readyz")).status_code == 503
    assert (await http.get("/healthz")).status_code == 200

    server.start()
    deadline = time.monotonic() + 10
    statuses = []
    while time.monotonic() < deadline:
        status = (await http.post("/persons/find/", json={}, headers=headers)).status_code
        statuses.append(status)
        if status == 404:
            break
        await asyncio.sleep(0.2)
    assert statuses[-1] == 404, statuses
    assert set(statuses) <= {503, 404}
    assert (await http.get("/readyz")).status_code == 200


async def test_redis_outage_fails_open_and_shared_counting_resumes(
    settings: Settings, private_redis: ThrowawayRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roster.api import ratelimit

    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 0.2)
    shared = settings.model_copy(
        update={"rate_limit": "1000/minute", "redis_url": private_redis.url}
    )
    app, http, headers = await _serve(shared)
    try:

        def remaining(response: httpx.Response) -> int:
            assert response.status_code == 404, response.text
            return int(response.headers["ratelimit-remaining"])

        before = [
            remaining(await http.post("/persons/find/", json={}, headers=headers)) for _ in range(3)
        ]
        assert before == [999, 998, 997]  # counted in Redis

        private_redis.stop()
        during = [await http.post("/persons/find/", json={}, headers=headers) for _ in range(3)]
        assert [r.status_code for r in during] == [404, 404, 404]  # fail open: still served

        private_redis.start()  # a fresh Redis: it remembers nothing
        await asyncio.sleep(0.3)
        after = [
            remaining(await http.post("/persons/find/", json={}, headers=headers)) for _ in range(2)
        ]
        assert after == [999, 998]  # counting is shared (in Redis) again
    finally:
        await http.aclose()
        await app.state.services.engine.dispose()  # type: ignore[attr-defined]
