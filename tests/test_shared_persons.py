"""Shared persons (spec/README.md): a client changes a person's own fields only when it
reaches every account where the person has a persona; adding a persona, changing persona
fields, or giving the values the person already has is always allowed.

The rule is held for all data on both APIs: a person with personas in some accounts, a
client reaching some accounts (or all), and a write that gives each field its stored
value, a new one, or nothing.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import select

from roster.core.writer import PersonWrite
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons
from tests.factories import PROPERTY_SETTINGS, Directory

ACCOUNTS = ("A1", "A2", "A3")
STORED: dict[str, Any] = {
    "first_name": "Ann",
    "last_name": "Lee",
    "title": "Dr",
    "dob": date(1990, 2, 3),
    "email_address": "ann@x.example",
    "phone_number": "07700 900001",
    "external_ref": "ann-1",
}
#: A new value for each field (the email another case of the stored one: a change too,
#: since values are stored as sent).
NEW: dict[str, Any] = {
    "first_name": "Anne",
    "last_name": "Leigh",
    "title": "Prof",
    "dob": date(1991, 3, 4),
    "email_address": "ANN@x.example",
    "phone_number": "+44 7700 900002",
    "external_ref": "ann-2",
}
#: The People API's names of these fields.
PEOPLE_NAMES = {
    "first_name": "firstName",
    "last_name": "lastName",
    "title": "title",
    "dob": "dob",
    "email_address": "emailAddress",
    "phone_number": "primaryMobileNumber",
    "external_ref": "externalRef",
}

accounts = st.frozensets(st.sampled_from(ACCOUNTS), min_size=1)
#: Each field: not given, given as stored, or given a new value.
choices = st.fixed_dictionaries({name: st.sampled_from((None, "stored", "new")) for name in STORED})


def values(chosen: dict[str, str | None], names: tuple[str, ...]) -> dict[str, Any]:
    return {
        name: (STORED if choice == "stored" else NEW)[name]
        for name, choice in chosen.items()
        if choice is not None and name in names
    }


async def setting(directory: Directory, home: frozenset[str]) -> uuid.UUID:
    """A fresh directory holding the person, with a persona in each ``home`` account."""
    [person_id] = await directory.fresh(ACCOUNTS, [PersonWrite(STORED, home)])
    return person_id


async def stored(directory: Directory, person_id: uuid.UUID) -> tuple[dict[str, Any], set[str]]:
    """The person's fields and the accounts it has a persona in."""
    async with unit_of_work(directory.engine, write=False) as conn:
        row = (
            await conn.execute(
                select(*(persons.c[name] for name in STORED)).where(persons.c.id == person_id)
            )
        ).one()
        held = set(
            await conn.scalars(
                select(personas.c.account_id).where(personas.c.person_id == person_id)
            )
        )
    return dict(row._mapping), held


def allowed(home: frozenset[str], reach: frozenset[str] | None, changes: dict[str, Any]) -> bool:
    """The rule, written out."""
    return not changes or reach is None or home <= reach


@PROPERTY_SETTINGS
@given(
    home=accounts,
    reach=st.none() | accounts,
    chosen=choices,
    by_email=st.booleans(),
    data=st.data(),
)
async def test_persons_api_upsert_follows_the_shared_person_rule(
    client: httpx.AsyncClient,
    directory: Directory,
    home: frozenset[str],
    reach: frozenset[str] | None,
    chosen: dict[str, str | None],
    by_email: bool,
    data: st.DataObject,
) -> None:
    person_id = await setting(directory, home)
    caller = await directory.client(None if reach is None else sorted(reach))
    group = data.draw(st.sampled_from(sorted(reach or ACCOUNTS)), label="group")
    names = ("first_name", "last_name", "email_address", "phone_number", "external_ref")
    item = values(chosen, names)
    # The item finds the person by its external_ref, or by its email (in either case).
    if by_email:
        item.pop("external_ref", None)
        item.setdefault("email_address", STORED["email_address"])
    else:
        item["external_ref"] = STORED["external_ref"]
    item.setdefault("first_name", STORED["first_name"])
    changes = {name: value for name, value in item.items() if STORED[name] != value}
    response = await client.post(
        "/persons/multiple/",
        json={"persons": [{**item, "group_ids": [group]}]},
        headers=caller.headers,
    )
    assert response.status_code == 200, response.text
    [entry] = response.json()["persons"]
    after, held = await stored(directory, person_id)
    if allowed(home, reach, changes):
        assert entry["success"] is True, entry
        assert entry["identifier"] == str(person_id)
        assert after == {**STORED, **changes}
        assert held == home | {group}
    else:
        assert entry["success"] is False
        assert entry["failure_type"] == "shared_person"
        assert entry["failure_reason"].startswith("shared_person: ")
        assert (after, held) == (STORED, set(home))


@PROPERTY_SETTINGS
@given(home=accounts, reach=st.none() | accounts, chosen=choices, data=st.data())
async def test_people_api_patch_follows_the_shared_person_rule(
    client: httpx.AsyncClient,
    directory: Directory,
    home: frozenset[str],
    reach: frozenset[str] | None,
    chosen: dict[str, str | None],
    data: st.DataObject,
) -> None:
    reachable_homes = sorted(home & (reach or set(ACCOUNTS)))
    assume(reachable_homes)  # the call names an account where the person has a persona
    person_id = await setting(directory, home)
    caller = await directory.client(None if reach is None else sorted(reach))
    account = data.draw(st.sampled_from(reachable_homes), label="account")
    given_values = values(chosen, tuple(STORED))
    changes = {name: value for name, value in given_values.items() if STORED[name] != value}
    body = {PEOPLE_NAMES[name]: str(value) for name, value in given_values.items()}
    path = f"/people/{person_id}?accountId={account}"
    response = await client.patch(path, json=body, headers=caller.headers)
    after, held = await stored(directory, person_id)
    assert held == home
    if allowed(home, reach, changes):
        assert response.status_code == 200, response.text
        assert after == {**STORED, **changes}
    else:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["type"] == "shared_person"
        assert {d["field"] for d in error["details"]} == {PEOPLE_NAMES[n] for n in changes}
        assert after == STORED
    # A persona's own fields are the account's: always changed, shared person or not.
    async with unit_of_work(directory.engine, write=False) as conn:
        persona_id = await conn.scalar(
            select(personas.c.id).where(
                personas.c.person_id == person_id, personas.c.account_id == account
            )
        )
    persona_path = f"/personas/{persona_id}?accountId={account}"
    changed = await client.patch(persona_path, json={"jobTitle": "Pilot"}, headers=caller.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["persona"]["jobTitle"] == "Pilot"
