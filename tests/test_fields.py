"""Each field is declared once (core/fields.py): every door applies the same rules, names
the field its own way, and states the rules in the OpenAPI document; the tables are the
migrations' tables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select, text

from roster.core.countries import COUNTRY_CODES
from roster.core.importing import ImportSummary, import_rows
from roster.db.engine import unit_of_work
from roster.db.tables import metadata, persons
from roster.errors import Unprocessable
from tests.bulk import leave_empty, write_csv
from tests.factories import Client, Directory

ACCOUNT = "F50091"
HEADER = ("first_name", "last_name", "email_address", "phone_number", "external_ref")

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    return await directory.client([ACCOUNT], scopes=("read", "write"))


async def send(
    client: httpx.AsyncClient, caller: Client, method: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=caller.headers)


def refused(response: httpx.Response, field: str, problem: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {
            "type": "invalid_request",
            "message": f"Invalid request: check {field}.",
            "details": [{"field": field, "problem": problem}],
        }
    }


async def imported(directory: Directory, tmp_path: Path, row: tuple[str, ...]) -> ImportSummary:
    path = write_csv(tmp_path / "people.csv", HEADER, [row])
    return await import_rows(directory.engine, directory.settings, ACCOUNT, path)


async def stored_refs(directory: Directory) -> list[str | None]:
    async with unit_of_work(directory.engine, write=False) as conn:
        return list(await conn.scalars(select(persons.c.external_ref).order_by(persons.c.seq)))


async def test_an_external_ref_is_at_most_255_characters_through_every_door(
    client: httpx.AsyncClient, directory: Directory, caller: Client, tmp_path: Path
) -> None:
    """POST /people took 256 (201 on SQLite, a 500 on PostgreSQL); the others said 255."""
    too_long, longest = "r" * 256, "r" * 255
    too_long_problem = "string should have at most 255 characters"
    person = {"accountId": ACCOUNT, "firstName": "Ann", "lastName": "Lee", "roleName": "User"}

    refused(
        await send(client, caller, "POST", "/people", {**person, "externalRef": too_long}),
        "externalRef",
        too_long_problem,
    )
    created = await send(client, caller, "POST", "/people", {**person, "externalRef": longest})
    assert created.status_code == 201, created.text
    assert created.json()["externalRef"] == longest
    path = f"/people/{created.json()['id']}?accountId={ACCOUNT}"
    refused(
        await send(client, caller, "PATCH", path, {"externalRef": too_long}),
        "externalRef",
        too_long_problem,
    )
    item = {"first_name": "Bo", "group_ids": [ACCOUNT]}
    refused(
        await send(
            client,
            caller,
            "POST",
            "/persons/multiple/",
            {"persons": [{**item, "external_ref": too_long}]},
        ),
        "persons[0].external_ref",
        too_long_problem,
    )
    summary = await imported(directory, tmp_path, ("Cy", "", "", "", too_long))
    assert (summary.created, summary.failed) == (0, 1)
    assert summary.failures[0].reason == "Invalid external_ref: must be at most 255 characters."
    assert summary.failures[0].type == "invalid_request"
    assert await stored_refs(directory) == [longest]

    upserted = await send(
        client, caller, "POST", "/persons/multiple/", {"persons": [{**item, "external_ref": "b"}]}
    )
    assert upserted.json()["persons"][0]["success"] is True
    summary = await imported(directory, tmp_path, ("Cy", "", "", "", "c" * 255))
    assert summary.created == 1
    assert await stored_refs(directory) == [longest, "b", "c" * 255]


async def test_one_rule_each_door_naming_the_field_its_own_way(
    client: httpx.AsyncClient, directory: Directory, caller: Client, tmp_path: Path
) -> None:
    problem = "must be an email address (name@domain)"
    person = {"accountId": ACCOUNT, "firstName": "Ann", "lastName": "Lee", "roleName": "User"}
    refused(
        await send(client, caller, "POST", "/people", {**person, "emailAddress": "ann.example"}),
        "emailAddress",
        problem,
    )
    item = {"first_name": "Ann", "email_address": "ann.example", "group_ids": [ACCOUNT]}
    refused(
        await send(client, caller, "POST", "/persons/multiple/", {"persons": [item]}),
        "persons[0].email_address",
        problem,
    )
    summary = await imported(directory, tmp_path, ("Ann", "", "ann.example", "", ""))
    assert summary.failures[0].reason == f"Invalid email_address: {problem}."
    assert await stored_refs(directory) == []


async def test_core_names_a_field_by_its_core_name_and_the_people_api_by_its_own(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    with pytest.raises(Unprocessable) as raised:
        await directory.budget(ACCOUNT, "Mine", "individual")
    assert raised.value.message == (
        "An individual budget belongs to one persona: give its primary_owner_persona_id."
    )
    answered = await send(
        client,
        caller,
        "POST",
        "/budgets",
        {"accountId": ACCOUNT, "name": "Mine", "type": "individual"},
    )
    assert answered.status_code == 422
    assert answered.json() == {
        "error": {
            "type": "unprocessable",
            "message": (
                "An individual budget belongs to one persona: give its primaryOwnerPersonaId."
            ),
            "details": [
                {
                    "field": "primaryOwnerPersonaId",
                    "problem": "is required for an individual budget",
                }
            ],
        }
    }
    person = {"accountId": ACCOUNT, "firstName": "A", "lastName": "B", "roleName": "Astronaut"}
    unknown_role = await send(client, caller, "POST", "/people", person)
    assert unknown_role.status_code == 422
    assert unknown_role.json()["error"]["details"] == [
        {"field": "roleName", "problem": "must name one of the account's roles"}
    ]


async def test_the_tables_are_the_tables_the_migrations_create(directory: Directory) -> None:
    """The columns derived from the declarations (lengths, nullability, uniqueness) are
    exactly the migrated schema's, on both backends, and so are the indexes' INCLUDE
    columns and operator classes on PostgreSQL."""

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            difference
            for difference in compare_metadata(context, metadata)
            # The search indexes live outside the metadata (FTS5 tables, a pg_trgm index).
            if "personas_search" not in str(difference) and "trgm" not in str(difference)
        ]

    async with directory.engine.connect() as conn:
        assert await conn.run_sync(differences) == []
        if conn.dialect.name != "postgresql":
            return
        # Alembic compares neither an index's INCLUDE nor its operator classes.
        declared = [
            (index, index.dialect_options["postgresql"])
            for table in metadata.tables.values()
            for index in table.indexes
            if index.dialect_options["postgresql"]["include"]
            or index.dialect_options["postgresql"]["ops"]
        ]
        assert len(declared) == 3
        for index, options in declared:
            migrated = await conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": index.name},
            )
            assert migrated is not None, index.name
            included = ", ".join(options["include"])
            assert migrated.endswith(f" INCLUDE ({included})" if included else ")"), migrated
            for column, ops in options["ops"].items():
                assert f"{column} {ops}" in migrated, migrated


async def test_the_openapi_document_states_the_rules(client: httpx.AsyncClient) -> None:
    described = (await client.get("/openapi.json")).json()
    schemas = described["components"]["schemas"]

    def field(schema: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas[schema]["properties"][name]
        return next((s for s in found.get("anyOf", []) if s.get("type") != "null"), found)

    def parameter(path: str, method: str, name: str) -> dict[str, Any]:
        operation = described["paths"][path][method]
        [found] = [p for p in operation["parameters"] if p["name"] == name]
        return dict(found["schema"])

    printable = field("PersonCreate", "firstName")
    assert (printable["minLength"], printable["maxLength"]) == (1, 256)
    assert "\\x00-\\x1f" in printable["pattern"]
    assert "\\s" in printable["pattern"]
    assert field("PersonCreate", "externalRef")["maxLength"] == 255
    assert field("PersonItem", "external_ref")["maxLength"] == 255
    email = field("PersonCreate", "emailAddress")
    assert (email["format"], email["minLength"], email["maxLength"]) == ("email", 3, 320)
    assert field("PersonItem", "email_address")["format"] == "email"
    country = field("AddressCreate", "country")
    assert country["maxLength"] == 2
    codes = re.compile(country["pattern"])  # the assigned codes, in any case, and only they
    assert all(codes.match(c) and codes.match(c.lower()) for c in COUNTRY_CODES)
    assert not any(codes.match(c) for c in ("AA", "XX", "UK", "G1", "GBR"))
    account = parameter("/people", "get", "accountId")
    assert (account["pattern"], account["minLength"], account["maxLength"]) == (
        "^[A-Za-z0-9_-]{1,36}$",
        1,
        36,
    )
    assert field("PersonCreate", "accountId")["pattern"] == "^[A-Za-z0-9_-]{1,36}$"
    role_names = parameter("/people", "get", "roleNames")
    assert role_names["items"]["minLength"] == 1
    # A role name as the server takes it: printable, not blank, and no comma (values are
    # separated by commas, so "a,b" is two names, never one).
    role_name = re.compile(role_names["items"]["pattern"])
    assert [bool(role_name.search(v)) for v in ("Sales lead", "a,b", " ", "a\x07")] == [
        True,
        False,
        False,
        False,
    ]
    groups = field("PersonItem", "group_ids")
    assert (groups["minItems"], groups["items"]["minLength"]) == (1, 1)
    assert field("FindPersonsRequest", "group_ids")["minItems"] == 1
    assert parameter("/people", "get", "search")["anyOf"][0]["pattern"] == "^[^\\x00]*$"
    token_form = described["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]
    form = token_form["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"] == {"type": "string", "enum": ["client_credentials"]}
    assert form["required"] == ["grant_type", "client_id", "client_secret"]
    assert form["properties"]["client_id"]["pattern"] == "^[^\\x00]*$"
    cursor = schemas["FindPersonsRequest"]["properties"]["after-id"]
    number, digits = cursor["anyOf"]
    assert (number["type"], number["minimum"]) == ("integer", 0)
    assert digits == {"type": "string", "pattern": "^[0-9]{1,40}$"}
    assert cursor["default"] == 1
    for schema, name in (
        ("PersonRow", "createdAt"),
        ("PersonaOut", "updatedAt"),
        ("RoleRow", "createdAt"),
    ):
        assert field(schema, name)["format"] == "date-time"
    assert field("PersonRow", "dob")["format"] == "date"
