"""The Persons API's credential contract (seed 000) over every header form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from roster.core.auth import revoke_client
from roster.db.engine import unit_of_work
from tests.factories import Client, Directory, forged_jwt
from tests.factories import bearer_token as token_for

MISSING = (
    "Your request does not include an 'Authorization' header with a bearer token for your account."
)
INVALID = "The bearer token you have provided in the 'Authorization' header is invalid."
EXPIRED = (
    "The bearer token you have provided in the 'Authorization' header has expired. "
    "Please obtain a new one."
)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    await directory.person(["F50091"], external_ref="known")
    return await directory.client(["F50091"])


async def find_with(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/persons/find/", json={"external_ref": "known"}, headers=headers)


@pytest.mark.parametrize("header", [None, "", "   "])
async def test_missing_authorization_is_400(
    client: httpx.AsyncClient, caller: Client, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await find_with(client, headers)
    assert response.status_code == 400
    assert response.json() == {"error": {"type": "missing_authorization", "message": MISSING}}


async def test_every_header_form_authenticates(client: httpx.AsyncClient, caller: Client) -> None:
    token = await token_for(client, caller)
    for header in (
        f"Bearer {token}",
        f"bearer {token}",
        f"BEARER {token}",
        f"ApiKey {caller.api_key}",
        f"apikey {caller.api_key}",
        caller.api_key,
        f"Bearer {caller.api_key}",
    ):
        response = await find_with(client, {"Authorization": header})
        assert response.status_code == 200, (header[:12], response.text)
        assert response.json()["persons"][0]["external_ref"] == "known"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-token",
        "Bearer a.b.c",
        "ApiKey rk_wrong",
        "rk_wrong",
        "Basic dXNlcjpwYXNz",
        "Bearer two words",
    ],
)
async def test_invalid_credentials_are_401(
    client: httpx.AsyncClient, caller: Client, header: str
) -> None:
    response = await find_with(client, {"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {"error": {"type": "invalid_authorization", "message": INVALID}}


async def test_a_token_signed_with_another_key_is_invalid(
    client: httpx.AsyncClient, caller: Client
) -> None:
    forged = forged_jwt(
        {"sub": caller.client_id, "exp": datetime.now(UTC) + timedelta(hours=1)},
        "a key that is not the instance key at all",
    )
    response = await find_with(client, {"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_authorization"


async def test_an_expired_token_is_401_expired_token(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    expired = await directory.expired_token(caller.client_id)
    response = await find_with(client, {"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json() == {"error": {"type": "expired_token", "message": EXPIRED}}


async def test_revocation_rejects_keys_and_tokens_from_the_next_request(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    token = await token_for(client, caller)
    found = await find_with(client, {"Authorization": f"Bearer {token}"})
    assert [p["external_ref"] for p in found.json()["persons"]] == ["known"], found.text
    async with unit_of_work(directory.engine, write=True) as conn:
        await revoke_client(conn, caller.client_id)
    for header in (f"Bearer {token}", f"ApiKey {caller.api_key}"):
        response = await find_with(client, {"Authorization": header})
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "invalid_authorization"


async def test_a_client_without_read_scope_is_refused(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    writer = await directory.client(["F50091"], scopes=["write"])
    response = await find_with(client, writer.headers)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "insufficient_scope"
    upsert = await client.post(
        "/persons/multiple/",
        json={"persons": [{"external_ref": "x"}]},
        headers=(await directory.client(["F50091"], scopes=["read"])).headers,
    )
    assert upsert.status_code == 403
    assert upsert.json()["error"]["type"] == "insufficient_scope"


async def test_admin_scope_includes_read_and_write(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    admin = await directory.client(["F50091"], scopes=["admin"])
    found = await find_with(client, admin.headers)
    assert [p["external_ref"] for p in found.json()["persons"]] == ["known"], found.text
    written = await client.post(
        "/persons/multiple/",
        json={"persons": [{"external_ref": "by-admin", "group_ids": ["F50091"]}]},
        headers=admin.headers,
    )
    assert written.status_code == 200, written.text
    [entry] = written.json()["persons"]
    assert (entry["success"], entry["external_ref"], entry["group_ids"]) == (
        True,
        "by-admin",
        ["F50091"],
    )
