"""ROSTER_CORS_ORIGINS: a page on an allowed origin can call Roster from a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from roster.api.app import create_app
from roster.settings import Settings
from tests.factories import Directory

ALLOWED = "https://app.example.com"
OTHER = "https://evil.example"


@pytest.fixture
async def browser(settings: Settings, app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that allows one origin (on the test's database)."""
    allowing = create_app(settings.model_copy(update={"cors_origins": (ALLOWED,)}))
    transport = httpx.ASGITransport(app=allowing)
    async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
        yield http
    await allowing.state.services.engine.dispose()


def preflight(origin: str, method: str = "GET") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_preflight_from_an_allowed_origin_allows_the_call(
    browser: httpx.AsyncClient,
) -> None:
    for path, method in (("/people", "GET"), ("/persons/find/", "POST"), ("/personas/x", "PATCH")):
        answer = await browser.options(path, headers=preflight(ALLOWED, method))
        assert answer.status_code == 200, (path, answer.text)
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        allowed_headers = answer.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers
        assert "content-type" in allowed_headers
        assert method in answer.headers["access-control-allow-methods"]
        assert answer.headers["x-request-id"]


async def zoe_listed(
    browser: httpx.AsyncClient, directory: Directory, account: str, **headers: str
) -> httpx.Response:
    """``GET /people`` of a new account whose one person is Zoë Lee, with ``headers``."""
    await directory.account(account)
    caller = await directory.client([account])
    await directory.person([account], first_name="Zoë", last_name="Lee")
    answer = await browser.get(
        "/people", params={"accountId": account}, headers={**headers, **caller.headers}
    )
    assert answer.status_code == 200, answer.text
    assert [p["firstName"] for p in answer.json()["rows"]] == ["Zoë"]
    return answer


async def test_an_allowed_origin_can_read_the_answer_and_its_headers(
    browser: httpx.AsyncClient, directory: Directory
) -> None:
    answer = await zoe_listed(browser, directory, "F50091", Origin=ALLOWED)
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    exposed = answer.headers["access-control-expose-headers"].lower().replace(" ", "")
    for header in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "x-request-id"):
        assert header in exposed.split(","), exposed
    assert answer.headers["ratelimit-remaining"]


async def test_other_origins_get_no_cors_headers(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    refused = await browser.options("/people", headers=preflight(OTHER))
    assert "access-control-allow-origin" not in refused.headers
    assert refused.status_code == 400
    answer = await browser.get(
        "/people", params={"accountId": "F50091"}, headers={"Origin": OTHER, **caller.headers}
    )
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.startswith("access-control-")]
    # Without ROSTER_CORS_ORIGINS (the default) no origin is allowed.
    default = await client.options("/people", headers=preflight(ALLOWED))
    assert not [h for h in default.headers if h.startswith("access-control-")]
    plain = await client.get(
        "/people", params={"accountId": "F50091"}, headers={"Origin": ALLOWED, **caller.headers}
    )
    assert not [h for h in plain.headers if h.startswith("access-control-")]


async def test_a_request_that_names_no_origin_is_answered_as_without_cors(
    browser: httpx.AsyncClient, directory: Directory
) -> None:
    # Servers and scripts send no Origin: with CORS on, they get the same answer as
    # without it, and no CORS header (a missing Origin was a 500 on Starlette 1.x).
    answer = await zoe_listed(browser, directory, "F50093")
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]
    health = await browser.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", ()),
        (
            "https://a.example, http://localhost:3000",
            ("https://a.example", "http://localhost:3000"),
        ),
        ("https://a.example/", ("https://a.example",)),
    ],
)
def test_origins_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("ROSTER_CORS_ORIGINS", given)
    assert Settings(_env_file=None).cors_origins == expected


def test_a_value_that_is_not_an_origin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROSTER_CORS_ORIGINS", "app.example.com")
    with pytest.raises(ValueError, match="is not an origin"):
        Settings(_env_file=None)
