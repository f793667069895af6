"""A persona's SCIM userName (its own, else its work email, else its person's email) is
unique in its account whichever door writes: the Persons API's bulk upsert, ``roster
import`` and a person's email changed from another account are held to it as SCIM and
the People API are (spec/scim.md; docs/scim.md, "Uniqueness"). On both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from roster.core.importing import import_rows
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons
from tests.bulk import write_csv
from tests.factories import Client, Directory
from tests.test_persons_upsert import upsert

BOSS = "boss@example.com"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    await directory.account("F50092")
    return await directory.client(["F50091", "F50092"])


async def user_names(directory: Directory, account_id: str) -> dict[str, str]:
    """Each persona's userName key in the account, by its person's external_ref."""
    async with unit_of_work(directory.engine, write=False) as conn:
        rows = await conn.execute(
            select(persons.c.external_ref, personas.c.user_name_key)
            .join(persons, persons.c.id == personas.c.person_id)
            .where(personas.c.account_id == account_id)
        )
        return {row[0]: row[1] for row in rows}


async def test_a_persons_api_item_cannot_make_a_persona_read_a_taken_user_name(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """The items that would read BOSS (a new person with that email, a person changing
    its email to it) fail alone with duplicate_value; the others are written."""
    await directory.person(["F50091"], external_ref="boss", user_name=BOSS)
    await directory.person(["F50091"], external_ref="ann", email_address="ann@example.com")
    new, changed, elsewhere, fine = await upsert(
        client,
        caller,
        {"external_ref": "new", "email_address": "Boss@Example.com", "group_ids": ["F50091"]},
        {"external_ref": "ann", "email_address": "BOSS@example.com", "group_ids": ["F50091"]},
        {"external_ref": "far", "email_address": BOSS, "group_ids": ["F50092"]},
        {"external_ref": "bob", "email_address": "bob@example.com", "group_ids": ["F50091"]},
    )
    for refused, value in ((new, "Boss@Example.com"), (changed, "BOSS@example.com")):
        assert (refused["success"], refused["failure_type"]) == (False, "duplicate_value")
        assert refused["failure_reason"] == (
            f"The email_address {value!r} is another user's user name here."
        )
    # In another account nobody reads BOSS: the same email is a new person there.
    assert (elsewhere["success"], fine["success"]) == (True, True)
    assert await user_names(directory, "F50091") == {
        "boss": BOSS,
        "ann": "ann@example.com",
        "bob": "bob@example.com",
    }
    assert await user_names(directory, "F50092") == {"far": BOSS}


async def test_a_user_name_given_up_earlier_in_a_batch_can_be_taken_later_in_it(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """Items apply in order: once ann's persona reads another email, hers is free."""
    await directory.person(["F50091"], external_ref="ann", email_address="ann@example.com")
    moved, took = await upsert(
        client,
        caller,
        {"external_ref": "ann", "email_address": "ann.lee@example.com", "group_ids": ["F50091"]},
        {"external_ref": "new", "email_address": "ann@example.com", "group_ids": ["F50091"]},
    )
    assert (moved["success"], took["success"]) == (True, True), (moved, took)
    assert await user_names(directory, "F50091") == {
        "ann": "ann.lee@example.com",
        "new": "ann@example.com",
    }


async def test_a_persons_email_changed_in_one_account_is_checked_in_its_others(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """ann has personas in both accounts; BOSS is a userName in the second only. Her email
    changed through the first would make her persona in the second read it: refused."""
    await directory.person(["F50092"], external_ref="boss", user_name=BOSS)
    await directory.person(
        ["F50091", "F50092"], external_ref="ann", email_address="ann@example.com"
    )
    [entry] = await upsert(
        client,
        caller,
        {"external_ref": "ann", "email_address": BOSS, "group_ids": ["F50091"]},
    )
    assert (entry["success"], entry["failure_type"]) == (False, "duplicate_value")
    assert await user_names(directory, "F50092") == {"boss": BOSS, "ann": "ann@example.com"}
    assert (await user_names(directory, "F50091"))["ann"] == "ann@example.com"


async def test_an_imported_row_cannot_make_a_persona_read_a_taken_user_name(
    directory: Directory, caller: Client, tmp_path: Path
) -> None:
    await directory.person(["F50091"], external_ref="boss", user_name=BOSS)
    path = write_csv(
        tmp_path / "people.csv",
        ("first_name", "last_name", "email_address", "phone_number", "external_ref"),
        [
            ("Ann", "Lee", "ann@example.com", "", "ann"),
            ("Big", "Boss", "BOSS@example.com", "", "new"),
        ],
    )
    summary = await import_rows(directory.engine, directory.settings, "F50091", path)
    assert (summary.created, summary.failed) == (1, 1)
    [failure] = summary.failures
    assert (failure.line, failure.type) == (3, "duplicate_value")
    assert "is another user's user name here" in failure.reason
    assert await user_names(directory, "F50091") == {"boss": BOSS, "ann": "ann@example.com"}


async def test_scim_and_the_persons_api_racing_for_one_user_name_leave_one_reader(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """Ten SCIM creates of the userName and ten Persons API upserts of a person with that
    email, all at once: they take the same lock of the userName, so one door wins and
    the other's requests are refused; exactly one persona reads it."""
    scim_headers = {**caller.headers, "Content-Type": "application/scim+json"}

    async def by_scim(n: int) -> bool:
        response = await client.post(
            "/scim/v2/F50091/Users",
            json={"userName": "Race@Example.com", "externalId": f"s{n}"},
            headers=scim_headers,
        )
        assert response.status_code in (201, 409), response.text
        return response.status_code == 201

    async def by_persons_api(n: int) -> bool:
        item = {"external_ref": f"p{n}", "email_address": "race@example.com"}
        [entry] = await upsert(client, caller, {**item, "group_ids": ["F50091"]})
        assert entry["success"] or entry["failure_type"] == "duplicate_value", entry
        return bool(entry["success"])

    outcomes = await asyncio.gather(
        *(call(n) for n in range(10) for call in (by_scim, by_persons_api))
    )
    scim_won, persons_won = outcomes[0::2], outcomes[1::2]
    async with unit_of_work(directory.engine, write=False) as conn:
        readers = await conn.scalar(
            select(func.count()).where(
                personas.c.account_id == "F50091",
                personas.c.user_name_key == "race@example.com",
            )
        )
    assert readers == 1
    if any(scim_won):
        assert (sum(scim_won), any(persons_won)) == (1, False)
    else:
        # The Persons API's items match one another by the email: one person, its
        # external_ref that of the last item written.
        assert all(persons_won)


async def test_a_persona_whose_stored_key_is_not_the_writers_own_does_not_fail_the_write(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """Migration 0007 derived the keys of existing personas with SQL's lower(), which
    folds ß as ß where Python's casefold gives ss: the writer does not find such a
    persona under the key it expects, and must still write (it raised KeyError, a 500
    for the whole batch)."""
    await directory.person(["F50091"], external_ref="ann", email_address="STRAßE@example.com")
    async with unit_of_work(directory.engine, write=True) as conn:
        await conn.execute(
            text(
                "UPDATE personas SET user_name_key = lower((SELECT email_address FROM persons"
                " WHERE persons.id = personas.person_id))"
            )
        )
    moved, new = await upsert(
        client,
        caller,
        {"external_ref": "ann", "email_address": "ann@example.com", "group_ids": ["F50091"]},
        {"external_ref": "bob", "email_address": "bob@example.com", "group_ids": ["F50091"]},
    )
    assert (moved["success"], new["success"]) == (True, True), (moved, new)
    assert await user_names(directory, "F50091") == {
        "ann": "ann@example.com",
        "bob": "bob@example.com",
    }
