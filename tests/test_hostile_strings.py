"""Hostile strings in every string a client sends: never a 500, never a change on refusal.

NUL, lone surrogates (which JSON can carry but no database column can hold), SQL and
LIKE metacharacters: each is an ordinary value that matches nothing it should not.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons, roles
from tests.factories import Client, Directory

HOSTILE = ["\x00", "a\x00b", "\ud800", "x\udfffy", "%", "_", "'", "\\", "' OR '1'='1", '"; --']
#: The same in a raw query string: NUL, invalid UTF-8, metacharacters.
RAW = ["%00", "a%00b", "%ED%A0%80", "%FF", "%25", "_", "%27", "%5C", "%27%20OR%20%271%27%3D%271"]
PERSON_FIELDS = ("first_name", "last_name", "email_address", "phone_number", "external_ref")


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091", external_ref="acme")
    await directory.person(
        ["F50091"],
        first_name="Ada",
        last_name="Lovelace",
        email_address="ada@acme.example",
        external_ref="ada-1",
    )
    return await directory.client(["F50091"], scopes=("read", "write"))


async def state(directory: Directory) -> tuple[int, int, int]:
    async with unit_of_work(directory.engine, write=False) as conn:
        counted = [
            await conn.scalar(select(func.count()).select_from(table))
            for table in (persons, personas, roles)
        ]
    return counted[0] or 0, counted[1] or 0, counted[2] or 0


async def post(
    client: httpx.AsyncClient, caller: Client, path: str, body: dict[str, Any]
) -> httpx.Response:
    """POST ``body`` as ASCII-escaped JSON, the way lone surrogates travel in JSON."""
    headers = {**caller.headers, "Content-Type": "application/json"}
    return await client.post(path, content=json.dumps(body), headers=headers)


def well_formed(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 500, response.text
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error"}
        assert {"type", "message"} <= set(body["error"])
    return body


@pytest.mark.parametrize("value", HOSTILE)
async def test_persons_api_takes_hostile_strings_literally(
    client: httpx.AsyncClient, caller: Client, directory: Directory, value: str
) -> None:
    before = await state(directory)
    for name in (*PERSON_FIELDS, "identifier"):
        found = well_formed(await post(client, caller, "/persons/find/", {name: value}))
        assert found["error"]["type"] in ("not_found", "invalid_request")
    for name in ("group_ids", "groups_external_refs"):
        refused = well_formed(await post(client, caller, "/persons/find/", {name: [value]}))
        assert refused["error"]["type"] in ("group_not_found", "invalid_request")
    assert await state(directory) == before

    for name in PERSON_FIELDS:
        item = {"first_name": "Eve", "last_name": "Hostile", "group_ids": ["F50091"], name: value}
        answer = well_formed(await post(client, caller, "/persons/multiple/", {"persons": [item]}))
        if "persons" in answer:
            [entry] = answer["persons"]
            if "failure_type" not in entry and name != "phone_number":
                assert entry[name] == value  # stored as sent, when it can be stored at all
    refs = well_formed(
        await post(
            client,
            caller,
            "/persons/multiple/",
            {"persons": [{"email_address": "x@y.example", "groups_external_refs": [value]}]},
        )
    )
    if "error" in refs:
        assert refs["error"]["type"] == "invalid_request"
    else:
        assert refs["persons"][0]["failure_type"] == "group_not_found"


@pytest.mark.parametrize("raw", RAW)
async def test_people_api_takes_hostile_query_strings_literally(
    client: httpx.AsyncClient, caller: Client, directory: Directory, raw: str
) -> None:
    before = await state(directory)
    for query in (
        f"accountId={raw}",
        f"accountId=F50091&search={raw}",
        f"accountId=F50091&roleNames={raw}",
        f"accountId=F50091&status={raw}",
        f"accountId=F50091&teams={raw}",
        f"accountId=F50091&{raw}=1",
    ):
        answer = well_formed(await client.get(f"/people?{query}"))
        if "rows" in answer:
            assert answer["rows"] == []
    assert await state(directory) == before


@pytest.mark.parametrize("value", HOSTILE)
async def test_people_api_writes_refuse_or_store_hostile_strings(
    client: httpx.AsyncClient, caller: Client, directory: Directory, value: str
) -> None:
    before = await state(directory)
    person = {"accountId": "F50091", "firstName": value, "lastName": "Hostile", "roleName": "User"}
    created = await post(client, caller, "/people", person)
    body = well_formed(created)
    if created.status_code == 201:
        assert body["firstName"] == value
    else:
        assert await state(directory) == before
    role = await post(client, caller, "/roles", {"accountId": "F50091", "name": value})
    well_formed(role)
    bad_account = await post(client, caller, "/people", {**person, "accountId": value})
    assert well_formed(bad_account)["error"]["type"] in ("account_not_found", "invalid_request")
