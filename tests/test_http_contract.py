"""What every endpoint shares: the error shape, request ids, 405/413/415/500, health probes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from roster.api.app import create_app
from roster.settings import Settings
from tests.factories import Client, Directory


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    return await directory.client(["F50091"])


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient, caller: Client) -> None:
    for response in (
        await client.get("/healthz"),
        await client.post("/persons/find/", json={}, headers=caller.headers),
        await client.post("/persons/find/", json={}),
        await client.get("/no/such/path"),
    ):
        assert len(response.headers["x-request-id"]) >= 16


async def test_a_sent_request_id_is_echoed_and_a_hostile_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500
    assert len(hostile.headers["x-request-id"]) <= 128


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.get("/persons/find/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert "x-request-id" in response.headers


async def test_unknown_path_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_a_body_that_is_not_json_is_415(client: httpx.AsyncClient, caller: Client) -> None:
    for headers in (
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {},
    ):
        response = await client.post(
            "/persons/find/",
            content=b'{"first_name": "Ann"}',
            headers={**caller.headers, **headers},
        )
        assert response.status_code == 415, headers
        assert response.json()["error"]["type"] == "unsupported_media_type"


async def test_json_with_charset_and_suffix_types_is_accepted(
    client: httpx.AsyncClient, caller: Client
) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.roster+json"):
        response = await client.post(
            "/persons/find/",
            content=b"{}",
            headers={**caller.headers, "Content-Type": content_type},
        )
        assert response.status_code == 404, content_type  # valid request, nobody there
        assert response.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize("body", [b"{", b'{"first_name": }', b"\xff\xfe", b"", b"null"])
async def test_malformed_json_is_400(
    client: httpx.AsyncClient, caller: Client, body: bytes
) -> None:
    response = await client.post(
        "/persons/find/",
        content=body,
        headers={**caller.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


@pytest.fixture
async def small_limit_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_body_bytes": 2048}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://roster.test"
    ) as http:
        yield http
    await app.state.services.engine.dispose()


async def test_a_declared_body_over_the_limit_is_413(
    small_limit_client: httpx.AsyncClient,
) -> None:
    big = json.dumps({"first_name": "x" * 5000}).encode()
    response = await small_limit_client.post(
        "/persons/find/", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"


async def test_a_chunked_body_over_the_limit_is_413(
    small_limit_client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"first_name": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = await small_limit_client.post(
        "/persons/find/",
        content=chunks(),
        headers={"Content-Type": "application/json", "Authorization": "ApiKey rk_x"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"


async def test_a_fault_is_500_without_internals(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/explode", explode)
    response = await client.get("/explode", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "internal_error"
    assert "req-500" in error["message"]
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-500"


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}


async def test_readiness_is_503_when_the_database_cannot_be_reached(
    settings: Settings, tmp_path: object
) -> None:
    unreachable = settings.model_copy(
        update={"database_url": "postgresql://nobody@127.0.0.1:1/none"}
    )
    app = create_app(unreachable)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://roster.test"
    ) as http:
        response = await http.get("/readyz")
    await app.state.services.engine.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


@pytest.mark.parametrize(
    "unreachable_url",
    ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////nonexistent-dir/roster.db"],
)
async def test_an_unreachable_database_is_503_never_500(
    settings: Settings, unreachable_url: str
) -> None:
    app = create_app(settings.model_copy(update={"database_url": unreachable_url}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://roster.test"
    ) as http:
        response = await http.post(
            "/persons/find/", json={}, headers={"Authorization": "ApiKey rk_x"}
        )
    await app.state.services.engine.dispose()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["type"] == "service_unavailable"
    assert "Traceback" not in response.text
