"""POST /oauth2/token: the client-credentials grant and its RFC 6749 errors."""

from __future__ import annotations

import base64

import httpx
import pytest

from roster.core.auth import revoke_client
from roster.db.engine import unit_of_work
from tests.factories import Client, Directory


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    await directory.person(["F50091"], external_ref="known")
    return await directory.client(["F50091"])


def form(caller: Client, **changes: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": caller.client_id,
        "client_secret": caller.secret,
        **changes,
    }


async def finds_the_known_person(client: httpx.AsyncClient, token: str) -> None:
    """The token works: a find with it answers with the caller's person."""
    found = await client.post(
        "/persons/find/",
        json={"external_ref": "known"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert found.status_code == 200, found.text
    assert [p["external_ref"] for p in found.json()["persons"]] == ["known"]


async def test_form_credentials_give_a_working_bearer_token(
    client: httpx.AsyncClient, caller: Client
) -> None:
    response = await client.post("/oauth2/token", data=form(caller))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"
    await finds_the_known_person(client, body["access_token"])


async def test_http_basic_credentials_work_too(client: httpx.AsyncClient, caller: Client) -> None:
    basic = base64.b64encode(f"{caller.client_id}:{caller.secret}".encode()).decode()
    response = await client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    await finds_the_known_person(client, body["access_token"])


@pytest.mark.parametrize(
    "changes",
    [{"client_secret": "wrong"}, {"client_id": "cl_unknown"}],
)
async def test_wrong_credentials_are_invalid_client(
    client: httpx.AsyncClient, caller: Client, changes: dict[str, str]
) -> None:
    response = await client.post("/oauth2/token", data=form(caller, **changes))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert caller.secret not in response.text


async def test_a_revoked_client_gets_no_token(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    async with unit_of_work(directory.engine, write=True) as conn:
        await revoke_client(conn, caller.client_id)
    response = await client.post("/oauth2/token", data=form(caller))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_other_grants_are_unsupported(client: httpx.AsyncClient, caller: Client) -> None:
    response = await client.post("/oauth2/token", data=form(caller, grant_type="password"))
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("missing", ["grant_type", "client_id", "client_secret"])
async def test_missing_parameters_are_invalid_request(
    client: httpx.AsyncClient, caller: Client, missing: str
) -> None:
    data = form(caller)
    del data[missing]
    response = await client.post("/oauth2/token", data=data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_json_body_is_invalid_request(client: httpx.AsyncClient, caller: Client) -> None:
    response = await client.post("/oauth2/token", json=form(caller))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_json_body_is_told_to_send_a_form(
    client: httpx.AsyncClient, caller: Client
) -> None:
    response = await client.post("/oauth2/token", json=form(caller))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith(
        "Send a form-encoded body (application/x-www-form-urlencoded)"
    )
    assert "application/json" in body["error_description"]
