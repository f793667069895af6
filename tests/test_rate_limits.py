"""Each client's request budget: RateLimit-* headers, 429 with Retry-After, shared via Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from roster.api.app import create_app
from roster.settings import Settings
from tests.factories import Client, Directory

REDIS_URL = "redis://127.0.0.1:6379/0"

Connect = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def connect(settings: Settings) -> Connect:
    """Start another app on the same database, with other rate-limit settings."""

    @asynccontextmanager
    async def start(**changes: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings.model_copy(update=changes))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
            yield http
        await app.state.services.engine.dispose()

    return start


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    return await directory.client(["F50091"])


async def test_every_answer_carries_the_budget_and_the_excess_is_429(
    connect: Connect, caller: Client
) -> None:
    async with connect(rate_limit="3/minute") as http:
        answers = [
            await http.post("/persons/find/", json={}, headers=caller.headers) for _ in range(4)
        ]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert {a.headers["ratelimit-limit"] for a in answers} == {"3"}
    assert all(0 < int(a.headers["ratelimit-reset"]) <= 60 for a in answers)
    refused = answers[-1]
    assert refused.json()["error"]["type"] == "rate_limited"
    assert 0 < int(refused.headers["retry-after"]) <= 60


async def test_budgets_are_per_client(
    connect: Connect, directory: Directory, caller: Client
) -> None:
    other = await directory.client(["F50091"])
    async with connect(rate_limit="1/minute") as http:
        first = await http.post("/persons/find/", json={}, headers=caller.headers)
        second = await http.post("/persons/find/", json={}, headers=caller.headers)
        others = await http.post("/persons/find/", json={}, headers=other.headers)
    assert (first.status_code, second.status_code, others.status_code) == (404, 429, 404)


async def test_two_servers_share_one_budget_through_redis(connect: Connect, caller: Client) -> None:
    async with (
        connect(rate_limit="4/minute", redis_url=REDIS_URL) as one,
        connect(rate_limit="4/minute", redis_url=REDIS_URL) as two,
    ):
        statuses = []
        for server in (one, two, one, two, one):
            answer = await server.post("/persons/find/", json={}, headers=caller.headers)
            statuses.append(answer.status_code)
    assert statuses == [404, 404, 404, 404, 429]


async def test_an_unreachable_redis_fails_open_and_is_logged(
    connect: Connect, caller: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="roster.ratelimit")
    async with connect(rate_limit="2/minute", redis_url="redis://127.0.0.1:1/0") as http:
        statuses = [
            (await http.post("/persons/find/", json={}, headers=caller.headers)).status_code
            for _ in range(3)
        ]
    # Served while Redis is away, still counted (locally) so the budget holds.
    assert statuses == [404, 404, 429]
    assert any("unreachable" in r.getMessage() for r in caplog.records)
