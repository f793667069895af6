"""POST /persons/multiple/: create-or-update by the matching rules, each item on its own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons, roles
from tests.factories import Client, Directory

INSUFFICIENT = "Insufficient information to create a new person record"
GROUP_REQUIRED = "group_ids or groups_external_refs is required"


async def upsert(
    client: httpx.AsyncClient, caller: Client, *items: dict[str, Any]
) -> list[dict[str, Any]]:
    response = await client.post(
        "/persons/multiple/", json={"persons": list(items)}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["persons"]
    assert len(entries) == len(items)
    return entries


async def person_count(directory: Directory) -> int:
    async with unit_of_work(directory.engine, write=False) as conn:
        return int(await conn.scalar(select(func.count()).select_from(persons)) or 0)


async def memberships(directory: Directory, identifier: str) -> list[tuple[str, str, str]]:
    """(account, status, role name) of each persona of a person."""
    async with unit_of_work(directory.engine, write=False) as conn:
        rows = await conn.execute(
            select(personas.c.account_id, personas.c.status, roles.c.name)
            .join(roles, roles.c.id == personas.c.role_id)
            .join(persons, persons.c.id == personas.c.person_id)
            .where(persons.c.external_ref == identifier)
            .order_by(personas.c.account_id)
        )
        return [tuple(row) for row in rows]


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091", external_ref="grp-1")
    await directory.account("F50092", external_ref="grp-2")
    return await directory.client(["F50091", "F50092"])


async def test_creates_a_person_with_an_active_user_persona_per_group(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    [entry] = await upsert(
        client,
        caller,
        {
            "first_name": "Test",
            "last_name": "Person 1",
            "email_address": "test1@example.com",
            "phone_number": "01234567890",
            "external_ref": "id-1",
            "group_ids": ["F50091", "F50092"],
        },
    )
    assert entry["success"] is True
    assert entry["failure_reason"] is None
    assert entry["identifier"]
    assert {k: entry[k] for k in ("first_name", "email_address", "external_ref", "group_ids")} == {
        "first_name": "Test",
        "email_address": "test1@example.com",
        "external_ref": "id-1",
        "group_ids": ["F50091", "F50092"],
    }
    assert await memberships(directory, "id-1") == [
        ("F50091", "active", "User"),
        ("F50092", "active", "User"),
    ]
    found = await client.post(
        "/persons/find/", json={"email_address": "TEST1@example.com"}, headers=caller.headers
    )
    assert found.json()["persons"][0]["identifier"] == entry["identifier"]


async def test_groups_by_external_ref(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    [entry] = await upsert(client, caller, {"external_ref": "r", "groups_external_refs": ["grp-2"]})
    assert entry["group_ids"] == ["F50092"]


@pytest.mark.parametrize(
    "item",
    [
        {"first_name": "Ann", "last_name": "Lee"},
        {"email_address": "ann@example.com"},
        {"phone_number": "01234567890"},
        {"first_name": "Ann", "group_ids": ["F50091"]},
    ],
)
async def test_insufficient_information_fails_the_item(
    client: httpx.AsyncClient, directory: Directory, caller: Client, item: dict[str, Any]
) -> None:
    [entry] = await upsert(client, caller, {"group_ids": ["F50091"], **item})
    assert entry["success"] is False
    assert entry["failure_reason"] == INSUFFICIENT
    assert entry["failure_type"] == "insufficient_information"
    assert entry["identifier"] is None
    assert await person_count(directory) == 0


@pytest.mark.parametrize(
    "item",
    [
        {"external_ref": "only-ref"},
        {"email_address": "a@example.com", "last_name": "Lee"},
        {"phone_number": "07700 900123", "first_name": "Ann"},
    ],
)
async def test_enough_information_creates(
    client: httpx.AsyncClient, caller: Client, item: dict[str, Any]
) -> None:
    [entry] = await upsert(client, caller, {"group_ids": ["F50091"], **item})
    assert entry["success"] is True, entry


async def test_matches_by_external_ref_first(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    by_ref = await directory.person(["F50091"], external_ref="ref-1", email_address="a@x.com")
    await directory.person(["F50091"], external_ref="ref-2", email_address="b@x.com")
    [entry] = await upsert(
        client,
        caller,
        {"external_ref": "ref-1", "first_name": "Renamed", "group_ids": ["F50091"]},
    )
    assert entry["identifier"] == str(by_ref)
    assert entry["first_name"] == "Renamed"
    assert entry["email_address"] == "a@x.com"  # absent fields are left as they are
    assert await person_count(directory) == 2


async def test_then_by_email_in_any_group(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.account("ELSEWHERE")
    existing = await directory.person(
        ["ELSEWHERE"], email_address="Ann@Example.com", first_name="Ann"
    )
    # The caller does not reach ELSEWHERE: the person joins F50091 as it is, ...
    [joined] = await upsert(
        client,
        caller,
        {"email_address": "Ann@Example.com", "first_name": "Ann", "group_ids": ["F50091"]},
    )
    assert joined["identifier"] == str(existing)
    assert joined["group_ids"] == ["F50091"]  # ELSEWHERE is not reachable, so not shown
    # ... but only a client that reaches every account of the person changes its fields
    # (tests/test_shared_persons.py holds the rule for all writes).
    item = {"email_address": "ann@example.COM", "last_name": "Lee", "group_ids": ["F50091"]}
    [refused] = await upsert(client, caller, item)
    assert (refused["success"], refused["failure_type"]) == (False, "shared_person")
    [entry] = await upsert(client, await directory.client(None), item)
    assert entry["identifier"] == str(existing)
    assert entry["first_name"] == "Ann"
    assert entry["last_name"] == "Lee"
    assert entry["email_address"] == "ann@example.COM"  # stored as sent
    assert entry["group_ids"] == ["ELSEWHERE", "F50091"]


async def test_then_by_phone_only_among_the_given_groups(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    in_group = await directory.person(["F50091"], phone_number="+44 7700 900123", first_name="A")
    await directory.person(["F50092"], phone_number="07700 900999", first_name="B")
    first, second = await upsert(
        client,
        caller,
        {"phone_number": "07700900123", "first_name": "A2", "group_ids": ["F50091"]},
        {"phone_number": "+447700900999", "first_name": "C", "group_ids": ["F50091"]},
    )
    assert first["identifier"] == str(in_group)
    assert first["first_name"] == "A2"
    # The 0999 number belongs to someone in F50092 only: not matched, a new person.
    assert second["success"] is True
    assert await person_count(directory) == 3


async def test_a_phone_matching_several_persons_fails(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], phone_number="07700 900123", first_name="A")
    # B shares A's number; made elsewhere (so not matched to A), then joins F50091 by ref.
    await directory.person(["F50092"], phone_number="+447700900123", external_ref="b")
    await directory.person(["F50091"], external_ref="b")
    [entry] = await upsert(
        client,
        caller,
        {"phone_number": "07700900123", "first_name": "C", "group_ids": ["F50091"]},
    )
    assert entry["success"] is False
    assert entry["failure_type"] == "ambiguous_match"
    assert await person_count(directory) == 2


async def test_null_fields_are_left_as_they_are(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], external_ref="r", first_name="Keep", last_name="Me")
    [entry] = await upsert(
        client,
        caller,
        {"external_ref": "r", "first_name": None, "last_name": "Changed", "group_ids": ["F50091"]},
    )
    assert (entry["first_name"], entry["last_name"]) == ("Keep", "Changed")


async def test_default_group_is_the_clients_only_account(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    single = await directory.client(["F50092"])
    [entry] = await upsert(client, single, {"external_ref": "no-group"})
    assert entry["success"] is True
    assert entry["group_ids"] == ["F50092"]
    [failed] = await upsert(client, caller, {"external_ref": "two-groups"})
    assert failed["success"] is False
    assert failed["failure_reason"] == GROUP_REQUIRED


async def test_an_unreachable_or_unknown_group_fails_only_that_item(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.account("OTHER")
    bad, unknown, good = await upsert(
        client,
        caller,
        {"external_ref": "a", "group_ids": ["OTHER"]},
        {"external_ref": "b", "groups_external_refs": ["nope"]},
        {"external_ref": "c", "group_ids": ["F50091"]},
    )
    assert (bad["success"], bad["failure_type"]) == (False, "group_not_found")
    assert (unknown["success"], unknown["failure_type"]) == (False, "group_not_found")
    assert good["success"] is True
    assert await person_count(directory) == 1


async def test_both_group_identifiers_fail_the_item(
    client: httpx.AsyncClient, caller: Client
) -> None:
    [entry] = await upsert(
        client,
        caller,
        {"external_ref": "a", "group_ids": ["F50091"], "groups_external_refs": ["grp-1"]},
    )
    assert entry["success"] is False
    assert entry["failure_type"] == "both_group_identifiers_provided"
    assert entry["failure_reason"] == (
        "You have provided both group ids and group external references for this item. "
        "Please only provide one of the two."
    )


async def test_taking_another_persons_email_or_ref_fails_and_changes_nothing(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], external_ref="owner", email_address="taken@example.com")
    await directory.person(["F50091"], external_ref="other", email_address="other@example.com")
    by_email, new_with_taken_email = await upsert(
        client,
        caller,
        {"external_ref": "other", "email_address": "TAKEN@example.com", "group_ids": ["F50091"]},
        {
            "external_ref": "fresh",
            "first_name": "X",
            "email_address": "taken@example.com",
            "group_ids": ["F50092"],
        },
    )
    # The second item has an unknown ref, so it matches the owner by email (the rules'
    # second step) and updates it, moving the owner's external_ref to "fresh".
    assert by_email["success"] is False
    assert by_email["failure_type"] == "duplicate_value"
    assert new_with_taken_email["success"] is True
    found = await client.post(
        "/persons/find/", json={"external_ref": "other"}, headers=caller.headers
    )
    assert found.json()["persons"][0]["email_address"] == "other@example.com"


async def test_an_email_owned_by_another_person_fails(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], external_ref="ref-a", email_address="a@example.com")
    await directory.person(["F50091"], external_ref="ref-b", email_address="b@example.com")
    # ref-a's person tries to take b@'s email.
    [entry] = await upsert(
        client,
        caller,
        {"external_ref": "ref-a", "email_address": "B@example.com", "group_ids": ["F50091"]},
    )
    assert (entry["success"], entry["failure_type"]) == (False, "duplicate_value")
    assert entry["failure_reason"] == "The email_address 'B@example.com' belongs to another person."
    found = await client.post(
        "/persons/find/", json={"external_ref": "ref-a"}, headers=caller.headers
    )
    assert found.json()["persons"][0]["email_address"] == "a@example.com"


async def test_an_items_external_ref_finds_its_holder_so_it_is_never_taken(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """An external_ref is the first matching rule, so an upsert item giving one updates
    the person holding it and can never give it to another person (the People API can
    try: tests/test_people_writes.py has that conflict)."""
    holder = await directory.person(["F50091"], external_ref="ref-a")
    other = await directory.person(["F50091"], external_ref="ref-b", email_address="b@x.com")
    first, second = await upsert(
        client,
        caller,
        {"external_ref": "ref-b", "email_address": "new-b@x.com", "group_ids": ["F50091"]},
        {"external_ref": "ref-a", "email_address": "b@x.com", "group_ids": ["F50091"]},
    )
    assert (first["identifier"], first["external_ref"]) == (str(other), "ref-b")
    # b@x.com was given up by the first item: the holder of ref-a takes it.
    assert (second["identifier"], second["email_address"]) == (str(holder), "b@x.com")
    assert await person_count(directory) == 2


async def test_each_items_result_shows_the_person_as_that_item_left_it(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    first, second = await upsert(
        client,
        caller,
        {"external_ref": "r", "first_name": "One", "group_ids": ["F50091"]},
        {"external_ref": "r", "first_name": "Two", "last_name": "L", "group_ids": ["F50092"]},
    )
    assert first["identifier"] == second["identifier"]
    assert (first["first_name"], first["last_name"], first["group_ids"]) == (
        "One",
        None,
        ["F50091"],
    )
    assert (second["first_name"], second["last_name"]) == ("Two", "L")
    assert second["group_ids"] == ["F50091", "F50092"]


async def test_items_see_the_effects_of_earlier_items(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    created, updated, joined = await upsert(
        client,
        caller,
        {"email_address": "new@example.com", "first_name": "New", "group_ids": ["F50091"]},
        {"email_address": "NEW@example.com", "last_name": "Person", "group_ids": ["F50091"]},
        {"email_address": "new@example.com", "first_name": "New", "group_ids": ["F50092"]},
    )
    assert created["identifier"] == updated["identifier"] == joined["identifier"]
    assert (joined["first_name"], joined["last_name"]) == ("New", "Person")
    assert joined["group_ids"] == ["F50091", "F50092"]
    assert await person_count(directory) == 1


async def test_a_failed_item_leaves_the_others_applied_in_order(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    entries = await upsert(
        client,
        caller,
        {"external_ref": "1", "group_ids": ["F50091"]},
        {"first_name": "nobody", "group_ids": ["F50091"]},
        {"external_ref": "3", "group_ids": ["F50091"]},
    )
    assert [e["success"] for e in entries] == [True, False, True]
    assert [e["external_ref"] for e in entries] == ["1", None, "3"]
    assert entries[1]["first_name"] == "nobody"
    assert await person_count(directory) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"persons": []}, "persons"),
        ({"persons": [{"external_ref": "x"}] * 1001}, "persons"),
        ({"persons": [{"external_ref": "x", "nickname": "y"}]}, "persons[0].nickname"),
        ({"persons": [{"external_ref": "  "}]}, "persons[0].external_ref"),
        ({"persons": [{"external_ref": "x", "first_name": "a\x00b"}]}, "persons[0].first_name"),
        (
            {"persons": [{"external_ref": "x", "email_address": "no-at-sign"}]},
            "persons[0].email_address",
        ),
        ({"persons": [{"external_ref": "x", "last_name": "x" * 257}]}, "persons[0].last_name"),
        ({}, "persons"),
    ],
)
async def test_malformed_requests_are_400_and_write_nothing(
    client: httpx.AsyncClient, directory: Directory, caller: Client, body: Any, field: str
) -> None:
    response = await client.post("/persons/multiple/", json=body, headers=caller.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]]
    assert await person_count(directory) == 0


async def test_a_thousand_items_in_one_call(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    items = [
        {
            "external_ref": f"bulk-{n}",
            "first_name": "Bulk",
            "phone_number": f"07700 9{n:05d}",
            "group_ids": ["F50091"],
        }
        for n in range(1000)
    ]
    entries = await upsert(client, caller, *items)
    assert all(e["success"] for e in entries)
    assert [e["external_ref"] for e in entries] == [f"bulk-{n}" for n in range(1000)]
    assert await person_count(directory) == 1000
    again = await upsert(client, caller, *items)
    assert [e["identifier"] for e in again] == [e["identifier"] for e in entries]
    assert await person_count(directory) == 1000
