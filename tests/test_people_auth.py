"""The People API's credential contract, scopes and account reach, on every endpoint."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from roster.core.auth import revoke_client
from roster.db.engine import unit_of_work
from tests.factories import Client, Directory, bearer_token

ACCOUNT = "F50091"
SOME_ID = str(uuid.uuid4())

#: Every endpoint of the People API: method, path, JSON body (None: no body), scope needed.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", f"/people?accountId={ACCOUNT}", None, "read"),
    (
        "POST",
        "/people",
        {"accountId": ACCOUNT, "firstName": "A", "lastName": "B", "roleName": "User"},
        "write",
    ),
    ("PATCH", f"/people/{SOME_ID}?accountId={ACCOUNT}", {"title": "Dr"}, "write"),
    ("PATCH", f"/personas/{SOME_ID}?accountId={ACCOUNT}", {"jobTitle": "Buyer"}, "write"),
    ("PATCH", f"/personas/{SOME_ID}/role?accountId={ACCOUNT}", {"roleName": "Admin"}, "write"),
    ("DELETE", f"/personas/{SOME_ID}?accountId={ACCOUNT}", None, "write"),
    ("GET", f"/roles?accountId={ACCOUNT}", None, "read"),
    ("POST", "/roles", {"accountId": ACCOUNT, "name": "Buyer"}, "write"),
    ("GET", f"/teams?accountId={ACCOUNT}", None, "read"),
    ("POST", "/teams", {"accountId": ACCOUNT, "name": "Red"}, "write"),
    ("PUT", f"/teams/{SOME_ID}/members/{SOME_ID}?accountId={ACCOUNT}", None, "write"),
    ("DELETE", f"/teams/{SOME_ID}/members/{SOME_ID}?accountId={ACCOUNT}", None, "write"),
    ("GET", f"/budgets?accountId={ACCOUNT}", None, "read"),
    ("POST", "/budgets", {"accountId": ACCOUNT, "name": "Pot", "type": "shared"}, "write"),
    (
        "POST",
        f"/addresses?accountId={ACCOUNT}",
        {
            "personaId": SOME_ID,
            "type": "home",
            "addressLine1": "1 Road",
            "city": "London",
            "postcode": "N1",
            "country": "GB",
        },
        "write",
    ),
]
IDS = [f"{method} {path.split('?')[0]}" for method, path, _, _ in ENDPOINTS]


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account("OTHER")
    return await directory.client([ACCOUNT])


async def call(
    client: httpx.AsyncClient,
    endpoint: tuple[str, str, dict[str, Any] | None, str],
    headers: dict[str, str],
    account: str = ACCOUNT,
) -> httpx.Response:
    method, path, body, _ = endpoint
    path = path.replace(ACCOUNT, account)
    if body is not None and "accountId" in body:
        body = {**body, "accountId": account}
    return await client.request(method, path, json=body, headers=headers)


def error_of(response: httpx.Response) -> str:
    return str(response.json()["error"]["type"])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
async def test_a_missing_credential_is_401(
    client: httpx.AsyncClient, caller: Client, endpoint: tuple[str, str, Any, str]
) -> None:
    for headers in ({}, {"Authorization": ""}):
        response = await call(client, endpoint, headers)
        assert (response.status_code, error_of(response)) == (401, "missing_authorization")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
async def test_an_invalid_credential_is_403(
    client: httpx.AsyncClient, caller: Client, endpoint: tuple[str, str, Any, str]
) -> None:
    for header in ("Bearer not-a-token", "ApiKey rk_wrong", "rk_wrong", "Basic dXNlcjpwYXNz"):
        response = await call(client, endpoint, {"Authorization": header})
        assert (response.status_code, error_of(response)) == (403, "invalid_authorization")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
async def test_a_missing_scope_is_403(
    client: httpx.AsyncClient,
    directory: Directory,
    caller: Client,
    endpoint: tuple[str, str, Any, str],
) -> None:
    other_scope = "write" if endpoint[3] == "read" else "read"
    lacking = await directory.client([ACCOUNT], scopes=[other_scope])
    response = await call(client, endpoint, lacking.headers)
    assert (response.status_code, error_of(response)) == (403, "insufficient_scope")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
async def test_an_unknown_or_unreachable_account_is_404(
    client: httpx.AsyncClient, caller: Client, endpoint: tuple[str, str, Any, str]
) -> None:
    for account in ("NOPE", "OTHER"):
        response = await call(client, endpoint, caller.headers, account)
        assert (response.status_code, error_of(response)) == (404, "account_not_found")


async def test_an_expired_token_is_401_and_a_revoked_client_403(
    client: httpx.AsyncClient, app: FastAPI, directory: Directory, caller: Client
) -> None:
    expired = await directory.expired_token(caller.client_id)
    response = await call(client, ENDPOINTS[0], {"Authorization": f"Bearer {expired}"})
    assert (response.status_code, error_of(response)) == (401, "expired_token")

    await directory.person([ACCOUNT], first_name="Ann", last_name="Lee")
    await directory.person(["OTHER"], first_name="Otto", last_name="Lee")
    token = await bearer_token(client, caller)
    for header in (
        f"Bearer {token}",
        f"bearer {token}",
        f"ApiKey {caller.api_key}",
        caller.api_key,
    ):
        response = await call(client, ENDPOINTS[0], {"Authorization": header})
        assert response.status_code == 200, (header[:8], response.text)
        assert [r["firstName"] for r in response.json()["rows"]] == ["Ann"]
    async with unit_of_work(directory.engine, write=True) as conn:
        await revoke_client(conn, caller.client_id)
    for header in (f"Bearer {token}", f"ApiKey {caller.api_key}"):
        response = await call(client, ENDPOINTS[0], {"Authorization": header})
        assert (response.status_code, error_of(response)) == (403, "invalid_authorization")


async def test_admin_scope_and_every_account_reach(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    admin = await directory.client(None, scopes=["admin"])
    for account, name in ((ACCOUNT, "Ann"), ("OTHER", "Otto")):
        await directory.person([account], first_name=name, last_name="Lee")
        listing = await call(client, ENDPOINTS[0], admin.headers, account)  # read
        assert listing.status_code == 200, listing.text
        assert [r["firstName"] for r in listing.json()["rows"]] == [name]
        role = await call(client, ENDPOINTS[7], admin.headers, account)  # write
        assert role.status_code == 201, role.text
        assert (role.json()["accountId"], role.json()["name"]) == (account, "Buyer")


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e[2] is not None], ids=str)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, caller: Client, endpoint: tuple[str, str, Any, str]
) -> None:
    method, path, body, _ = endpoint
    response = await client.request(
        method,
        path,
        content=str(body).encode(),
        headers={**caller.headers, "Content-Type": "text/plain"},
    )
    assert (response.status_code, error_of(response)) == (415, "unsupported_media_type")


async def test_wrong_method_is_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.put("/people")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    response = await client.get(f"/personas/{SOME_ID}")
    assert response.status_code == 405
    assert response.headers["allow"] == "PATCH, DELETE"


async def test_every_endpoint_is_documented_with_its_errors(app: FastAPI) -> None:
    paths = app.openapi()["paths"]
    for method, path, _, _ in ENDPOINTS:
        template = path.split("?")[0].replace(SOME_ID, "{x}")
        [documented] = [
            spec
            for name, spec in paths.items()
            if name.count("/") == template.count("/")
            and all(
                a == b or b.startswith("{")
                for a, b in zip(template.split("/"), name.split("/"), strict=True)
            )
        ]
        operation = documented[method.lower()]
        assert operation["summary"]
        assert operation.get("description")
        assert {"400", "401", "403", "404", "429"} <= set(operation["responses"])
        # Malformed requests are 400 here; 422 is only ever a broken business rule.
        unprocessable = operation["responses"].get("422", {}).get("description", "")
        assert unprocessable in ("", "A business rule the request breaks (unprocessable)")
    assert "422" in paths["/budgets"]["post"]["responses"]
    assert "422" not in paths["/people"]["get"]["responses"]
    people = paths["/people"]["get"]
    names = {p["name"] for p in people["parameters"]}
    assert names == {
        "accountId",
        "limit",
        "offset",
        "search",
        "include",
        "status",
        "teams",
        "roles",
        "roleNames",
        "people",
        "withoutIndividualBudget",
        "budgetId",
    }
