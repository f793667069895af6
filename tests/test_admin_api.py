"""The admin API (spec/events.md): accounts and API clients managed over HTTP by an
``admin`` client, within its reach, under the People API's credential contract."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import roster.core.auth
from roster.core.accounts import update_account
from roster.core.auth import client_by_key, rotate_client
from roster.core.sessions import start_session
from roster.db.engine import unit_of_work
from roster.errors import Conflict
from tests.commands import succeeds
from tests.factories import Client, Directory, bearer_token

ACCOUNT = "F50091"
OTHER = "OTHER"


@pytest.fixture
async def admin(directory: Directory) -> Client:
    """An admin client of every account, with two accounts."""
    await directory.account(ACCOUNT)
    await directory.account(OTHER)
    return await directory.client(None, scopes=["admin"], name="ops")


@pytest.fixture
def advance(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the clock the credentials are checked against forward, by seconds."""
    offset = [timedelta(0)]
    monkeypatch.setattr(roster.core.auth, "now", lambda: datetime.now(UTC) + offset[0])

    def forward(seconds: float) -> None:
        offset[0] += timedelta(seconds=seconds)

    return forward


async def call(
    http: httpx.AsyncClient,
    caller: Client | dict[str, str],
    method: str,
    path: str,
    body: Any = None,
) -> httpx.Response:
    headers = caller if isinstance(caller, dict) else caller.headers
    return await http.request(method, path, json=body, headers=headers)


def key(api_key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {api_key}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> tuple[int, str, list[str]]:
    """The status, the error's type and the fields its details name."""
    error = response.json()["error"]
    return response.status_code, error["type"], [d["field"] for d in error.get("details", [])]


async def token_for(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


async def people_status(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """What GET /people on the account answers these credentials."""
    return (await http.get(f"/people?accountId={ACCOUNT}", headers=headers)).status_code


async def admin_events(http: httpx.AsyncClient, caller: Client, account: str, types: str) -> Any:
    response = await call(http, caller, "GET", f"/events?accountId={account}&types={types}")
    assert response.status_code == 200, response.text
    return response.json()["events"]


# -- accounts ----------------------------------------------------------------------------------


async def test_accounts_are_created_read_listed_and_changed_with_their_events(
    client: httpx.AsyncClient, admin: Client
) -> None:
    made = await call(
        client, admin, "POST", "/accounts", {"id": "NEW-1", "name": "New", "externalRef": "crm-1"}
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert {k: v for k, v in created.items() if k != "createdAt"} == {
        "id": "NEW-1",
        "name": "New",
        "externalRef": "crm-1",
    }
    assert (await call(client, admin, "GET", "/accounts/NEW-1")).json() == created
    roles = await call(client, admin, "GET", "/roles?accountId=NEW-1")
    assert roles.json()["count"] == 6  # the six core roles, as `roster accounts create`

    first = (await call(client, admin, "GET", "/accounts?limit=2")).json()
    assert (first["count"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [a["id"] for a in first["rows"]] == [ACCOUNT, "NEW-1"]
    assert first["rows"][1] == created
    rest = (await call(client, admin, "GET", "/accounts?limit=2&offset=2")).json()
    assert [a["id"] for a in rest["rows"]] == [OTHER]

    renamed = await call(client, admin, "PATCH", "/accounts/NEW-1", {"name": "Renamed"})
    assert renamed.json() == {**created, "name": "Renamed"}
    cleared = await call(client, admin, "PATCH", "/accounts/NEW-1", {"externalRef": None})
    assert cleared.json() == {**created, "name": "Renamed", "externalRef": None}
    same = await call(client, admin, "PATCH", "/accounts/NEW-1", {"name": "Renamed"})
    assert same.json() == cleared.json()  # nothing changed: no event either

    logged = await admin_events(client, admin, "NEW-1", "account.*")
    assert [(e["type"], e["changed"]) for e in logged] == [
        ("account.created", ["name", "externalRef"]),
        ("account.updated", ["name"]),
        ("account.updated", ["externalRef"]),
    ]
    assert {e["actor"]["id"] for e in logged} == {admin.client_id}
    assert logged[-1]["data"] == cleared.json()


async def test_an_external_ref_held_by_another_account_is_a_conflict_and_changes_nothing(
    client: httpx.AsyncClient, admin: Client
) -> None:
    await call(client, admin, "PATCH", f"/accounts/{ACCOUNT}", {"externalRef": "crm-1"})
    taken = await call(client, admin, "PATCH", f"/accounts/{OTHER}", {"externalRef": "crm-1"})
    assert error_of(taken) == (409, "conflict", ["externalRef"])
    again = await call(client, admin, "POST", "/accounts", {"id": ACCOUNT, "name": "Twice"})
    assert error_of(again)[:2] == (409, "conflict")
    other = (await call(client, admin, "GET", f"/accounts/{OTHER}")).json()
    assert (other["name"], other["externalRef"]) == (f"Account {OTHER}", None)


# -- clients -----------------------------------------------------------------------------------


async def test_a_client_is_created_listed_and_revoked_and_its_credentials_stop_at_once(
    client: httpx.AsyncClient, admin: Client
) -> None:
    body = {"name": "hr-sync", "scopes": ["read", "write"], "accountIds": [ACCOUNT]}
    made = await call(client, admin, "POST", "/clients", body)
    assert made.status_code == 201, made.text
    new = made.json()
    secret, api_key = new.pop("clientSecret"), new.pop("apiKey")
    assert api_key.startswith("rk_")
    assert len(secret) >= 40
    assert {k: v for k, v in new.items() if k not in ("id", "createdAt")} == {
        "name": "hr-sync",
        "scopes": ["read", "write"],
        "allAccounts": False,
        "accountIds": [ACCOUNT],
        "rotatedAt": None,
        "revokedAt": None,
    }
    # The credentials work, within the reach given.
    assert await people_status(client, key(api_key)) == 200
    elsewhere = await client.get(f"/people?accountId={OTHER}", headers=key(api_key))
    assert error_of(elsewhere)[:2] == (404, "account_not_found")
    token = (await token_for(client, new["id"], secret)).json()["access_token"]
    assert await people_status(client, bearer(token)) == 200

    listed = await call(client, admin, "GET", "/clients")
    assert secret not in listed.text
    assert api_key not in listed.text
    rows = listed.json()["rows"]
    assert [r["id"] for r in rows] == [admin.client_id, new["id"]]
    assert rows[1] == new
    assert (await call(client, admin, "GET", f"/clients/{new['id']}")).json() == new

    revoked = await call(client, admin, "POST", f"/clients/{new['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json() == {**new, "revokedAt": revoked.json()["revokedAt"]}
    assert revoked.json()["revokedAt"] is not None
    for headers in (key(api_key), bearer(token)):
        refused = await client.get(f"/people?accountId={ACCOUNT}", headers=headers)
        assert error_of(refused) == (403, "invalid_authorization", [])
    assert (await token_for(client, new["id"], secret)).json()["error"] == "invalid_client"
    again = await call(client, admin, "POST", f"/clients/{new['id']}/revoke")
    assert again.json() == revoked.json()  # revoking twice changes nothing

    logged = await admin_events(client, admin, ACCOUNT, "client.*")
    assert [(e["type"], e["resource"]["id"]) for e in logged] == [
        ("client.created", admin.client_id),
        ("client.created", new["id"]),
        ("client.revoked", new["id"]),
    ]
    assert logged[1]["actor"]["id"] == admin.client_id
    assert secret not in json.dumps(logged)
    assert api_key not in json.dumps(logged)
    # A client of one account is logged in that account only.
    assert new["id"] not in json.dumps(await admin_events(client, admin, OTHER, "client.*"))


async def test_pages_of_clients(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    made = [await directory.client([ACCOUNT], name=f"c{n}") for n in range(3)]
    page = (await call(client, admin, "GET", "/clients?limit=2&offset=1")).json()
    assert (page["count"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [r["id"] for r in page["rows"]] == [made[0].client_id, made[1].client_id]


async def test_a_client_may_revoke_itself(client: httpx.AsyncClient, admin: Client) -> None:
    done = await call(client, admin, "POST", f"/clients/{admin.client_id}/revoke")
    assert done.status_code == 200
    assert error_of(await call(client, admin, "GET", "/clients"))[:2] == (
        403,
        "invalid_authorization",
    )


# -- the credential contract -------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/accounts", None),
    ("POST", "/accounts", {"id": "X1", "name": "X"}),
    ("GET", f"/accounts/{ACCOUNT}", None),
    ("PATCH", f"/accounts/{ACCOUNT}", {"name": "Changed"}),
    ("GET", "/clients", None),
    ("POST", "/clients", {"name": "x", "scopes": ["read"], "allAccounts": True}),
    ("GET", "/clients/{victim}", None),
    ("POST", "/clients/{victim}/revoke", None),
    ("POST", "/clients/{victim}/rotate", {"gracePeriodSeconds": 0}),
]


async def test_every_endpoint_keeps_the_people_api_credential_contract(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    victim = await directory.client([ACCOUNT], name="victim")
    writer = await directory.client(None, scopes=["read", "write"])
    expired = await directory.expired_token(admin.client_id)
    before = (await call(client, admin, "GET", "/clients")).json()
    accounts = (await call(client, admin, "GET", "/accounts")).json()
    for method, template, body in ENDPOINTS:
        path = template.format(victim=victim.client_id)
        cases = [
            ({}, (401, "missing_authorization")),
            (key("rk_not-a-key"), (403, "invalid_authorization")),
            (bearer("rt_forged"), (403, "invalid_authorization")),
            (bearer(expired), (401, "expired_token")),
            (writer.headers, (403, "insufficient_scope")),
        ]
        for headers, expected in cases:
            answer = await call(client, headers, method, path, body)
            assert error_of(answer)[:2] == expected, (method, path, headers, answer.text)
            assert answer.json()["error"]["message"]
    # Nothing changed: the victim's key still works, no account or client appeared.
    assert await people_status(client, victim.headers) == 200
    assert (await call(client, admin, "GET", "/clients")).json() == before
    assert (await call(client, admin, "GET", "/accounts")).json() == accounts


# -- reach -------------------------------------------------------------------------------------


async def test_an_admin_of_some_accounts_sees_and_manages_only_those(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    limited = await directory.client([ACCOUNT], scopes=["admin"], name="local admin")
    mine = await directory.client([ACCOUNT], name="mine")
    both = await directory.client([ACCOUNT, OTHER], name="both")
    every = await directory.client(None, name="every")
    await directory.client([OTHER], name="theirs")

    listed = (await call(client, limited, "GET", "/accounts")).json()
    assert (listed["count"], [a["id"] for a in listed["rows"]]) == (1, [ACCOUNT])
    clients = (await call(client, limited, "GET", "/clients")).json()
    assert [c["id"] for c in clients["rows"]] == [limited.client_id, mine.client_id]
    assert clients["count"] == 2

    for method, path, body in [
        ("GET", f"/accounts/{OTHER}", None),
        ("PATCH", f"/accounts/{OTHER}", {"name": "Taken over"}),
    ]:
        answer = await call(client, limited, method, path, body)
        assert error_of(answer)[:2] == (404, "account_not_found"), answer.text
    for other in (both, every):
        for method, suffix in [("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")]:
            answer = await call(client, limited, method, f"/clients/{other.client_id}{suffix}")
            assert error_of(answer)[:2] == (404, "not_found"), answer.text
        assert await people_status(client, other.headers) == 200  # untouched
    assert (await call(client, admin, "GET", f"/accounts/{OTHER}")).json()[
        "name"
    ] == "Account OTHER"

    # It manages what lies within its reach.
    renamed = await call(client, limited, "PATCH", f"/accounts/{ACCOUNT}", {"name": "Ours"})
    assert renamed.json()["name"] == "Ours"
    rotated = await call(client, limited, "POST", f"/clients/{mine.client_id}/rotate")
    assert rotated.status_code == 200, rotated.text


async def test_an_admin_of_some_accounts_grants_no_more_than_it_has(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    limited = await directory.client([ACCOUNT], scopes=["admin"], name="local admin")
    before = (await call(client, admin, "GET", "/clients")).json()
    accounts = (await call(client, admin, "GET", "/accounts")).json()

    new_account = await call(client, limited, "POST", "/accounts", {"id": "MINE", "name": "M"})
    assert error_of(new_account) == (403, "insufficient_reach", [])
    every = {"name": "x", "scopes": ["read"], "allAccounts": True}
    assert error_of(await call(client, limited, "POST", "/clients", every)) == (
        403,
        "insufficient_reach",
        [],
    )
    # An account it does not reach is answered as one that does not exist.
    for reach in ([OTHER], [ACCOUNT, OTHER], ["NOPE"]):
        body = {"name": "x", "scopes": ["read"], "accountIds": reach}
        answer = await call(client, limited, "POST", "/clients", body)
        assert error_of(answer) == (404, "account_not_found", ["accountIds"]), answer.text
        assert ACCOUNT not in answer.json()["error"]["details"][0]["problem"]
    assert (await call(client, admin, "GET", "/clients")).json() == before
    assert (await call(client, admin, "GET", "/accounts")).json() == accounts

    # Within its reach, any scope it holds (admin holds them all).
    body = {"name": "deputy", "scopes": ["admin", "read"], "accountIds": [ACCOUNT]}
    deputy = await call(client, limited, "POST", "/clients", body)
    assert deputy.status_code == 201, deputy.text
    assert (deputy.json()["scopes"], deputy.json()["accountIds"]) == (["read", "admin"], [ACCOUNT])


# -- rotation ----------------------------------------------------------------------------------


async def test_rotation_with_a_grace_period_keeps_the_old_credentials_until_it_ends(
    client: httpx.AsyncClient,
    admin: Client,
    directory: Directory,
    advance: Callable[[float], None],
) -> None:
    old = await directory.client([ACCOUNT], name="payroll")
    token_before = await bearer_token(client, old)
    answer = await call(
        client, admin, "POST", f"/clients/{old.client_id}/rotate", {"gracePeriodSeconds": 600}
    )
    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    at = datetime.fromisoformat(rotated["rotatedAt"])
    ends = datetime.fromisoformat(rotated["previousCredentialsExpireAt"])
    assert ends - at == timedelta(seconds=600)
    assert rotated["id"] == old.client_id
    assert rotated["apiKey"] != old.api_key
    assert rotated["clientSecret"] != old.secret

    # During the grace period: old and new both work, and what the old secret obtains
    # ends with the grace.
    assert await people_status(client, key(rotated["apiKey"])) == 200
    assert await people_status(client, old.headers) == 200
    assert await people_status(client, bearer(token_before)) == 200
    during = (await token_for(client, old.client_id, old.secret)).json()
    assert 0 < during["expires_in"] <= 600
    advance(601)
    assert error_of(await client.get(f"/people?accountId={ACCOUNT}", headers=old.headers)) == (
        403,
        "invalid_authorization",
        [],
    )
    for token in (token_before, during["access_token"]):
        expired = await client.get(f"/people?accountId={ACCOUNT}", headers=bearer(token))
        assert error_of(expired)[:2] == (401, "expired_token")
    assert (await token_for(client, old.client_id, old.secret)).json()["error"] == "invalid_client"
    assert await people_status(client, key(rotated["apiKey"])) == 200
    fresh = await token_for(client, old.client_id, rotated["clientSecret"])
    assert fresh.json()["expires_in"] == 3600
    assert await people_status(client, bearer(fresh.json()["access_token"])) == 200


async def test_rotation_without_grace_stops_the_old_credentials_at_once(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    old = await directory.client([ACCOUNT], name="payroll")
    token_before = await bearer_token(client, old)
    # No body at all: no grace.
    answer = await client.post(f"/clients/{old.client_id}/rotate", headers=admin.headers)
    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    assert rotated["previousCredentialsExpireAt"] == rotated["rotatedAt"]
    for headers in (old.headers, bearer(token_before)):
        refused = await client.get(f"/people?accountId={ACCOUNT}", headers=headers)
        assert error_of(refused) == (403, "invalid_authorization", [])
    assert (await token_for(client, old.client_id, old.secret)).json()["error"] == "invalid_client"
    assert await people_status(client, key(rotated["apiKey"])) == 200


async def test_a_second_rotation_ends_the_first_ones_grace(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    old = await directory.client([ACCOUNT], name="payroll")
    path = f"/clients/{old.client_id}/rotate"
    first = (await call(client, admin, "POST", path, {"gracePeriodSeconds": 3600})).json()
    assert await people_status(client, old.headers) == 200
    second = (await call(client, admin, "POST", path, {"gracePeriodSeconds": 0})).json()
    for api_key in (old.api_key, first["apiKey"]):
        assert await people_status(client, key(api_key)) == 403
    assert await people_status(client, key(second["apiKey"])) == 200


async def test_rotation_refusals_change_nothing(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    old = await directory.client([ACCOUNT], name="payroll")
    path = f"/clients/{old.client_id}/rotate"
    refused: list[dict[str, object]] = [
        {"gracePeriodSeconds": 604801},
        {"gracePeriodSeconds": -1},
        {"grace": 5},
        # JSON's booleans and texts are not seconds (false was taken as 0: schemathesis).
        {"gracePeriodSeconds": False},
        {"gracePeriodSeconds": "60"},
        {"gracePeriodSeconds": 60.5},
    ]
    for body in refused:
        answer = await call(client, admin, "POST", path, body)
        assert error_of(answer)[:2] == (400, "invalid_request"), answer.text
        assert error_of(answer)[2] == [next(iter(body))]
    assert await people_status(client, old.headers) == 200
    # A whole number written as JSON Schema's integer may be: 60.0 is 60.
    minute = await call(client, admin, "POST", path, {"gracePeriodSeconds": 60.0})
    assert minute.status_code == 200, minute.text
    rotated, expires = minute.json()["rotatedAt"], minute.json()["previousCredentialsExpireAt"]
    assert datetime.fromisoformat(expires) - datetime.fromisoformat(rotated) == timedelta(
        seconds=60
    )
    week = await call(client, admin, "POST", path, {"gracePeriodSeconds": 604800})
    assert week.status_code == 200
    await call(client, admin, "POST", f"/clients/{old.client_id}/revoke")
    revoked = await call(client, admin, "POST", path)
    assert error_of(revoked) == (409, "conflict", [])
    assert await people_status(client, key(week.json()["apiKey"])) == 403
    unknown = await call(client, admin, "POST", "/clients/cl_nobody/rotate")
    assert error_of(unknown)[:2] == (404, "not_found")


async def test_rotation_is_logged_without_a_secret(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    old = await directory.client([ACCOUNT, OTHER], name="payroll")
    path = f"/clients/{old.client_id}/rotate"
    rotated = (await call(client, admin, "POST", path, {"gracePeriodSeconds": 60})).json()
    for account in (ACCOUNT, OTHER):
        [event] = await admin_events(client, admin, account, "client.rotated")
        assert (event["resource"], event["changed"], event["actor"]["id"]) == (
            {"type": "client", "id": old.client_id},
            ["clientSecret", "apiKey", "rotatedAt"],
            admin.client_id,
        )
        assert (
            event["data"]["previousCredentialsExpireAt"] == rotated["previousCredentialsExpireAt"]
        )
        assert event["data"]["rotatedAt"] == rotated["rotatedAt"]
        text = json.dumps(event)
        for secret in (old.secret, old.api_key, rotated["clientSecret"], rotated["apiKey"]):
            assert secret not in text


# -- bad input ---------------------------------------------------------------------------------


BAD = [
    ("POST", "/accounts", {"id": "A1", "name": "A", "nmae": "typo"}, "nmae"),
    ("POST", "/accounts", {"id": "bad id!", "name": "A"}, "id"),
    ("POST", "/accounts", {"id": "A" * 37, "name": "A"}, "id"),
    ("POST", "/accounts", {"id": "A1", "name": "x" * 257}, "name"),
    ("POST", "/accounts", {"id": "A1", "name": "   "}, "name"),
    ("POST", "/accounts", {"id": "A1", "name": "A", "externalRef": "r" * 256}, "externalRef"),
    ("POST", "/accounts", {"name": "A"}, "id"),
    ("PATCH", f"/accounts/{ACCOUNT}", {"name": None}, "name"),
    ("PATCH", f"/accounts/{ACCOUNT}", {"id": "NEW"}, "id"),
    ("PATCH", f"/accounts/{ACCOUNT}", {"name": "a\x00b"}, "name"),
    ("PATCH", "/accounts/bad%20id", {"name": "A"}, "accountId"),
    ("GET", "/accounts/" + "A" * 37, None, "accountId"),
    ("GET", "/accounts?limit=0", None, "limit"),
    ("GET", "/accounts?offset=-1", None, "offset"),
    ("GET", "/clients?limit=1001", None, "limit"),
    ("GET", "/clients?colour=red", None, "colour"),
    ("POST", "/clients", {"name": "x", "scopes": ["root"], "allAccounts": True}, "scopes[0]"),
    ("POST", "/clients", {"name": "x", "scopes": [], "allAccounts": True}, "scopes"),
    ("POST", "/clients", {"name": "x" * 257, "scopes": ["read"], "allAccounts": True}, "name"),
    ("POST", "/clients", {"name": "x", "scopes": ["read"], "accountIds": []}, "accountIds"),
    (
        "POST",
        "/clients",
        {"name": "x", "scopes": ["read"], "accountIds": ["bad id!"]},
        "accountIds[0]",
    ),
    ("POST", "/clients", {"name": "x", "scopes": ["read"], "allAccounts": True, "a": 1}, "a"),
    ("POST", "/clients", {"name": "x", "scopes": ["read"], "allAccounts": 1}, "allAccounts"),
    ("GET", "/clients/" + "c" * 65, None, "clientId"),
]


async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, admin: Client
) -> None:
    before = [(await call(client, admin, "GET", path)).json() for path in ("/accounts", "/clients")]
    for method, path, body, field in BAD:
        answer = await call(client, admin, method, path, body)
        assert error_of(answer) == (400, "invalid_request", [field]), (method, path, answer.text)
        assert field in answer.json()["error"]["message"]
    # Each field well formed, but both reaches given, or neither: a broken rule.
    for reach in ({}, {"accountIds": [ACCOUNT], "allAccounts": True}):
        body = {"name": "x", "scopes": ["read"], **reach}
        answer = await call(client, admin, "POST", "/clients", body)
        assert error_of(answer) == (422, "unprocessable", ["accountIds"]), answer.text
    text = await client.post(
        "/accounts", content="id=A1", headers={**admin.headers, "Content-Type": "text/plain"}
    )
    assert error_of(text)[:2] == (415, "unsupported_media_type")
    after = [(await call(client, admin, "GET", path)).json() for path in ("/accounts", "/clients")]
    assert after == before


# -- the command line calls the same core --------------------------------------------------------


def test_the_command_line_rotates_clients_and_updates_accounts(fresh_database: str) -> None:
    url = fresh_database
    succeeds(url, "accounts", "create", "ACME", "--name", "Acme")
    made = json.loads(
        succeeds(url, "clients", "create", "--name", "ci", "--account", "ACME", "--json")
    )
    rotated = json.loads(
        succeeds(url, "clients", "rotate", made["client_id"], "--grace", "120", "--json")
    )
    assert rotated["client_id"] == made["client_id"]
    assert rotated["api_key"] != made["api_key"]
    at = datetime.fromisoformat(rotated["rotated_at"])
    assert datetime.fromisoformat(rotated["previous_expire_at"]) - at == timedelta(seconds=120)
    listed = json.loads(succeeds(url, "clients", "list", "--json"))
    assert listed[0]["rotated_at"] == rotated["rotated_at"]
    assert "stop now" in succeeds(url, "clients", "rotate", made["client_id"])
    updated = json.loads(
        succeeds(
            url,
            "accounts",
            "update",
            "ACME",
            "--name",
            "Acme Ltd",
            "--external-ref",
            "a-1",
            "--json",
        )
    )
    assert (updated["name"], updated["external_ref"]) == ("Acme Ltd", "a-1")
    cleared = json.loads(
        succeeds(url, "accounts", "update", "ACME", "--external-ref", "", "--json")
    )
    assert (cleared["name"], cleared["external_ref"]) == ("Acme Ltd", None)


async def test_the_openapi_document_names_the_admin_operations(client: httpx.AsyncClient) -> None:
    described = (await client.get("/openapi.json")).json()
    ids = {
        (method.upper(), path): operation["operationId"]
        for path, methods in described["paths"].items()
        for method, operation in methods.items()
        if path.startswith(("/accounts", "/clients"))
    }
    assert ids == {
        ("GET", "/accounts"): "listAccounts",
        ("POST", "/accounts"): "createAccount",
        ("GET", "/accounts/{accountId}"): "getAccount",
        ("PATCH", "/accounts/{accountId}"): "updateAccount",
        ("GET", "/clients"): "listClients",
        ("POST", "/clients"): "createClient",
        ("GET", "/clients/{clientId}"): "getClient",
        ("POST", "/clients/{clientId}/revoke"): "revokeClient",
        ("POST", "/clients/{clientId}/rotate"): "rotateClient",
    }
    rotate = described["paths"]["/clients/{clientId}/rotate"]["post"]
    assert "409" in rotate["responses"]
    schemas = described["components"]["schemas"]
    grace = schemas["ClientRotation"]["properties"]["gracePeriodSeconds"]
    assert (grace["minimum"], grace["maximum"]) == (0, 604800)
    assert schemas["ClientCreate"]["additionalProperties"] is False
    assert schemas["AccountCreate"]["properties"]["id"]["pattern"] == "^[A-Za-z0-9_-]{1,36}$"


# -- the core beneath ----------------------------------------------------------------------------


async def test_a_session_begun_with_a_replaced_key_ends_with_the_grace(
    admin: Client, directory: Directory
) -> None:
    old = await directory.client([ACCOUNT], name="payroll")
    async with unit_of_work(directory.engine, write=True) as conn:
        done = await rotate_client(conn, old.client_id, timedelta(seconds=90))
    async with unit_of_work(directory.engine, write=True) as conn:
        signed_in = await client_by_key(conn, old.api_key)
        session = await start_session(conn, signed_in, ttl_seconds=3600)
        assert signed_in.credential_ends == done.previous_expire_at
        assert session.expires_at == done.previous_expire_at
        fresh = await start_session(conn, await client_by_key(conn, done.credentials.api_key), 3600)
        assert fresh.expires_at - done.rotated_at > timedelta(minutes=59)


async def test_two_accounts_taking_one_external_ref_at_once_meet_a_conflict(
    admin: Client, directory: Directory
) -> None:
    """The second writer cannot see the first's uncommitted ref: the unique index decides,
    and the loser is told 409, not 500."""
    async with unit_of_work(directory.engine, write=True) as first:
        await update_account(first, OTHER, {"external_ref": "crm-1"})

        async def second() -> None:
            async with unit_of_work(directory.engine, write=True) as conn:
                await update_account(conn, ACCOUNT, {"external_ref": "crm-1"})

        racing = asyncio.create_task(second())
        await asyncio.sleep(0.3)  # the second waits on the first (its lock, or its index entry)
    with pytest.raises(Conflict) as refused:
        await racing
    assert [p.field for p in refused.value.details] == ["external_ref"]
