"""Concurrent writers of the same new person end as a sequential run of them would.

Each test sends RACERS writes of one new person at once, over real connections
(``asyncio.gather`` through the ASGI app, or ``import_rows`` beside itself), by one
key, through one door, into one account or alternating between two, on both
backends; then it compares what the directory holds, and what each writer was
answered, with what the same writes give one after another.

On PostgreSQL the writes really overlap (each request has a connection and a
transaction of its own); on SQLite writers are serialised by ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from roster.core.importing import import_rows
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons
from tests.bulk import write_csv
from tests.factories import Client, Directory

RACERS = 20
ONE, TWO = ("A1",), ("A1", "A2")
KEYS = {
    "external_ref": {"external_ref": "race-1"},
    "email": {"email_address": "race@example.com"},
    "phone": {"phone_number": "07700 900123"},
}


async def persons_and_personas(directory: Directory) -> tuple[int, Counter[str]]:
    """How many persons there are, and how many personas each account has."""
    async with unit_of_work(directory.engine, write=False) as conn:
        people = int(await conn.scalar(select(func.count()).select_from(persons)) or 0)
        rows = await conn.execute(
            select(personas.c.account_id, func.count()).group_by(personas.c.account_id)
        )
        return people, Counter({account: int(n) for account, n in rows})


@pytest.fixture
async def caller(directory: Directory) -> Client:
    for account in TWO:
        await directory.account(account)
    return await directory.client(TWO)


def _accounts(racer: int, accounts: tuple[str, ...]) -> str:
    return accounts[racer % len(accounts)]


async def _upsert(http: httpx.AsyncClient, caller: Client, key: str, account: str) -> str:
    item = {**KEYS[key], "first_name": "Racer", "group_ids": [account]}
    response = await http.post(
        "/persons/multiple/", json={"persons": [item]}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    [entry] = response.json()["persons"]
    return "ok" if entry["success"] else f"failed {entry['failure_type']}"


#: The People API's names of the keys (it has no key for phone; its number is a person field).
_PEOPLE_KEYS = {
    "external_ref": "externalRef",
    "email": "emailAddress",
    "phone": "primaryMobileNumber",
}


async def _add_person(http: httpx.AsyncClient, caller: Client, key: str, account: str) -> str:
    [(_, value)] = KEYS[key].items()
    body = {
        "accountId": account,
        "firstName": "Racer",
        "lastName": "One",
        "roleName": "User",
        _PEOPLE_KEYS[key]: value,
    }
    response = await http.post("/people", json=body, headers=caller.headers)
    assert response.status_code in (201, 409), response.text
    return "ok" if response.status_code == 201 else f"409 {response.json()['error']['type']}"


async def warm_up(client: httpx.AsyncClient, caller: Client) -> None:
    """Open a connection for each racer first, so that no racer waits for one to open
    while the others run ahead."""
    await asyncio.gather(
        *(
            client.post("/persons/find/", json={"external_ref": "none"}, headers=caller.headers)
            for _ in range(RACERS)
        )
    )


async def race_through_api(
    client: httpx.AsyncClient, caller: Client, door: str, key: str, accounts: tuple[str, ...]
) -> Counter[str]:
    write = _upsert if door == "persons" else _add_person
    await warm_up(client, caller)
    answers = await asyncio.gather(
        *(write(client, caller, key, _accounts(n, accounts)) for n in range(RACERS))
    )
    return Counter(answers)


#: Every race: by each key, into one account or alternating between two.
every_race = pytest.mark.parametrize(
    ("key", "accounts"),
    [(key, accounts) for key in KEYS for accounts in (ONE, TWO)],
    ids=[f"{key}-{n}-account{'s' * (n - 1)}" for key in KEYS for n in (1, 2)],
)


@every_race
async def test_persons_api_upserts_of_one_new_person(
    client: httpx.AsyncClient,
    directory: Directory,
    caller: Client,
    key: str,
    accounts: tuple[str, ...],
) -> None:
    answers = await race_through_api(client, caller, "persons", key, accounts)
    assert answers == Counter({"ok": RACERS})
    # A phone number matches only among the persons of the item's groups: a person
    # made in A1 is not found by an item for A2, so two accounts give two persons, as
    # the same items sent one after another do.
    people = len(accounts) if key == "phone" else 1
    assert await persons_and_personas(directory) == (people, Counter(dict.fromkeys(accounts, 1)))


@every_race
async def test_people_api_creates_of_one_new_person(
    client: httpx.AsyncClient,
    directory: Directory,
    caller: Client,
    key: str,
    accounts: tuple[str, ...],
) -> None:
    answers = await race_through_api(client, caller, "people", key, accounts)
    people, memberships = await persons_and_personas(directory)
    if key == "email":
        # A known email joins its person; a second persona in one account is a conflict.
        assert answers == Counter({"ok": len(accounts), "409 conflict": RACERS - len(accounts)})
        assert (people, memberships) == (1, Counter(dict.fromkeys(accounts, 1)))
    elif key == "external_ref":
        # POST /people joins by email only: the first racer's ref is taken for the rest.
        assert answers == Counter({"ok": 1, "409 duplicate_value": RACERS - 1})
        assert (people, memberships.total()) == (1, 1)
    else:
        # The People API matches no one by phone: each POST is a new person.
        assert answers == Counter({"ok": RACERS})
        assert (people, memberships) == (
            RACERS,
            Counter(dict.fromkeys(accounts, RACERS // len(accounts))),
        )


@every_race
async def test_imports_of_one_new_person(
    directory: Directory, caller: Client, tmp_path: Path, key: str, accounts: tuple[str, ...]
) -> None:
    [(column, value)] = KEYS[key].items()
    row = {"first_name": "Racer", "last_name": "", "email_address": "", "phone_number": ""}
    row |= {"external_ref": "", column: value}
    path = write_csv(tmp_path / "one.csv", list(row), [list(row.values())])

    async def run(racer: int) -> tuple[int, int, int]:
        summary = await import_rows(
            directory.engine, directory.settings, _accounts(racer, accounts), path
        )
        return summary.created, summary.updated + summary.unchanged, summary.failed

    summaries = await asyncio.gather(*(run(n) for n in range(RACERS)))
    people = len(accounts) if key == "phone" else 1
    created = Counter(s[0] for s in summaries)
    assert created == Counter({1: len(accounts), 0: RACERS - len(accounts)})
    assert [s[2] for s in summaries] == [0] * RACERS
    assert await persons_and_personas(directory) == (people, Counter(dict.fromkeys(accounts, 1)))


#: A new value for each of a person's fields, each set by a writer of its own.
PERSON_CHANGES = {
    "title": "Dr",
    "middleInitials": "J",
    "gender": "female",
    "nationality": "FR",
    "countryOfResidence": "GB",
    "dob": "1990-02-03",
    "primaryMobileNumber": "07700 900999",
    "externalRef": "changed-ref",
}
PERSONA_CHANGES = {
    "jobTitle": "Pilot",
    "employeeNumber": "E-1",
    "workNumber": "020 7946 0000",
    "emailAddress": "work@example.com",
    "status": "invited",
}


async def test_writers_of_different_fields_of_one_person_lose_none(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """Each writer plans against the person as the writer before it left it (on
    PostgreSQL the person's row is locked as it is read), so no write undoes another."""
    row = (
        await client.post(
            "/people",
            json={"accountId": "A1", "firstName": "Ann", "lastName": "Lee", "roleName": "User"},
            headers=caller.headers,
        )
    ).json()
    person_path = f"/people/{row['id']}?accountId=A1"
    persona_path = f"/personas/{row['persona']['id']}?accountId=A1"
    names = [("firstName", "Anne"), ("lastName", "Leigh")]
    upserts = [
        {"external_ref": "ann", "first_name": "Ann"},
        {"external_ref": "ann", "email_address": "ann@example.com"},
    ]
    await warm_up(client, caller)
    answers = await asyncio.gather(
        *(
            client.patch(person_path, json={name: value}, headers=caller.headers)
            for name, value in (*PERSON_CHANGES.items(), *names)
        ),
        *(
            client.patch(persona_path, json={name: value}, headers=caller.headers)
            for name, value in PERSONA_CHANGES.items()
        ),
    )
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    # The Persons API's upserts by the (new) external_ref, each giving one field.
    entries = await asyncio.gather(
        *(
            client.post(
                "/persons/multiple/",
                json={"persons": [{**item, "external_ref": "changed-ref", "group_ids": ["A1"]}]},
                headers=caller.headers,
            )
            for item in upserts
        )
    )
    assert [e.json()["persons"][0]["success"] for e in entries] == [True, True]
    listed = await client.get("/people", params={"accountId": "A1"}, headers=caller.headers)
    [final] = listed.json()["rows"]
    assert {name: final[name] for name in PERSON_CHANGES} == PERSON_CHANGES
    assert (final["firstName"], final["lastName"]) == ("Ann", "Leigh")
    assert final["primaryEmailAddress"] == "ann@example.com"
    persona = final["persona"]
    assert {name: persona[name] for name in PERSONA_CHANGES} == PERSONA_CHANGES
