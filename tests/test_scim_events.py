"""SCIM is a door onto the one writer, so its changes are in the change log like every
other door's (spec/events.md): each with the SCIM client as its actor."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Client, Directory
from tests.scim import ACCOUNT, BASE, USER, Scim

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    return await directory.client([ACCOUNT], name="entra")


async def events_after(http: httpx.AsyncClient, caller: Client, after: int) -> list[Any]:
    response = await http.get(
        "/events", params={"accountId": ACCOUNT, "after": after}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["events"]
    return found


async def test_scim_writes_are_logged_with_the_scim_client_as_actor(
    client: httpx.AsyncClient, caller: Client
) -> None:
    scim = Scim(client, caller)
    start = await client.get("/events", params={"accountId": ACCOUNT}, headers=caller.headers)
    after = start.json()["nextAfter"]
    user = await scim.create(
        userName="ann.lee@example.com",
        name={"givenName": "Ann", "familyName": "Lee"},
        emails=[{"value": "ann.lee@example.com", "type": "work", "primary": True}],
        active=True,
    )
    await scim.patch(f"/Users/{user['id']}", {"op": "replace", "path": "active", "value": False})
    group = await scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": "Pilots", "members": [{"value": user["id"]}]},
        expect=201,
    )
    logged = await events_after(client, caller, after)
    types = [event["type"] for event in logged]
    # The group is created with its member: one team.created that holds it.
    assert types == ["person.created", "persona.updated", "team.created"], types
    actor = {"type": "client", "id": caller.client_id, "name": "entra"}
    assert all(event["actor"] == actor for event in logged)
    deactivated = logged[1]
    assert deactivated["resource"] == {"type": "persona", "id": user["id"]}
    assert deactivated["changed"] == ["status"]
    assert deactivated["data"]["persona"]["status"] == "deactivated"
    assert logged[2]["resource"] == {"type": "team", "id": group["id"]}
    assert logged[2]["data"]["memberPersonaIds"] == [user["id"]]
    assert USER in user["schemas"]

    # A group renamed, its member taken out, then the group deleted: one event each, in order.
    after = logged[-1]["id"]
    await scim(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "replace", "path": "displayName", "value": "Senior pilots"},
                {"op": "remove", "path": f'members[value eq "{user["id"]}"]'},
            ],
        },
        expect=204,
    )
    # Taking out someone who is no member changes nothing, and logs nothing.
    await scim(
        "PATCH",
        f"/Groups/{group['id']}",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": f'members[value eq "{user["id"]}"]'}],
        },
        expect=204,
    )
    await scim("DELETE", f"/Groups/{group['id']}", expect=204)
    logged = await events_after(client, caller, after)
    assert [(e["type"], e["changed"]) for e in logged] == [
        ("team.updated", ["name"]),
        ("team.member_removed", ["memberPersonaIds"]),
        ("team.deleted", []),
    ]
    assert logged[0]["data"]["name"] == "Senior pilots"
    assert logged[1]["data"]["personaIds"] == [user["id"]]  # who left; not the members
    assert "memberPersonaIds" not in logged[1]["data"]
    assert logged[2]["data"] is None
    assert {e["resource"]["id"] for e in logged} == {group["id"]}


async def test_a_member_added_again_is_not_logged_and_a_failed_patch_changes_nothing(
    client: httpx.AsyncClient, caller: Client
) -> None:
    scim = Scim(client, caller)
    ann = await scim.create(userName="ann@example.com")
    bob = await scim.create(userName="bob@example.com")
    group = await scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": "Crew", "members": [{"value": ann["id"]}]},
        expect=201,
    )
    after = (await events_after(client, caller, 0))[-1]["id"]
    add = {"op": "add", "path": "members", "value": [{"value": ann["id"]}, {"value": bob["id"]}]}
    path = f"{BASE}/Groups/{group['id']}"
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [add]}
    patched = await client.patch(path, json=body, headers=caller.headers)
    assert patched.status_code == 204, patched.text
    logged = await events_after(client, caller, after)
    # Ann was a member already: the one event names Bob alone.
    assert [(e["type"], e["data"]["personaIds"]) for e in logged] == [
        ("team.member_added", [bob["id"]])
    ]
    # The 204's version is the Group's as read next.
    read = await client.get(path, headers=caller.headers)
    assert read.headers["ETag"] == patched.headers["ETag"] == read.json()["meta"]["version"]

    # A member who is no User of the account: 400, and nothing changed, not even the
    # Group's version.
    stranger = "00000000-0000-4000-8000-000000000001"
    add = {"op": "add", "path": "members", "value": [{"value": stranger}]}
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [add]}
    refused = await client.patch(path, json=body, headers=caller.headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["scimType"] == "invalidValue"
    again = await client.get(path, headers=caller.headers)
    assert again.headers["ETag"] == read.headers["ETag"]
    assert len(again.json()["members"]) == 2
    assert await events_after(client, caller, logged[-1]["id"]) == []
