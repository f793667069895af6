"""Hostile strings in every string a client sends: never a 500, never a change on refusal.

NUL, lone surrogates (which JSON can carry but no database column can hold), SQL and
LIKE metacharacters: each is an ordinary value that matches nothing it should not.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import func, select

from roster.core.fields import storable
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons, roles
from tests.factories import Client, Directory

HOSTILE = ["\x00", "a\x00b", "\ud800", "x\udfffy", "%", "_", "'", "\\", "' OR '1'='1", '"; --']
#: The same in a raw query string: NUL, invalid UTF-8, metacharacters.
RAW = ["%00", "a%00b", "%ED%A0%80", "%FF", "%25", "_", "%27", "%5C", "%27%20OR%20%271%27%3D%271"]
PERSON_FIELDS = ("first_name", "last_name", "email_address", "phone_number", "external_ref")
NO_ACCOUNT = "There is no account %r that you can reach."


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
        assert found["error"]["type"] == ("not_found" if storable(value) else "invalid_request")
    for name in ("group_ids", "groups_external_refs"):
        refused = well_formed(await post(client, caller, "/persons/find/", {name: [value]}))
        expected = "group_not_found" if storable(value) else "invalid_request"
        assert refused["error"]["type"] == expected
    assert await state(directory) == before

    stored_as_sent = 0
    for name in PERSON_FIELDS:
        # An external_ref of its own, so that every item has enough to be created.
        item = {
            "first_name": "Eve",
            "last_name": "Hostile",
            "external_ref": f"eve-{name}",
            "group_ids": ["F50091"],
            name: value,
        }
        answer = well_formed(await post(client, caller, "/persons/multiple/", {"persons": [item]}))
        if "persons" not in answer:  # a value the field's rules refuse: the request is 400
            assert answer["error"]["type"] == "invalid_request"
            assert [d["field"] for d in answer["error"]["details"]] == [f"persons[0].{name}"]
            continue
        [entry] = answer["persons"]
        assert entry["success"], entry
        if name != "phone_number":
            assert entry[name] == value  # stored as sent
            stored_as_sent += 1
    # Every storable value is stored as sent in the names and the external ref at least.
    assert stored_as_sent >= 3 if storable(value) else stored_as_sent == 0
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


def refused(field: str, problem: str) -> dict[str, Any]:
    """The body of a 400 naming one field or parameter."""
    details = [{"field": field, "problem": problem}]
    return {
        "error": {
            "type": "invalid_request",
            "message": f"Invalid request: check {field}.",
            "details": details,
        }
    }


STATUSES = "active, deactivated, created, invited, inviteExpired"


@pytest.mark.parametrize("raw", RAW)
async def test_people_api_takes_hostile_query_strings_literally(
    client: httpx.AsyncClient, caller: Client, directory: Directory, raw: str
) -> None:
    """Sent with a key, so that each gets past authentication to the parameter it tests."""
    before = await state(directory)
    value = unquote(raw, errors="replace")  # how the server reads it (U+FFFD for non-UTF-8)
    unstorable = "must not contain NUL characters or unpaired surrogates"
    listed = {"limit": 100, "offset": 0, "count": 0, "rows": []}
    expected: dict[str, tuple[int, dict[str, Any]]] = {
        f"accountId={raw}": (
            (404, {"error": {"type": "account_not_found", "message": NO_ACCOUNT % value}})
            if re.fullmatch(r"[A-Za-z0-9_-]{1,36}", value)
            else (400, refused("accountId", "must be 1 to 36 letters, digits, '_' or '-'"))
        ),
        f"accountId=F50091&search={raw}": (
            (400, refused("search", unstorable))
            if "\x00" in value
            else (200, {**listed, "search": value})
        ),
        f"accountId=F50091&roleNames={raw}": (
            (400, refused("roleNames", unstorable))
            if "\x00" in value
            else (200, {**listed, "search": None})
        ),
        f"accountId=F50091&status={raw}": (
            400,
            refused("status", f"{value!r} is not one of {STATUSES}"),
        ),
        f"accountId=F50091&teams={raw}": (400, refused("teams", f"{value!r} is not a UUID")),
        f"accountId=F50091&{raw}=1": (400, refused(value, "is not a known parameter")),
    }
    for query, (status, body) in expected.items():
        response = await client.get(f"/people?{query}", headers=caller.headers)
        assert (response.status_code, response.json()) == (status, body), query
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
