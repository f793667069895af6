"""Erasure (spec/events.md): ``DELETE /persons/{identifier}`` and ``roster persons erase``
forget a person everywhere, scrub its data from earlier events and log
``person.erased``; ``roster persons show --json`` prints what is held about one person."""

from __future__ import annotations

import asyncio
import json
from io import StringIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from roster.core.exporting import export_rows
from roster.db.engine import create_engine, unit_of_work
from roster.db.tables import events
from roster.settings import Settings
from tests.commands import roster, succeeds
from tests.factories import Client, Directory
from tests.test_events_feed import ACCOUNT, OTHER, add_person, feed, send

EMAIL = "Ann.Secret@example.com"


@pytest.fixture
async def admin(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account(OTHER)
    return await directory.client([ACCOUNT, OTHER], scopes=["read", "write", "admin"])


async def every_event_as_text(directory: Directory) -> str:
    async with unit_of_work(directory.engine, write=False) as conn:
        return "\n".join(str(tuple(row)) for row in await conn.execute(select(events)))


async def shared_person(client: httpx.AsyncClient, admin: Client) -> Any:
    """A person in both accounts, with an address, a team and a budget it owns."""
    ann = await add_person(client, admin, emailAddress=EMAIL, externalRef="ann-1")
    await add_person(client, admin, OTHER, emailAddress=EMAIL)
    persona = ann["persona"]["id"]
    address = {
        "personaId": persona,
        "type": "home",
        "addressLine1": "1 Secret Lane",
        "city": "Leeds",
        "postcode": "LS1 1AA",
        "country": "GB",
    }
    assert (
        await send(client, admin, "POST", f"/addresses?accountId={ACCOUNT}", address)
    ).is_success
    team = {"accountId": ACCOUNT, "name": "Ops", "memberPersonaIds": [persona]}
    assert (await send(client, admin, "POST", "/teams", team)).status_code == 201
    budget = {
        "accountId": ACCOUNT,
        "name": "Travel",
        "type": "shared",
        "primaryOwnerPersonaId": persona,
    }
    assert (await send(client, admin, "POST", "/budgets", budget)).status_code == 201
    return ann


async def test_erasure_forgets_the_person_everywhere_and_scrubs_the_log(
    client: httpx.AsyncClient, admin: Client, directory: Directory, settings: Settings
) -> None:
    ann = await shared_person(client, admin)
    before = {e["id"]: e["type"] for e in (await feed(client, admin))["events"]}
    assert EMAIL in await every_event_as_text(directory)
    assert "Secret Lane" in await every_event_as_text(directory)
    erased = await send(client, admin, "DELETE", f"/persons/{EMAIL.upper()}")
    assert erased.status_code == 204, erased.text

    for account in (ACCOUNT, OTHER):
        people = await send(client, admin, "GET", f"/people?accountId={account}")
        assert people.json()["rows"] == []
        [last] = (await feed(client, admin, accountId=account))["events"][-1:]
        assert (last["type"], last["resource"], last["data"], last["changed"]) == (
            "person.erased",
            {"type": "person", "id": ann["id"]},
            None,
            [],
        )
    after = (await feed(client, admin))["events"]
    # Earlier events keep their ids and types; those about the person lose their data.
    assert {e["id"]: e["type"] for e in after[:-1]} == before
    for event in after:
        if event["resource"]["type"] in ("person", "persona", "address"):
            assert event["data"] is None, event
    teams = await send(client, admin, "GET", f"/teams?accountId={ACCOUNT}")
    assert teams.json()["rows"][0]["memberPersonaIds"] == []
    budgets = await send(client, admin, "GET", f"/budgets?accountId={ACCOUNT}")
    assert budgets.json()["rows"][0]["primaryOwnerPersonaId"] is None
    logged = await every_event_as_text(directory)
    for trace in (EMAIL, EMAIL.lower(), "Secret Lane", "ann-1"):
        assert trace not in logged
    exported = StringIO()
    await export_rows(directory.engine, ACCOUNT, "jsonl", exported)
    assert EMAIL.lower() not in exported.getvalue().lower()
    gone = await send(client, admin, "DELETE", f"/persons/{ann['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "not_found"


async def test_erasure_needs_admin_and_every_account_of_the_person(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    ann = await shared_person(client, admin)
    await directory.account("THIRD")
    writer = await directory.client([ACCOUNT, OTHER])
    refused = await send(client, writer, "DELETE", f"/persons/{ann['id']}")
    assert (refused.status_code, refused.json()["error"]["type"]) == (403, "insufficient_scope")
    half = await directory.client([ACCOUNT], scopes=["admin"])
    elsewhere = await directory.client(["THIRD"], scopes=["admin"])
    count = len((await feed(client, admin))["events"])
    shared = await send(client, half, "DELETE", f"/persons/{ann['id']}")
    assert (shared.status_code, shared.json()["error"]["type"]) == (403, "shared_person")
    hidden = await send(client, elsewhere, "DELETE", "/persons/ann-1")
    assert (hidden.status_code, hidden.json()["error"]["type"]) == (404, "not_found")
    assert (await client.delete("/persons/ann-1")).status_code == 401
    assert (await send(client, admin, "DELETE", "/persons/nobody@example.com")).status_code == 404
    assert len((await feed(client, admin))["events"]) == count  # nothing changed
    rows = (await send(client, admin, "GET", f"/people?accountId={OTHER}")).json()["rows"]
    assert [r["id"] for r in rows] == [ann["id"]]


def _seed(url: str) -> None:
    """An account with one person, through the core (as a client of the API would)."""

    async def seed() -> None:
        from roster.core.accounts import create_account
        from roster.core.people.personas import add_person as add

        engine = create_engine(Settings(_env_file=None, database_url=url))
        try:
            async with unit_of_work(engine, write=True) as conn:
                await create_account(conn, "E1", "One")
                person = {"first_name": "Ann", "last_name": "Lee", "email_address": EMAIL}
                await add(conn, "E1", person, {}, "User", "GB")
        finally:
            await engine.dispose()

    asyncio.run(seed())


@pytest.mark.slow
def test_persons_show_and_erase_on_the_command_line(fresh_database: str, tmp_path: Path) -> None:
    url = fresh_database
    _seed(url)
    record = json.loads(succeeds(url, "persons", "show", EMAIL, "--json"))
    assert record["person"]["email_address"] == EMAIL
    [persona] = record["personas"]
    assert (persona["account_id"], persona["role_name"]) == ("E1", "User")
    assert [e["type"] for e in record["events"]] == ["person.created"]
    assert record["events"][0]["data"]["person"]["email_address"] == EMAIL
    unsure = roster(url, "persons", "erase", EMAIL)
    assert (unsure.returncode, unsure.stderr) == (
        1,
        "error: erasure cannot be undone: add --yes to erase this person\n",
    )
    erased = json.loads(succeeds(url, "persons", "erase", EMAIL, "--yes", "--json"))
    assert (erased["account_ids"], erased["events_scrubbed"]) == (["E1"], 1)
    gone = roster(url, "persons", "show", EMAIL, "--json")
    assert (gone.returncode, gone.stderr) == (1, f"error: There is no person {EMAIL!r}.\n")
    trail = succeeds(url, "events", "export", "--account", "E1")
    assert EMAIL not in trail
    assert [json.loads(line)["type"] for line in trail.splitlines()] == [
        "account.created",
        "person.created",
        "person.erased",
    ]
