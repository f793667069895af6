"""A persona's display name (SCIM's displayName), added as one declaration: every door
that writes or shows persona fields has it, with the declared rules."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from roster.core.exporting import export_rows
from roster.core.importing import import_rows
from tests.bulk import leave_empty, write_csv
from tests.factories import Client, Directory

ACCOUNT = "F50091"
#: Stored and returned as sent: accents, inner and outer spaces, punctuation.
SHOWN = " Zoë  O'Brien (Finance) "

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    return await directory.client([ACCOUNT], scopes=("read", "write"))


async def send(
    client: httpx.AsyncClient, caller: Client, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=caller.headers)


async def listed(client: httpx.AsyncClient, caller: Client) -> list[dict[str, Any]]:
    response = await send(client, caller, "GET", f"/people?accountId={ACCOUNT}")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["rows"]
    return rows


async def test_the_people_api_writes_and_shows_a_display_name(
    client: httpx.AsyncClient, caller: Client
) -> None:
    new = {"accountId": ACCOUNT, "firstName": "Zoë", "lastName": "O'Brien", "roleName": "User"}
    created = await send(client, caller, "POST", "/people", {**new, "displayName": SHOWN})
    assert created.status_code == 201, created.text
    assert created.json()["persona"]["displayName"] == SHOWN
    assert "displayName" not in created.json()  # a persona's field, not the person's
    [row] = await listed(client, caller)
    assert row["persona"]["displayName"] == SHOWN

    persona = f"/personas/{row['persona']['id']}?accountId={ACCOUNT}"
    changed = await send(client, caller, "PATCH", persona, {"displayName": "Zoë"})
    assert changed.json()["persona"]["displayName"] == "Zoë"
    cleared = await send(client, caller, "PATCH", persona, {"displayName": None})
    assert cleared.json()["persona"]["displayName"] is None
    [row] = await listed(client, caller)
    assert row["persona"]["displayName"] is None

    without = await send(client, caller, "POST", "/people", {**new, "firstName": "Bo"})
    assert without.json()["persona"]["displayName"] is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x" * 257, "string should have at most 256 characters"),
        ("   ", "must not be blank"),
        ("Zoë\tO", "must not contain control characters or unpaired surrogates"),
        (7, "input should be a valid string"),
    ],
)
async def test_a_display_name_breaking_its_rules_is_400_naming_it(
    client: httpx.AsyncClient, caller: Client, value: Any, problem: str
) -> None:
    new = {"accountId": ACCOUNT, "firstName": "Zoë", "lastName": "O'Brien", "roleName": "User"}
    refused = await send(client, caller, "POST", "/people", {**new, "displayName": value})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["details"] == [{"field": "displayName", "problem": problem}]
    created = await send(client, caller, "POST", "/people", new)
    persona = f"/personas/{created.json()['persona']['id']}?accountId={ACCOUNT}"
    refused = await send(client, caller, "PATCH", persona, {"displayName": value})
    assert refused.json()["error"]["details"] == [{"field": "displayName", "problem": problem}]
    assert (await listed(client, caller))[0]["persona"]["displayName"] is None


async def test_the_person_and_the_persons_api_have_no_display_name(
    client: httpx.AsyncClient, caller: Client
) -> None:
    new = {"accountId": ACCOUNT, "firstName": "Zoë", "lastName": "O'Brien", "roleName": "User"}
    created = await send(client, caller, "POST", "/people", new)
    person = f"/people/{created.json()['id']}?accountId={ACCOUNT}"
    refused = await send(client, caller, "PATCH", person, {"displayName": "Z"})
    assert refused.json()["error"]["details"] == [
        {"field": "displayName", "problem": "is not a known field"}
    ]
    item = {"external_ref": "z", "display_name": "Z", "group_ids": [ACCOUNT]}
    refused = await send(client, caller, "POST", "/persons/multiple/", {"persons": [item]})
    assert refused.json()["error"]["details"] == [
        {"field": "persons[0].display_name", "problem": "is not a known field"}
    ]


async def test_import_and_export_carry_a_display_name(
    client: httpx.AsyncClient, directory: Directory, caller: Client, tmp_path: Path
) -> None:
    header = ("first_name", "last_name", "email_address", "phone_number", "external_ref")
    path = write_csv(
        tmp_path / "people.csv",
        (*header, "display_name"),
        [
            ("Zoë", "O'Brien", "", "", "zob", SHOWN),
            ("Bo", "Ek", "", "", "bo", ""),
            ("Cy", "Long", "", "", "cy", "x" * 257),
        ],
    )
    summary = await import_rows(directory.engine, directory.settings, ACCOUNT, path)
    assert (summary.created, summary.failed) == (2, 1)
    assert summary.failures[0].reason == "Invalid display_name: must be at most 256 characters."
    shown = {
        row["firstName"]: row["persona"]["displayName"] for row in await listed(client, caller)
    }
    assert shown == {"Zoë": SHOWN, "Bo": None}

    out = io.StringIO()
    await export_rows(directory.engine, ACCOUNT, "csv", out)
    exported = {
        row["first_name"]: row["display_name"]
        for row in csv.DictReader(io.StringIO(out.getvalue()))
    }
    assert exported == {"Zoë": SHOWN, "Bo": ""}
    out = io.StringIO()
    await export_rows(directory.engine, ACCOUNT, "jsonl", out)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert {line["first_name"]: line["display_name"] for line in lines} == {
        "Zoë": SHOWN,
        "Bo": None,
    }

    # An empty cell leaves the display name as it is; a new one replaces it.
    again = write_csv(
        tmp_path / "again.csv", (*header, "display_name"), [("Zoë", "", "", "", "zob", "Z")]
    )
    assert (await import_rows(directory.engine, directory.settings, ACCOUNT, again)).updated == 1
    shown = {
        row["firstName"]: row["persona"]["displayName"] for row in await listed(client, caller)
    }
    assert shown == {"Zoë": "Z", "Bo": None}
