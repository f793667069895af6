"""Each client's request budget: RateLimit-* headers, 429 with Retry-After, shared via Redis;
and each address's budget of failed authentications."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import coredis
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


@pytest.mark.parametrize("redis_url", [None, REDIS_URL], ids=["in process", "in Redis"])
async def test_concurrent_answers_each_carry_their_own_remaining(
    connect: Connect, caller: Client, redis_url: str | None
) -> None:
    """Counting and reading are one step: fifty requests at once are told fifty
    different counts (reading after counting told several of them others' counts)."""
    async with connect(rate_limit="1000/minute", redis_url=redis_url) as http:
        answers = await asyncio.gather(
            *(http.post("/persons/find/", json={}, headers=caller.headers) for _ in range(50))
        )
    # Any other answer says why (a 503 says whether the database was too busy or unreachable).
    assert {a.status_code for a in answers} == {404}, [
        a.text for a in answers if a.status_code != 404
    ]
    remaining = sorted(int(a.headers["ratelimit-remaining"]) for a in answers)
    assert remaining == list(range(950, 1000))


# -- failed authentications ------------------------------------------------------------


@asynccontextmanager
async def from_address(
    settings: Settings, address: str, **changes: object
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose every request comes from ``address``."""
    app = create_app(settings.model_copy(update=changes))
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
            yield http
    finally:
        await app.state.services.engine.dispose()


def _bad_key() -> dict[str, str]:
    return {"Authorization": f"ApiKey rk_{secrets.token_hex(16)}"}


async def _find(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/persons/find/", json={}, headers=headers)


async def _list(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await http.get("/people", params={"accountId": "F50091"}, headers=headers)


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["type"] == "rate_limited"
    assert "failed authentications" in error["message"]
    assert 0 < int(response.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    ("door", "invalid"), [(_find, 401), (_list, 403)], ids=["Persons API", "People API"]
)
async def test_guessing_keys_from_one_address_is_refused_once_over_its_budget(
    settings: Settings,
    caller: Client,
    door: Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]],
    invalid: int,
) -> None:
    async with (
        from_address(settings, "198.51.100.7", auth_failure_limit="3/minute") as guesser,
        from_address(settings, "198.51.100.8", auth_failure_limit="3/minute") as neighbour,
    ):
        guesses = [await door(guesser, _bad_key()) for _ in range(4)]
        assert [g.status_code for g in guesses[:3]] == [invalid] * 3  # each API's contract
        assert_refused(guesses[3])
        # The right key is refused too until the window ends: otherwise guessing goes on.
        assert_refused(await door(guesser, caller.headers))
        # Another address is not affected, and the client's own budget was not spent.
        served = await door(neighbour, caller.headers)
        assert served.status_code in (200, 404), served.text
        assert served.headers["ratelimit-remaining"] == str(100000 - 1)


async def test_forged_bearer_tokens_count_as_failures(settings: Settings, caller: Client) -> None:
    forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
    async with from_address(settings, "198.51.100.9", auth_failure_limit="2/minute") as http:
        answers = [await _find(http, forged) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [401, 401]
    assert_refused(answers[2])


async def test_missing_and_expired_credentials_are_not_guesses(
    settings: Settings, directory: Directory, caller: Client
) -> None:
    expired = {"Authorization": f"Bearer {await directory.expired_token(caller.client_id)}"}
    async with from_address(settings, "198.51.100.10", auth_failure_limit="1/minute") as http:
        answers = [await _find(http, {}) for _ in range(3)]
        answers += [await _find(http, expired) for _ in range(3)]
        answers.append(await _find(http, caller.headers))
    assert [a.status_code for a in answers] == [400] * 3 + [401] * 3 + [404]


async def test_guessing_client_secrets_at_the_token_endpoint_is_refused(
    settings: Settings, caller: Client
) -> None:
    def form(secret: str) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": caller.client_id,
            "client_secret": secret,
        }

    async with from_address(settings, "198.51.100.11", auth_failure_limit="2/minute") as http:
        answers = [await http.post("/oauth2/token", data=form("wrong")) for _ in range(3)]
        right = await http.post("/oauth2/token", data=form(caller.secret))
    assert [a.status_code for a in answers[:2]] == [401, 401]
    for refused in (answers[2], right):  # in the endpoint's own (RFC 6749) error shape
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "rate_limited"
        assert "failed authentications" in refused.json()["error_description"]
        assert 0 < int(refused.headers["retry-after"]) <= 60


async def test_failures_are_counted_across_servers_through_redis(
    settings: Settings, caller: Client
) -> None:
    address = f"2001:db8::{secrets.token_hex(2)}"
    redis = coredis.Redis.from_url(REDIS_URL)
    await redis.delete([f"roster:auth-failures:3/60:{address}"])  # an earlier run's
    shared = {"auth_failure_limit": "3/minute", "redis_url": REDIS_URL}
    async with (
        from_address(settings, address, **shared) as one,
        from_address(settings, address, **shared) as two,
    ):
        answers = [await _find(server, _bad_key()) for server in (one, two, one, two)]
    assert [a.status_code for a in answers[:3]] == [401] * 3
    assert_refused(answers[3])
