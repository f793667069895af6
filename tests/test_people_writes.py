"""The People API's writes: people and personas, roles, teams, budgets, addresses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from roster.core.writer import write_unique
from roster.db.engine import unit_of_work
from roster.db.tables import roles
from roster.errors import Conflict
from tests.factories import Client, Directory

ACCOUNT = "F50091"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account("OTHER")
    return await directory.client([ACCOUNT, "OTHER"])


async def send(
    client: httpx.AsyncClient,
    caller: Client,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    status: int = 200,
) -> Any:
    response = await client.request(method, path, json=body, headers=caller.headers)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def error(response_body: Any, kind: str) -> str:
    assert response_body["error"]["type"] == kind, response_body
    return str(response_body["error"]["message"])


def invalid(response_body: Any, problems: dict[str, str]) -> None:
    """A 400 ``invalid_request`` that names exactly these fields, each with its problem
    (a problem ending in "..." is a prefix of the problem given)."""
    fields = ", ".join(problems)
    assert error(response_body, "invalid_request") == f"Invalid request: check {fields}."
    given = {d["field"]: d["problem"] for d in response_body["error"]["details"]}
    assert list(given) == list(problems), response_body
    for field, problem in problems.items():
        if problem.endswith("..."):
            assert given[field].startswith(problem[:-3]), response_body
        else:
            assert given[field] == problem, response_body


async def add(client: httpx.AsyncClient, caller: Client, expect: int = 201, **fields: Any) -> Any:
    body = {"accountId": ACCOUNT, "firstName": "César", "lastName": "Treutel", "roleName": "User"}
    return await send(client, caller, "POST", "/people", {**body, **fields}, expect)


async def listed(client: httpx.AsyncClient, caller: Client, **params: Any) -> list[dict[str, Any]]:
    query = httpx.QueryParams({"accountId": ACCOUNT, **params})
    body = await send(client, caller, "GET", f"/people?{query}")
    rows: list[dict[str, Any]] = body["rows"]
    return rows


async def test_post_people_creates_a_person_and_persona(
    client: httpx.AsyncClient, caller: Client
) -> None:
    row = await add(
        client,
        caller,
        emailAddress="C.Treutel@acme.com",
        primaryMobileNumber="07700 900123",
        dob="1990-02-03",
        title="Mr",
        middleInitials="J",
        gender="male",
        nationality="FR",
        countryOfResidence="GB",
        externalRef="CT-1",
        employeeNumber="948",
        jobTitle="Buyer",
        workNumber="020 7946 0000",
        roleName="admin",
        status="invited",
    )
    assert row["firstName"] == "César"
    assert row["dob"] == "1990-02-03"
    assert row["primaryEmailAddress"] == "C.Treutel@acme.com"
    assert row["primaryMobileNumber"] == "07700 900123"
    assert row["status"] == "invited"
    persona = row["persona"]
    assert persona["accountId"] == ACCOUNT
    assert persona["emailAddress"] == "C.Treutel@acme.com"
    assert (persona["employeeNumber"], persona["jobTitle"]) == ("948", "Buyer")
    assert persona["workNumber"] == "020 7946 0000"
    assert "roles" not in persona
    [shown] = await listed(client, caller, search="cesar 7700900123 948", include="persona.roles")
    assert shown["id"] == row["id"]
    assert shown["persona"]["roles"][0]["name"] == "Admin"
    assert (await listed(client, caller, status="active")) == []


async def test_post_people_defaults_to_active(client: httpx.AsyncClient, caller: Client) -> None:
    row = await add(client, caller)
    assert row["status"] == row["persona"]["status"] == "active"
    assert row["primaryEmailAddress"] is None


async def test_a_known_email_joins_the_existing_person(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person_id = await directory.person(
        ["OTHER"], first_name="Ann", last_name="Lee", email_address="ann@acme.com"
    )
    row = await add(client, caller, firstName="Annie", lastName="L", emailAddress="ANN@acme.com")
    assert row["id"] == str(person_id)
    assert (row["firstName"], row["lastName"]) == ("Ann", "Lee")  # the person as it is
    assert row["persona"]["emailAddress"] == "ANN@acme.com"
    again = await add(client, caller, emailAddress="ann@ACME.com", expect=409)
    assert "already has persona" in error(again, "conflict")


async def test_post_people_breaking_a_rule_is_422_and_an_unknown_creator_404(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    message = error(await add(client, caller, roleName="Astronaut", expect=422), "unprocessable")
    assert "Astronaut" in message
    assert "roleName" in message
    elsewhere = await directory.persona(
        await directory.person(["OTHER"], first_name="O", last_name="T"), "OTHER"
    )
    for creator in (str(elsewhere), str(uuid.uuid4())):
        error(await add(client, caller, createdByPersonaId=creator, expect=404), "not_found")
    assert await listed(client, caller) == []


async def test_a_taken_external_ref_is_409(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["OTHER"], first_name="O", last_name="T", external_ref="REF-1")
    # One error for a taken value, whichever door: the Persons API's duplicate_value.
    message = error(await add(client, caller, externalRef="REF-1", expect=409), "duplicate_value")
    assert message == "The externalRef 'REF-1' belongs to another person."


@pytest.mark.parametrize(
    ("field", "fields"),
    [
        ("firstName", {"firstName": ""}),
        ("firstName", {"firstName": "x" * 257}),
        ("lastName", {"lastName": None}),
        ("roleName", {"roleName": None}),
        ("first_name", {"first_name": "Ann"}),
        ("frist_name", {"frist_name": "Ann"}),
        ("dob", {"dob": "03/02/1990"}),
        ("dob", {"dob": 1990}),
        ("status", {"status": "inviteExpired"}),
        ("emailAddress", {"emailAddress": "not an email"}),
        ("accountId", {"accountId": "has space"}),
        ("createdByPersonaId", {"createdByPersonaId": "nope"}),
    ],
)
async def test_a_malformed_body_is_400_naming_the_field(
    client: httpx.AsyncClient, caller: Client, field: str, fields: dict[str, Any]
) -> None:
    body = await add(client, caller, expect=400, **fields)
    assert field in [d["field"] for d in body["error"]["details"]]


async def test_patch_people_changes_the_person_and_its_search_columns(
    client: httpx.AsyncClient, caller: Client
) -> None:
    row = await add(client, caller, emailAddress="c@acme.com", externalRef="CT")
    changed = await send(
        client,
        caller,
        "PATCH",
        f"/people/{row['id']}?accountId={ACCOUNT}",
        {"lastName": "Zèbre", "primaryMobileNumber": "+33 6 12 34 56 78", "externalRef": None},
    )
    assert (changed["firstName"], changed["lastName"]) == ("César", "Zèbre")
    assert changed["externalRef"] is None
    assert changed["primaryEmailAddress"] == "c@acme.com"
    assert changed["updatedAt"] >= row["updatedAt"]
    assert await listed(client, caller, search="treutel") == []
    assert [r["id"] for r in await listed(client, caller, search="zebre 612345678")] == [row["id"]]
    path = f"/people/{row['id']}?accountId={ACCOUNT}"
    for unchanged in ({}, {"lastName": "Zèbre", "emailAddress": "c@acme.com"}):
        same = await send(client, caller, "PATCH", path, unchanged)
        assert (same["lastName"], same["updatedAt"]) == ("Zèbre", changed["updatedAt"])


async def test_patch_people_email_collision_is_409_and_changes_nothing(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["OTHER"], first_name="O", last_name="T", email_address="o@x.com")
    row = await add(client, caller, emailAddress="c@acme.com")
    path = f"/people/{row['id']}?accountId={ACCOUNT}"
    body = await send(
        client, caller, "PATCH", path, {"emailAddress": "O@X.com", "title": "Dr"}, 409
    )
    assert "emailAddress" in error(body, "duplicate_value")
    [unchanged] = await listed(client, caller)
    assert (unchanged["primaryEmailAddress"], unchanged["title"]) == ("c@acme.com", None)


async def test_patch_people_external_ref_collision_is_409_and_changes_nothing(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["OTHER"], first_name="O", last_name="T", external_ref="REF-O")
    row = await add(client, caller, externalRef="REF-C")
    path = f"/people/{row['id']}?accountId={ACCOUNT}"
    body = await send(client, caller, "PATCH", path, {"externalRef": "REF-O", "title": "Dr"}, 409)
    assert error(body, "duplicate_value") == "The externalRef 'REF-O' belongs to another person."
    assert body["error"]["details"] == [
        {"field": "externalRef", "problem": "belongs to another person"}
    ]
    [unchanged] = await listed(client, caller)
    assert (unchanged["externalRef"], unchanged["title"]) == ("REF-C", None)


async def test_patch_people_needs_a_persona_in_the_account(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    elsewhere = await directory.person(["OTHER"], first_name="O", last_name="T")
    for person in (elsewhere, uuid.uuid4()):
        body = await send(
            client, caller, "PATCH", f"/people/{person}?accountId={ACCOUNT}", {"title": "Dr"}, 404
        )
        error(body, "not_found")
    row = await add(client, caller)
    bad: dict[str, Any]
    for bad, problem in (
        ({"firstName": None}, "must not be null"),
        ({"persona": {}}, "is not a known field"),
        ({"roleName": "Admin"}, "is not a known field"),
    ):
        path = f"/people/{row['id']}?accountId={ACCOUNT}"
        invalid(await send(client, caller, "PATCH", path, bad, 400), {next(iter(bad)): problem})
    path = f"/people/not-a-uuid?accountId={ACCOUNT}"
    answer = await send(client, caller, "PATCH", path, {}, 400)
    invalid(answer, {"personId": "input should be a valid UUID..."})
    answer = await send(client, caller, "PATCH", f"/people/{row['id']}", {}, 400)
    invalid(answer, {"accountId": "is required"})


async def test_patch_personas_changes_the_persona_and_its_search_columns(
    client: httpx.AsyncClient, caller: Client
) -> None:
    row = await add(client, caller)
    persona = row["persona"]["id"]
    path = f"/personas/{persona}?accountId={ACCOUNT}"
    changed = await send(
        client,
        caller,
        "PATCH",
        path,
        {"emailAddress": "work@corp.example", "employeeNumber": "E-77", "status": "deactivated"},
    )
    assert changed["status"] == changed["persona"]["status"] == "deactivated"
    assert changed["persona"]["emailAddress"] == "work@corp.example"
    assert [r["id"] for r in await listed(client, caller, search="corp.example e-77")] == [
        row["id"]
    ]
    cleared = await send(client, caller, "PATCH", path, {"employeeNumber": None})
    assert cleared["persona"]["employeeNumber"] is None
    assert await listed(client, caller, search="e-77") == []
    answer = await send(client, caller, "PATCH", path, {"status": None}, 400)
    invalid(answer, {"status": "must not be null"})
    answer = await send(client, caller, "PATCH", path, {"firstName": "X"}, 400)
    invalid(answer, {"firstName": "is not a known field"})
    answer = await send(client, caller, "PATCH", path, {"status": "retired"}, 400)
    invalid(answer, {"status": "input should be 'active', 'deactivated', 'created', ..."})
    expired = await send(client, caller, "PATCH", path, {"status": "inviteExpired"})
    assert expired["status"] == "inviteExpired"


async def test_a_persona_of_another_account_is_404_like_a_missing_one(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    other = await directory.persona(
        await directory.person(["OTHER"], first_name="O", last_name="T"), "OTHER"
    )
    for persona in (other, uuid.uuid4()):
        for method, path, body in (
            ("PATCH", f"/personas/{persona}", {"jobTitle": "X"}),
            ("PATCH", f"/personas/{persona}/role", {"roleName": "Admin"}),
            ("DELETE", f"/personas/{persona}", None),
        ):
            answer = await send(client, caller, method, f"{path}?accountId={ACCOUNT}", body, 404)
            assert f"persona {persona}" in error(answer, "not_found")


async def test_changing_a_role_by_name(client: httpx.AsyncClient, caller: Client) -> None:
    row = await add(client, caller)
    path = f"/personas/{row['persona']['id']}/role?accountId={ACCOUNT}"
    role = await send(client, caller, "PATCH", path, {"roleName": "accountant"})
    assert set(role) == {"id", "name", "type"}
    assert (role["name"], role["type"]) == ("Accountant", "core")
    [shown] = await listed(client, caller, roleNames="Accountant")
    assert shown["persona"]["roleId"] == role["id"]
    error(await send(client, caller, "PATCH", path, {"roleName": "Pilot"}, 422), "unprocessable")
    answer = await send(client, caller, "PATCH", path, {"role": "Admin"}, 400)
    invalid(answer, {"roleName": "is required", "role": "is not a known field"})


async def test_deleting_a_persona_keeps_the_person(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    first = await add(client, caller, emailAddress="c@acme.com")
    persona = first["persona"]["id"]
    await directory.address(ACCOUNT, uuid.UUID(persona))
    team = await directory.team(
        ACCOUNT, "Red", owner=uuid.UUID(persona), members=[uuid.UUID(persona)]
    )
    response = await client.delete(
        f"/personas/{persona}?accountId={ACCOUNT}", headers=caller.headers
    )
    assert (response.status_code, response.content) == (204, b"")
    assert await listed(client, caller) == []
    teams = await send(client, caller, "GET", f"/teams?accountId={ACCOUNT}")
    assert teams["rows"][0]["id"] == str(team)
    assert teams["rows"][0]["primaryOwnerPersonaId"] is None
    assert teams["rows"][0]["memberPersonaIds"] == []
    again = await add(client, caller, emailAddress="c@acme.com")
    assert again["id"] == first["id"]  # the same person joins again
    await send(client, caller, "DELETE", f"/personas/{persona}?accountId={ACCOUNT}", None, 404)


async def test_deleting_the_owner_of_an_individual_budget_deletes_the_budget(
    client: httpx.AsyncClient, caller: Client
) -> None:
    """An individual budget belongs to exactly one persona: it goes with its owner, where
    a team or a shared budget only loses its primary owner."""
    ann = (await add(client, caller, firstName="Ann"))["persona"]["id"]
    bob = (await add(client, caller, firstName="Bob", lastName="B"))["persona"]["id"]

    async def budget(name: str, kind: str, owner: str, members: list[str]) -> Any:
        body = {"accountId": ACCOUNT, "name": name, "type": kind, "primaryOwnerPersonaId": owner}
        return await send(
            client, caller, "POST", "/budgets", {**body, "memberPersonaIds": members}, 201
        )

    await budget("Ann's", "individual", ann, [])
    bobs = await budget("Bob's", "individual", bob, [])
    shared = await budget("Travel", "shared", ann, [ann, bob])
    await send(client, caller, "DELETE", f"/personas/{ann}?accountId={ACCOUNT}", None, 204)
    listing = await send(client, caller, "GET", f"/budgets?accountId={ACCOUNT}")
    assert listing["rows"] == [
        bobs,
        {**shared, "primaryOwnerPersonaId": None, "memberPersonaIds": [bob]},
    ]


async def test_roles_list_and_create(client: httpx.AsyncClient, caller: Client) -> None:
    core = await send(client, caller, "GET", f"/roles?accountId={ACCOUNT}")
    assert (core["count"], core["limit"], core["offset"]) == (6, 100, 0)
    assert [r["name"] for r in core["rows"]] == [
        "Accountant",
        "Admin",
        "Owner",
        "Payer",
        "User",
        "Viewer",
    ]
    assert all(r["type"] == "core" and r["accountId"] == ACCOUNT for r in core["rows"])
    created = await send(
        client, caller, "POST", "/roles", {"accountId": ACCOUNT, "name": "buyer"}, 201
    )
    assert set(created) == {"id", "name", "accountId", "type", "createdAt", "updatedAt"}
    assert (created["name"], created["type"]) == ("buyer", None)
    for taken in ("BUYER", "admin"):
        body = await send(
            client, caller, "POST", "/roles", {"accountId": ACCOUNT, "name": taken}, 409
        )
        error(body, "conflict")
    page = await send(client, caller, "GET", f"/roles?accountId={ACCOUNT}&limit=2&offset=1")
    assert page["count"] == 7
    assert [r["name"] for r in page["rows"]] == ["Admin", "buyer"]
    elsewhere = await send(client, caller, "GET", "/roles?accountId=OTHER")
    assert elsewhere["count"] == 6
    answer = await send(client, caller, "GET", f"/roles?accountId={ACCOUNT}&limit=1001", None, 400)
    invalid(answer, {"limit": "input should be less than or equal to 1000"})
    answer = await send(client, caller, "POST", "/roles", {"accountId": ACCOUNT, "name": ""}, 400)
    invalid(answer, {"name": "must not be blank"})
    row = await add(client, caller, roleName="Buyer")
    assert row["persona"]["roleId"] == created["id"]


async def test_teams_list_create_and_members(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    ann = (await add(client, caller, firstName="Ann"))["persona"]["id"]
    bob = (await add(client, caller, firstName="Bob", lastName="B"))["persona"]["id"]
    other = await directory.persona(
        await directory.person(["OTHER"], first_name="O", last_name="T"), "OTHER"
    )
    team = await send(
        client,
        caller,
        "POST",
        "/teams",
        {
            "accountId": ACCOUNT,
            "name": "Red",
            "primaryOwnerPersonaId": ann,
            "memberPersonaIds": [bob, bob],
        },
        201,
    )
    assert team == {
        "id": team["id"],
        "accountId": ACCOUNT,
        "name": "Red",
        "primaryOwnerPersonaId": ann,
        "memberPersonaIds": [bob],
    }
    for people in (
        {"primaryOwnerPersonaId": str(other)},
        {"memberPersonaIds": [str(uuid.uuid4())]},
    ):
        body = {"accountId": ACCOUNT, "name": "Blue", **people}
        error(await send(client, caller, "POST", "/teams", body, 404), "not_found")
    member = f"/teams/{team['id']}/members/{ann}?accountId={ACCOUNT}"
    for _ in range(2):  # idempotent
        await send(client, caller, "PUT", member, None, 204)
    assert {r["firstName"] for r in await listed(client, caller, teams=team["id"])} == {
        "Ann",
        "Bob",
    }
    for _ in range(2):
        await send(client, caller, "DELETE", member, None, 204)
    assert {r["firstName"] for r in await listed(client, caller, teams=team["id"])} == {"Bob"}
    for path in (
        f"/teams/{uuid.uuid4()}/members/{ann}",
        f"/teams/{team['id']}/members/{other}",
        f"/teams/{team['id']}/members/{uuid.uuid4()}",
    ):
        for method in ("PUT", "DELETE"):
            await send(client, caller, method, f"{path}?accountId={ACCOUNT}", None, 404)
    other_team = await send(
        client, caller, "POST", "/teams", {"accountId": "OTHER", "name": "X"}, 201
    )
    await send(
        client,
        caller,
        "PUT",
        f"/teams/{other_team['id']}/members/{ann}?accountId={ACCOUNT}",
        None,
        404,
    )
    listing = await send(client, caller, "GET", f"/teams?accountId={ACCOUNT}")
    assert listing == {
        "count": 1,
        "limit": 100,
        "offset": 0,
        "rows": [{**team, "memberPersonaIds": [bob]}],
    }
    answer = await send(
        client, caller, "POST", "/teams", {"accountId": ACCOUNT, "name": "Y", "members": []}, 400
    )
    invalid(answer, {"members": "is not a known field"})
    namesake = await send(
        client, caller, "POST", "/teams", {"accountId": ACCOUNT, "name": "Red"}, 201
    )
    assert namesake["id"] != team["id"]  # team names need not be unique


async def test_budgets_list_create_and_the_individual_rules(
    client: httpx.AsyncClient, caller: Client
) -> None:
    ann = (await add(client, caller, firstName="Ann"))["persona"]["id"]
    bob = (await add(client, caller, firstName="Bob", lastName="B"))["persona"]["id"]
    base = {"accountId": ACCOUNT, "name": "Ann's", "type": "individual"}
    message = error(await send(client, caller, "POST", "/budgets", base, 422), "unprocessable")
    assert "primaryOwnerPersonaId" in message
    with_members = {**base, "primaryOwnerPersonaId": ann, "memberPersonaIds": [bob]}
    message = error(
        await send(client, caller, "POST", "/budgets", with_members, 422), "unprocessable"
    )
    assert "memberPersonaIds" in message
    own = await send(
        client, caller, "POST", "/budgets", {**base, "primaryOwnerPersonaId": ann}, 201
    )
    assert own == {
        "id": own["id"],
        "accountId": ACCOUNT,
        "name": "Ann's",
        "type": "individual",
        "primaryOwnerPersonaId": ann,
        "memberPersonaIds": [],
    }
    shared = await send(
        client,
        caller,
        "POST",
        "/budgets",
        {"accountId": ACCOUNT, "name": "Travel", "type": "shared", "memberPersonaIds": [bob, ann]},
        201,
    )
    assert shared["primaryOwnerPersonaId"] is None
    assert shared["memberPersonaIds"] == sorted([ann, bob])
    balance = {"accountId": ACCOUNT, "name": "Main", "type": "accountBalance"}
    await send(client, caller, "POST", "/budgets", balance, 201)
    answer = await send(client, caller, "POST", "/budgets", {**balance, "type": "personal"}, 400)
    invalid(answer, {"type": "input should be 'individual', 'shared' or 'accountBalance'"})
    second = {**base, "name": "Ann's too", "primaryOwnerPersonaId": ann}
    await send(client, caller, "POST", "/budgets", second, 201)
    listing = await send(client, caller, "GET", f"/budgets?accountId={ACCOUNT}&limit=2")
    assert listing["count"] == 4
    assert [b["name"] for b in listing["rows"]] == ["Ann's", "Ann's too"]
    without = await listed(client, caller, withoutIndividualBudget="true")
    assert [r["firstName"] for r in without] == ["Bob"]
    assert {r["firstName"] for r in await listed(client, caller, budgetId=shared["id"])} == {
        "Ann",
        "Bob",
    }


async def test_addresses(client: httpx.AsyncClient, directory: Directory, caller: Client) -> None:
    persona = (await add(client, caller))["persona"]["id"]
    address = {
        "personaId": persona,
        "type": "home",
        "addressLine1": "1 Rue de la Paix",
        "city": "Paris",
        "postcode": "75002",
        "country": "fr",
    }
    path = f"/addresses?accountId={ACCOUNT}"
    created = await send(client, caller, "POST", path, address, 201)
    assert created == {
        "id": created["id"],
        "personaId": persona,
        "type": "home",
        "addressLine1": "1 Rue de la Paix",
        "addressLine2": None,
        "addressLine3": None,
        "city": "Paris",
        "region": None,
        "postcode": "75002",
        "countryCode": "FR",
    }
    [row] = await listed(client, caller, include="persona.addresses")
    assert row["persona"]["addresses"] == [{k: v for k, v in created.items() if k != "personaId"}]
    for registered in ("registered", "Registered"):
        body = await send(client, caller, "POST", path, {**address, "type": registered}, 422)
        assert "registered" in error(body, "unprocessable")
    for country in ("XX", "GBR", "", "U1"):
        body = await send(client, caller, "POST", path, {**address, "country": country}, 400)
        assert body["error"]["details"][0]["field"] == "country"
    for missing in ("addressLine1", "city", "postcode", "type"):
        trimmed = {k: v for k, v in address.items() if k != missing}
        invalid(await send(client, caller, "POST", path, trimmed, 400), {missing: "is required"})
    answer = await send(client, caller, "POST", path, {**address, "countryCode": "FR"}, 400)
    invalid(answer, {"countryCode": "is not a known field"})
    other = await directory.persona(
        await directory.person(["OTHER"], first_name="O", last_name="T"), "OTHER"
    )
    for persona_id in (str(other), str(uuid.uuid4())):
        body = await send(client, caller, "POST", path, {**address, "personaId": persona_id}, 404)
        error(body, "not_found")
    invalid(
        await send(client, caller, "POST", "/addresses", address, 400), {"accountId": "is required"}
    )


async def test_a_writer_losing_a_race_to_a_unique_value_gets_409(
    directory: Directory, caller: Client
) -> None:
    at = datetime.now(UTC)
    duplicate = insert(roles).values(
        id=uuid.uuid4(),
        account_id=ACCOUNT,
        name="ADMIN",
        name_key="admin",
        type=None,
        created_at=at,
        updated_at=at,
    )
    async with unit_of_work(directory.engine, write=True) as conn:
        with pytest.raises(Conflict, match="taken"):
            await write_unique(conn, duplicate, "taken")
        # Only the savepoint was rolled back: the request's transaction goes on.
        assert await conn.scalar(select(func.count()).select_from(roles)) == 12
