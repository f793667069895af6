"""The change log (spec/events.md): every change through every door appends its events
in its own transaction; a refused or rolled-back change appends none."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from roster.core.auth import revoke_client
from roster.core.demo import generate_demo
from roster.core.events import Actor, EventFilter, StoredEvent, read_events
from roster.core.people.personas import update_persona
from roster.core.writer import PersonWrite, write_persons
from roster.db.engine import unit_of_work
from roster.db.tables import events
from tests.factories import Client, Directory
from tests.test_events_feed import ACCOUNT, OTHER, add_person, caller, send

__all__ = ["caller"]  # a fixture shared with the feed's tests


async def logged(directory: Directory, account_id: str = ACCOUNT, after: int = 0) -> list[Any]:
    """The account's events as the log holds them, oldest first."""
    async with unit_of_work(directory.engine, write=False) as conn:
        return await read_events(conn, EventFilter(account_id, after))


async def event_count(directory: Directory) -> int:
    async with unit_of_work(directory.engine, write=False) as conn:
        return int(await conn.scalar(select(func.count()).select_from(events)) or 0)


async def follow(directory: Directory, last: int, seen: list[int], done: asyncio.Event) -> None:
    """Follow the account's log by the last id read, noting each id seen, until ``done``
    is set and a read after it finds nothing new."""
    while True:
        caught_up = done.is_set()
        page = await logged(directory, ACCOUNT, last)
        seen.extend(event.id for event in page)
        last = page[-1].id if page else last
        if caught_up and not page:
            return
        await asyncio.sleep(0.005)


def summary(event: StoredEvent) -> tuple[str, str, list[str]]:
    return event.type, event.resource_type, json.loads(event.changed or "[]")


async def test_a_change_through_the_api_appends_its_event_with_its_client_and_request(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    before = await logged(directory)
    response = await client.post(
        "/people",
        json={
            "accountId": ACCOUNT,
            "firstName": "Ann",
            "lastName": "Lee",
            "emailAddress": "ann@example.com",
            "roleName": "User",
        },
        headers={**caller.headers, "X-Request-ID": "req-42"},
    )
    assert response.status_code == 201, response.text
    row = response.json()
    [created] = (await logged(directory))[len(before) :]
    assert (created.type, created.resource_type, created.resource_id) == (
        "person.created",
        "person",
        row["id"],
    )
    assert (created.actor_type, created.actor_id, created.actor_name, created.request_id) == (
        "client",
        caller.client_id,
        "hr-sync",
        "req-42",
    )
    changed = json.loads(created.changed or "[]")
    assert {"first_name", "last_name", "email_address"} <= set(changed)
    assert "persona.status" in changed
    data = json.loads(created.data or "null")
    assert data["person"]["email_address"] == "ann@example.com"
    assert data["persona"]["id"] == row["persona"]["id"]
    assert data["persona"]["account_id"] == ACCOUNT


async def test_a_refused_write_appends_no_event(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    await add_person(client, caller, emailAddress="ann@example.com", externalRef="A1")
    count = await event_count(directory)
    body = {"accountId": ACCOUNT, "firstName": "X", "lastName": "Y", "roleName": "Astronaut"}
    assert (await send(client, caller, "POST", "/people", body)).status_code == 422
    bob = await add_person(client, caller, firstName="Bob", emailAddress="bob@example.com")
    count += 1
    clash = await send(
        client, caller, "PATCH", f"/people/{bob['id']}?accountId={ACCOUNT}", {"externalRef": "A1"}
    )
    assert clash.status_code == 409, clash.text
    bad_team = {"accountId": ACCOUNT, "name": "T", "memberPersonaIds": [str(uuid.uuid4())]}
    assert (await send(client, caller, "POST", "/teams", bad_team)).status_code == 404
    assert await event_count(directory) == count


async def test_a_rolled_back_unit_of_work_leaves_no_event_and_a_committed_one_has_its_events(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    row = await add_person(client, caller)
    persona_id = uuid.UUID(row["persona"]["id"])
    count = await event_count(directory)

    async def fails_after_writing() -> None:
        async with unit_of_work(directory.engine, write=True) as conn:
            await update_persona(conn, ACCOUNT, persona_id, {"job_title": "Pilot"}, "GB")
            raise RuntimeError("the edge fails after the write")

    with pytest.raises(RuntimeError):
        await fails_after_writing()
    assert await event_count(directory) == count
    async with unit_of_work(directory.engine, write=True) as conn:
        await update_persona(conn, ACCOUNT, persona_id, {"job_title": "Pilot"}, "GB")
    [updated] = (await logged(directory))[-1:]
    assert summary(updated) == ("persona.updated", "persona", ["job_title"])
    # Nobody named an actor: the command line's user did it.
    assert (updated.actor_type, updated.actor_id) == ("cli", Actor.command_line().id)
    assert json.loads(updated.data or "null")["persona"]["job_title"] == "Pilot"


async def test_a_shared_person_changes_in_each_of_its_accounts_and_no_account_sees_another(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    row = await add_person(client, caller, emailAddress="ann@example.com")
    joined = await send(
        client,
        caller,
        "POST",
        "/people",
        {
            "accountId": OTHER,
            "firstName": "Ann",
            "lastName": "Lee",
            "emailAddress": "ann@example.com",
            "roleName": "User",
        },
    )
    assert joined.status_code == 201, joined.text
    [persona_created] = (await logged(directory, OTHER))[-1:]
    assert summary(persona_created)[:2] == ("persona.created", "persona")
    assert persona_created.resource_id == joined.json()["persona"]["id"]
    changed = await send(
        client, caller, "PATCH", f"/people/{row['id']}?accountId={ACCOUNT}", {"lastName": "Ng"}
    )
    assert changed.status_code == 200, changed.text
    for account, persona in (
        (ACCOUNT, row["persona"]["id"]),
        (OTHER, joined.json()["persona"]["id"]),
    ):
        [updated] = (await logged(directory, account))[-1:]
        assert summary(updated) == ("person.updated", "person", ["last_name"])
        data = json.loads(updated.data or "null")
        assert data["person"]["last_name"] == "Ng"
        assert data["persona"]["id"] == persona  # the account's own persona, no other
        assert data["persona"]["account_id"] == account
    for event in await logged(directory, OTHER):
        assert ACCOUNT not in (event.data or "")


async def test_removing_a_persona_and_its_individual_budget(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    row = await add_person(client, caller)
    persona = row["persona"]["id"]
    budget = await send(
        client,
        caller,
        "POST",
        "/budgets",
        {
            "accountId": ACCOUNT,
            "name": "Mine",
            "type": "individual",
            "primaryOwnerPersonaId": persona,
        },
    )
    assert budget.status_code == 201, budget.text
    removed = await send(client, caller, "DELETE", f"/personas/{persona}?accountId={ACCOUNT}")
    assert removed.status_code == 204
    deleted_persona, deleted_budget = (await logged(directory))[-2:]
    assert (deleted_persona.type, deleted_persona.resource_id, deleted_persona.data) == (
        "persona.deleted",
        persona,
        None,
    )
    assert (deleted_budget.type, deleted_budget.resource_id) == (
        "budget.deleted",
        budget.json()["id"],
    )


async def test_teams_budgets_roles_and_addresses_log_their_changes(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    ann = (await add_person(client, caller))["persona"]["id"]
    bob = (await add_person(client, caller, firstName="Bob"))["persona"]["id"]
    start = len(await logged(directory))
    team = await send(
        client,
        caller,
        "POST",
        "/teams",
        {"accountId": ACCOUNT, "name": "Ops", "memberPersonaIds": [ann]},
    )
    team_id = team.json()["id"]
    member = f"/teams/{team_id}/members/{bob}?accountId={ACCOUNT}"
    assert (await send(client, caller, "PUT", member)).status_code in (200, 204)
    assert (await send(client, caller, "PUT", member)).status_code in (200, 204)  # no change
    assert (await send(client, caller, "DELETE", member)).status_code in (200, 204)
    assert (await send(client, caller, "DELETE", member)).status_code in (200, 204)  # none
    shared = {"accountId": ACCOUNT, "name": "Travel", "type": "shared", "memberPersonaIds": [ann]}
    assert (await send(client, caller, "POST", "/budgets", shared)).status_code == 201
    role = {"accountId": ACCOUNT, "name": "Buyer"}
    assert (await send(client, caller, "POST", "/roles", role)).status_code == 201
    address = {
        "personaId": ann,
        "type": "home",
        "addressLine1": "1 High St",
        "city": "Leeds",
        "postcode": "LS1 1AA",
        "country": "gb",
    }
    answer = await send(client, caller, "POST", f"/addresses?accountId={ACCOUNT}", address)
    assert answer.status_code == 201, answer.text
    found = (await logged(directory))[start:]
    assert [summary(e) for e in found] == [
        ("team.created", "team", ["name", "member_persona_ids"]),
        ("team.member_added", "team", ["member_persona_ids"]),
        ("team.member_removed", "team", ["member_persona_ids"]),
        ("budget.created", "budget", ["name", "member_persona_ids", "type"]),
        ("role.created", "role", ["name"]),
        (
            "address.created",
            "address",
            ["type", "address_line1", "city", "postcode", "country_code", "persona_id"],
        ),
    ]
    # A member event names who joined or left, never the whole member list (a team of
    # 100,000 would read and log them all for each change): the team holds ann and bob.
    joined, left = (json.loads(event.data or "null") for event in found[1:3])
    assert (joined["name"], joined["persona_ids"], left["persona_ids"]) == ("Ops", [bob], [bob])
    assert "member_persona_ids" not in joined
    assert "member_persona_ids" not in left
    assert json.loads(found[5].data or "null")["country_code"] == "GB"
    assert all(e.actor_id == caller.client_id for e in found)


async def test_accounts_created_by_the_command_line_are_logged(directory: Directory) -> None:
    await directory.account("NEW1", "New one")
    [created] = await logged(directory, "NEW1")
    assert summary(created) == ("account.created", "account", ["name"])
    assert created.actor_type == "cli"
    assert json.loads(created.data or "null")["name"] == "New one"


async def test_ids_follow_commit_order_so_a_follower_misses_no_event(directory: Directory) -> None:
    """Writer A appends first and commits last; writer B starts after A and would commit
    first. A consumer that follows the log by the last id it read must still see every
    event of both (with ids handed out as asked, B's larger id would be read before A's
    smaller one commits, and A's event would be skipped for ever)."""
    await directory.account(ACCOUNT)
    seen: list[int] = []
    done = asyncio.Event()

    def person(name: str) -> PersonWrite:
        return PersonWrite({"external_ref": name, "last_name": name}, frozenset((ACCOUNT,)))

    async def write_b() -> None:
        async with unit_of_work(directory.engine, write=True) as conn:
            await write_persons(conn, [person("B")], region="GB")

    follower = asyncio.create_task(follow(directory, 0, seen, done))
    async with unit_of_work(directory.engine, write=True) as conn:
        await write_persons(conn, [person("A")], region="GB")
        b = asyncio.create_task(write_b())
        await asyncio.sleep(0.5)  # B commits now if it can; the follower reads what it finds
        a_committed_after = b.done()
    await b
    done.set()
    await follower
    every = [event.id for event in await logged(directory, ACCOUNT)]
    assert seen == every, f"the follower missed {sorted(set(every) - set(seen))}"
    assert every == sorted(every)
    assert not a_committed_after  # B waited for A: its event's id is larger than A's
    last_two = (await logged(directory))[-2:]
    writers = [json.loads(e.data or "null")["person"]["external_ref"] for e in last_two]
    assert writers == ["A", "B"]


async def test_the_demo_logs_everything_it_adds_and_nothing_when_run_again(
    directory: Directory,
) -> None:
    summary = await generate_demo(directory.engine, directory.settings, "DEMO", 60, seed=3)
    found = Counter(event.type for event in await logged(directory, "DEMO"))
    assert found["account.created"] == 1
    assert found["person.created"] == summary.people
    assert found["role.created"] == summary.custom_roles == 2
    assert found["team.created"] == summary.teams
    assert found["budget.created"] == summary.budgets
    assert found["address.created"] == summary.addresses
    assert found["persona.updated"] > 0  # the createdBy links
    assert set(found) <= {
        "account.created",
        "person.created",
        "persona.updated",
        "role.created",
        "team.created",
        "budget.created",
        "address.created",
    }
    before = len(await logged(directory, "DEMO"))
    await generate_demo(directory.engine, directory.settings, "DEMO", 60, seed=3)
    assert len(await logged(directory, "DEMO")) == before


async def test_the_persons_api_upsert_logs_each_item_that_changed_something(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    start = len(await logged(directory))
    items = [
        {"first_name": "Ann", "last_name": "Lee", "external_ref": "p-1", "group_ids": [ACCOUNT]},
        {"first_name": "Bob", "group_ids": [ACCOUNT]},  # too little to match: fails
        {"first_name": "Ann", "last_name": "Ng", "external_ref": "p-1", "group_ids": [ACCOUNT]},
        {"first_name": "Ann", "last_name": "Ng", "external_ref": "p-1", "group_ids": [ACCOUNT]},
        {"external_ref": "p-1", "group_ids": [OTHER]},
    ]
    response = await send(client, caller, "POST", "/persons/multiple/", {"persons": items})
    assert response.status_code == 200, response.text
    assert [p["success"] for p in response.json()["persons"]] == [True, False, True, True, True]
    mine = (await logged(directory))[start:]
    assert [summary(e) for e in mine] == [
        (
            "person.created",
            "person",
            ["first_name", "last_name", "external_ref", "persona.status", "persona.role_id"],
        ),
        ("person.updated", "person", ["last_name"]),  # the fourth item changed nothing
    ]
    [joined] = (await logged(directory, OTHER))[-1:]
    assert (joined.type, json.loads(joined.changed or "[]")) == (
        "persona.created",
        ["status", "role_id"],
    )
    assert {e.actor_id for e in [*mine, joined]} == {caller.client_id}


async def test_clients_created_and_revoked_are_logged_in_each_account_they_reach(
    caller: Client, directory: Directory
) -> None:
    await directory.account("THIRD")
    everywhere = await directory.client(None, name="all")
    async with unit_of_work(directory.engine, write=True) as conn:
        await revoke_client(conn, caller.client_id)
        await revoke_client(conn, caller.client_id)  # already revoked: nothing more
    for account in (ACCOUNT, OTHER, "THIRD"):
        found = [e for e in await logged(directory, account) if e.resource_type == "client"]
        mine = [e.type for e in found if e.resource_id == caller.client_id]
        assert mine == ([] if account == "THIRD" else ["client.created", "client.revoked"])
        [theirs] = [e for e in found if e.resource_id == everywhere.client_id]
        assert json.loads(theirs.data or "null")["all_accounts"] is True
        for event in found:
            assert caller.secret not in (event.data or "")
            assert caller.api_key not in (event.data or "")


async def test_a_follower_of_many_concurrent_writers_sees_every_event_once_in_order(
    directory: Directory,
) -> None:
    """Six writers committing at staggered times while a follower reads by the last id:
    the timing companion of the test above (without the lock it fails some of the time)."""
    await directory.account(ACCOUNT)
    start = (await logged(directory))[-1].id
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(n: int) -> None:
        for k in range(8):
            item = PersonWrite(
                {"external_ref": f"w{n}-{k}", "last_name": f"W{n}"}, frozenset((ACCOUNT,))
            )
            async with unit_of_work(directory.engine, write=True) as conn:
                await write_persons(conn, [item], region="GB")
                await asyncio.sleep(0.002 * ((n + k) % 3))  # commit a little later, or not

    follower = asyncio.create_task(follow(directory, start, seen, done))
    await asyncio.gather(*(writer(n) for n in range(6)))
    done.set()
    await follower
    every = [event.id for event in await logged(directory, ACCOUNT, start)]
    assert len(every) == 48
    assert seen == every
