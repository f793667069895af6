"""``GET /events`` (spec/events.md): the account's log in the People API's names, paged
by id, filtered, long-polled, and 410 past retention."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from roster.api import events as api_events
from roster.api.app import create_app
from roster.core.events import prune_events
from roster.db.engine import unit_of_work
from roster.db.tables import events
from roster.settings import Settings
from tests.factories import Client, Directory

ACCOUNT = "F50091"
OTHER = "OTHER"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account(OTHER)
    return await directory.client([ACCOUNT, OTHER], name="hr-sync")


async def send(
    client: httpx.AsyncClient, caller: Client, method: str, path: str, body: Any = None
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=caller.headers)


async def feed(client: httpx.AsyncClient, caller: Client, status: int = 200, **query: Any) -> Any:
    params = httpx.QueryParams({"accountId": ACCOUNT, **query})
    response = await send(client, caller, "GET", f"/events?{params}")
    assert response.status_code == status, response.text
    return response.json()


async def add_person(
    client: httpx.AsyncClient, caller: Client, account: str = ACCOUNT, **fields: Any
) -> Any:
    body = {"accountId": account, "firstName": "Ann", "lastName": "Lee", "roleName": "User"}
    response = await send(client, caller, "POST", "/people", {**body, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_feed_shows_each_change_as_the_people_api_renders_it(
    client: httpx.AsyncClient, caller: Client
) -> None:
    row = await add_person(client, caller, emailAddress="ann@example.com")
    persona = row["persona"]["id"]
    response = await client.patch(
        f"/personas/{persona}?accountId={ACCOUNT}",
        json={"jobTitle": "Pilot", "status": "deactivated"},
        headers={**caller.headers, "X-Request-ID": "req-7"},
    )
    assert response.status_code == 200, response.text
    page = await feed(client, caller)
    account_created, client_created, person_created, persona_updated = page["events"]
    assert page["nextAfter"] == persona_updated["id"]
    assert account_created["type"] == "account.created"
    assert account_created["actor"]["type"] == "cli"
    # The client, as the account sees it: no secret, and not the other account it reaches.
    assert (client_created["type"], client_created["data"]) == (
        "client.created",
        {
            "id": caller.client_id,
            "name": "hr-sync",
            "scopes": ["read", "write"],
            "allAccounts": False,
            "createdAt": client_created["data"]["createdAt"],
            "rotatedAt": None,
            "revokedAt": None,
        },
    )
    assert person_created["type"] == "person.created"
    assert person_created["resource"] == {"type": "person", "id": row["id"]}
    assert {"firstName", "lastName", "primaryEmailAddress", "status", "roleId"} <= set(
        person_created["changed"]
    )
    assert persona_updated == {
        "id": persona_updated["id"],
        "type": "persona.updated",
        "occurredAt": persona_updated["occurredAt"],
        "accountId": ACCOUNT,
        "resource": {"type": "persona", "id": persona},
        "actor": {"type": "client", "id": caller.client_id, "name": "hr-sync"},
        "requestId": "req-7",
        "changed": ["jobTitle", "status"],
        "data": response.json(),  # the ROW exactly as PATCH (and GET /people) answer it
    }
    assert persona_updated["occurredAt"].endswith("Z")
    assert datetime.fromisoformat(persona_updated["occurredAt"]) <= datetime.now(UTC)


async def test_pages_by_id_and_filters(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    other = await directory.client([ACCOUNT], name="other")
    ann = await add_person(client, caller)
    bob = await add_person(client, other, firstName="Bob")
    team = {"accountId": ACCOUNT, "name": "Ops", "memberPersonaIds": [ann["persona"]["id"]]}
    assert (await send(client, caller, "POST", "/teams", team)).status_code == 201
    every = (await feed(client, caller))["events"]
    assert [e["type"] for e in every] == [
        "account.created",
        "client.created",
        "client.created",
        "person.created",
        "person.created",
        "team.created",
    ]
    ids = [e["id"] for e in every]
    assert ids == sorted(ids)
    first = await feed(client, caller, limit=2)
    assert [e["id"] for e in first["events"]] == ids[:2]
    rest = await feed(client, caller, after=first["nextAfter"])
    assert [e["id"] for e in rest["events"]] == ids[2:]
    assert len(rest["events"]) == 4
    end = await feed(client, caller, after=ids[-1])
    assert end == {"events": [], "nextAfter": ids[-1]}

    def types(page: Any) -> list[str]:
        return [e["type"] for e in page["events"]]

    assert types(await feed(client, caller, types="person.*")) == ["person.created"] * 2
    both = await feed(client, caller, types="team.created,account.created")
    assert types(both) == ["account.created", "team.created"]
    repeated = httpx.QueryParams(
        [("accountId", ACCOUNT), ("types", "team.*"), ("types", "account.*")]
    )
    answer = await send(client, caller, "GET", f"/events?{repeated}")
    assert types(answer.json()) == ["account.created", "team.created"]
    about_bob = await feed(client, caller, resourceId=bob["id"])
    assert [e["resource"]["id"] for e in about_bob["events"]] == [bob["id"]]
    by_other = await feed(client, caller, actorId=other.client_id)
    assert [e["data"]["firstName"] for e in by_other["events"]] == ["Bob"]
    assert (await feed(client, caller, types="role.*"))["events"] == []
    # Another account's log holds none of these.
    assert [e["type"] for e in (await feed(client, caller, accountId=OTHER))["events"]] == [
        "account.created",
        "client.created",
    ]


async def test_a_person_shared_by_two_accounts_is_in_both_logs_and_neither_leaks(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    ann = await add_person(client, caller, emailAddress="ann@example.com")
    there = await add_person(client, caller, OTHER, emailAddress="ann@example.com")
    only_other = await directory.client([OTHER], name="other only")
    changed = await send(
        client, caller, "PATCH", f"/people/{ann['id']}?accountId={ACCOUNT}", {"title": "Dr"}
    )
    assert changed.status_code == 200, changed.text
    mine = (await feed(client, caller, types="person.updated"))["events"]
    theirs = (await feed(client, only_other, accountId=OTHER, types="person.updated"))["events"]
    assert [e["data"]["title"] for e in mine + theirs] == ["Dr", "Dr"]
    assert mine[0]["data"]["persona"]["id"] == ann["persona"]["id"]
    assert theirs[0]["data"]["persona"]["id"] == there["persona"]["id"]
    assert ann["persona"]["id"] not in str(await feed(client, only_other, accountId=OTHER))
    refused = await feed(client, only_other, 404)
    assert refused["error"]["type"] == "account_not_found"


async def test_the_feed_needs_a_reader_of_the_account_and_checks_every_parameter(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    missing = await client.get(f"/events?accountId={ACCOUNT}")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "missing_authorization"
    wrong = await client.get(f"/events?accountId={ACCOUNT}", headers={"Authorization": "ApiKey x"})
    assert wrong.status_code == 403
    writer_only = await directory.client([ACCOUNT], scopes=["write"])
    assert (await feed(client, writer_only, 403))["error"]["type"] == "insufficient_scope"
    for query, name in (
        ({"limit": 1001}, "limit"),
        ({"limit": 0}, "limit"),
        ({"wait": 61}, "wait"),
        ({"after": -1}, "after"),
        ({"after": "x"}, "after"),
        ({"types": "persona.renamed"}, "types"),
        ({"types": "persona.*,"}, "types"),
        ({"resourceId": "a" * 65}, "resourceId"),
        ({"actorId": "a\x00b"}, "actorId"),
        ({"colour": "red"}, "colour"),
    ):
        body = await feed(client, caller, 400, **query)
        assert body["error"]["type"] == "invalid_request", body
        assert [d["field"] for d in body["error"]["details"]] == [name], body
    assert (await feed(client, caller, 404, accountId="NOPE"))["error"]["type"] == (
        "account_not_found"
    )


async def test_long_polling_answers_when_an_event_arrives_or_when_the_wait_ends(
    client: httpx.AsyncClient, caller: Client
) -> None:
    last = (await feed(client, caller))["nextAfter"]
    started = time.monotonic()
    empty = await feed(client, caller, after=last, wait=1)
    assert empty == {"events": [], "nextAfter": last}
    assert 0.9 <= time.monotonic() - started < 5
    started = time.monotonic()
    waiting = asyncio.create_task(feed(client, caller, after=last, wait=30))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    row = await add_person(client, caller)
    page = await waiting
    assert time.monotonic() - started < 5
    assert [e["resource"]["id"] for e in page["events"]] == [row["id"]]


async def test_events_past_retention_are_pruned_and_asking_after_them_is_410(
    client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    await add_person(client, caller)
    await add_person(client, caller, firstName="Bob")
    ids = [e["id"] for e in (await feed(client, caller))["events"]]
    async with unit_of_work(directory.engine, write=True) as conn:
        old = datetime.now(UTC) - timedelta(days=91)
        # Every event but the last person's (the other account's all came before it).
        await conn.execute(update(events).where(events.c.id < ids[-1]).values(occurred_at=old))
        assert await prune_events(conn, 90) >= len(ids) - 1
    kept = await feed(client, caller)
    assert [e["id"] for e in kept["events"]] == ids[-1:]
    expired = await feed(client, caller, 410, after=ids[0])
    assert expired["error"]["type"] == "events_expired"
    assert "read the directory again" in expired["error"]["message"]
    assert [e["id"] for e in (await feed(client, caller, after=ids[-2]))["events"]] == ids[-1:]
    # An account all of whose events are gone: from the start, the horizon to follow.
    nothing = await feed(client, caller, accountId=OTHER)
    assert nothing["events"] == []
    assert nothing["nextAfter"] >= ids[-2]
    assert (await feed(client, caller, accountId=OTHER, after=nothing["nextAfter"]))["events"] == []
    # Ids are never handed out again, even once the newest events are pruned.
    async with unit_of_work(directory.engine, write=True) as conn:
        await conn.execute(update(events).values(occurred_at=old))
        await prune_events(conn, 90)
    row = await add_person(client, caller, firstName="Cy")
    [newest] = (await feed(client, caller, after=ids[-1]))["events"]
    assert newest["resource"]["id"] == row["id"]
    assert newest["id"] > ids[-1]


async def test_the_server_prunes_once_a_day(
    client: httpx.AsyncClient,
    caller: Client,
    directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_person(client, caller)
    async with unit_of_work(directory.engine, write=True) as conn:
        old = datetime.now(UTC) - timedelta(days=91)
        await conn.execute(update(events).values(occurred_at=old))
    monkeypatch.setattr(api_events, "FIRST_PRUNE_SECONDS", 0.0)
    pruning = asyncio.create_task(api_events.prune_daily(directory.engine, 90))
    try:
        for _ in range(100):
            if not (await feed(client, caller))["events"]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the events were not pruned")
    finally:
        pruning.cancel()
    assert (await feed(client, caller, 410, after=0))["error"]["type"] == "events_expired"


async def test_long_polls_hold_no_database_connection_while_they_wait(
    client: httpx.AsyncClient, caller: Client, settings: Settings
) -> None:
    """More long polls than the pool has connections, and another request still answers
    at once (a poll that kept its request's connection would leave it none)."""
    last = (await feed(client, caller))["nextAfter"]
    small = create_app(settings.model_copy(update={"database_pool_size": 1}))
    transport = httpx.ASGITransport(app=small)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://roster.test") as http:
            polls = [asyncio.create_task(feed(http, caller, after=last, wait=3)) for _ in range(14)]
            await asyncio.sleep(0.5)
            started = time.monotonic()
            listed = await send(http, caller, "GET", f"/people?accountId={ACCOUNT}")
            assert listed.status_code == 200, listed.text
            assert time.monotonic() - started < 2
            assert not any(poll.done() for poll in polls)
            for poll in polls:
                assert (await poll) == {"events": [], "nextAfter": last}
    finally:
        await small.state.services.engine.dispose()
