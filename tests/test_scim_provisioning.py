"""The request sequences Microsoft Entra ID and Okta document for SCIM provisioning,
written from their public documentation ("Develop a SCIM endpoint" for Entra ID, "SCIM
2.0 protocol reference" for Okta), and the other doors seeing what SCIM writes; on both
backends."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from roster.core.people.personas import lock_unique_values
from roster.db.engine import unit_of_work
from tests.factories import Client, Directory
from tests.scim import ACCOUNT, ENTERPRISE, USER, Scim

MANAGER_PATH = f"{ENTERPRISE}:manager"


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    return await directory.client([ACCOUNT])


@pytest.fixture
def scim(client: httpx.AsyncClient, caller: Client) -> Scim:
    return Scim(client, caller)


async def found(scim: Scim, filter_text: str) -> list[dict[str, Any]]:
    answer = await scim("GET", f"/Users?filter={filter_text}")
    resources: list[dict[str, Any]] = answer["Resources"]
    assert answer["totalResults"] == len(resources)
    return resources


async def test_entra_id_user_provisioning(scim: Scim) -> None:
    user_name = "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"
    # The existence check, then the create Entra sends (roles empty, meta sent along).
    assert await found(scim, f'userName eq "{user_name}"') == []
    created = await scim.create(
        schemas=[USER, ENTERPRISE],
        externalId="0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        userName=user_name,
        active=True,
        emails=[{"primary": True, "type": "work", "value": "Test_User@contoso.com"}],
        meta={"resourceType": "User"},
        name={"formatted": "givenName familyName", "familyName": "familyName", "givenName": "g"},
        roles=[],
    )
    user_id = created["id"]
    assert created["active"] is True
    assert created["roles"] == [{"value": "User"}]
    assert [u["id"] for u in await found(scim, f'userName eq "{user_name.upper()}"')] == [user_id]
    by_external = await found(scim, 'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"')
    assert [u["id"] for u in by_external] == [user_id]
    # A User that does not exist.
    await scim("GET", "/Users/5171a35d-8207-4e06-8ce2-000000000000", expect=404)
    # Update: a value-filtered path and a sub-attribute, the operation names capitalised.
    updated = await scim.patch(
        f"/Users/{user_id}",
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updated@contoso.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )
    assert updated["emails"][0] == {"value": "updated@contoso.com", "type": "work"}
    assert updated["name"]["familyName"] == "updatedFamilyName"
    # The manager, given as a bare id; then removed.
    manager = await scim.create(userName="boss", name={"givenName": "Big", "familyName": "Boss"})
    managed = await scim.patch(
        f"/Users/{user_id}", {"op": "Add", "path": MANAGER_PATH, "value": manager["id"]}
    )
    assert managed[ENTERPRISE]["manager"] == {"value": manager["id"], "displayName": "Big Boss"}
    assert [u["id"] for u in await found(scim, f'{MANAGER_PATH}.value eq "{manager["id"]}"')] == [
        user_id
    ]
    unmanaged = await scim.patch(f"/Users/{user_id}", {"op": "Remove", "path": MANAGER_PATH})
    assert "manager" not in unmanaged.get(ENTERPRISE, {})
    # A manager Roster does not know (yet) is kept as sent, without a displayName, and
    # gains one when it names a User of the account.
    unknown = "5171a35d-8207-4e06-8ce2-00000000abcd"
    pending = await scim.patch(
        f"/Users/{user_id}", {"op": "Add", "path": MANAGER_PATH, "value": {"value": unknown}}
    )
    assert pending[ENTERPRISE]["manager"] == {"value": unknown}
    read = await scim("GET", f"/Users/{user_id}")
    assert read[ENTERPRISE]["manager"] == {"value": unknown}
    assert [u["id"] for u in await found(scim, f'{MANAGER_PATH}.value eq "{unknown}"')] == [user_id]
    # A manager deleted later stays as written, without its name.
    await scim.patch(
        f"/Users/{user_id}", {"op": "Replace", "path": MANAGER_PATH, "value": manager["id"]}
    )
    await scim("DELETE", f"/Users/{manager['id']}", expect=204)
    orphaned = await scim("GET", f"/Users/{user_id}")
    assert orphaned[ENTERPRISE]["manager"] == {"value": manager["id"]}
    # A User cannot manage itself; a manager that is no id at all is refused.
    await scim.patch(
        f"/Users/{user_id}", {"op": "Add", "path": MANAGER_PATH, "value": user_id}, expect=400
    )
    await scim.patch(
        f"/Users/{user_id}", {"op": "Add", "path": MANAGER_PATH, "value": "boss"}, expect=400
    )
    await scim.patch(f"/Users/{user_id}", {"op": "Remove", "path": MANAGER_PATH})
    # Disable: Entra sends the boolean as a string.
    disabled = await scim.patch(
        f"/Users/{user_id}", {"op": "Replace", "path": "active", "value": "False"}
    )
    assert disabled["active"] is False
    assert [u["id"] for u in await found(scim, "active eq false")] == [user_id]
    # Deprovision.
    await scim("DELETE", f"/Users/{user_id}", expect=204)
    assert await found(scim, f'userName eq "{user_name}"') == []


async def test_okta_user_provisioning(scim: Scim) -> None:
    user_name = "test.user@okta.local"
    empty = await scim("GET", f'/Users?filter=userName eq "{user_name}"&startIndex=1&count=100')
    assert empty["totalResults"] == 0
    assert empty["Resources"] == []
    body = {
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": True, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": True,
    }
    created = await scim("POST", "/Users", body, expect=201)
    user_id = created["id"]
    assert "password" not in created
    assert created["locale"] == "en-US"
    assert created["displayName"] == "Test User"
    read = await scim("GET", f"/Users/{user_id}")
    assert read == created
    # Okta updates a profile by PUT of the whole User (id and meta sent back as read).
    replaced = await scim(
        "PUT",
        f"/Users/{user_id}",
        {**read, "name": {"givenName": "Another", "familyName": "User"}, "locale": "fr-FR"},
    )
    assert replaced["name"]["givenName"] == "Another"
    assert replaced["locale"] == "fr-FR"
    assert replaced["id"] == user_id
    # Deactivation: a replace without a path.
    deactivated = await scim.patch(
        f"/Users/{user_id}", {"op": "replace", "value": {"active": False}}
    )
    assert deactivated["active"] is False
    reactivated = await scim.patch(
        f"/Users/{user_id}", {"op": "replace", "value": {"active": True}}
    )
    assert reactivated["active"] is True


async def test_a_scim_user_is_found_by_the_other_doors_at_once(
    scim: Scim, client: httpx.AsyncClient, caller: Client
) -> None:
    created = await scim.create(
        userName="zoe",
        name={"givenName": "Zoë", "familyName": "Quist"},
        emails=[{"value": "zoe@example.com", "type": "other"}],
    )
    people = await client.get(f"/people?accountId={ACCOUNT}", headers=caller.headers)
    assert people.status_code == 200
    [row] = people.json()["rows"]
    assert row["firstName"] == "Zoë"
    assert row["persona"]["id"] == created["id"]
    persons = await client.post(
        "/persons/find/", json={"email_address": "ZOE@example.com"}, headers=caller.headers
    )
    assert persons.status_code == 200, persons.text
    assert [p["last_name"] for p in persons.json()["persons"]] == ["Quist"]


async def test_a_people_api_persona_reads_back_through_scim(
    scim: Scim, client: httpx.AsyncClient, caller: Client
) -> None:
    body = {
        "accountId": ACCOUNT,
        "firstName": "Ann",
        "lastName": "Lee",
        "roleName": "Admin",
        "emailAddress": "ann@example.com",
    }
    added = await client.post("/people", json=body, headers=caller.headers)
    assert added.status_code == 201, added.text
    [user] = await found(scim, 'userName eq "ANN@example.com"')
    assert user["userName"] == "ann@example.com"
    assert user["name"]["familyName"] == "Lee"
    assert user["roles"] == [{"value": "Admin"}]
    assert user["active"] is True
    # A person's other door changes its email: the userName it reads follows.
    person_id = added.json()["id"]
    moved = await client.patch(
        f"/people/{person_id}?accountId={ACCOUNT}",
        json={"emailAddress": "ann.lee@example.com"},
        headers=caller.headers,
    )
    assert moved.status_code == 200, moved.text
    [again] = await found(scim, 'userName eq "ann@example.com"')  # its work email, as before
    assert again["emails"] == [
        {"value": "ann@example.com", "type": "work"},
        {"value": "ann.lee@example.com", "type": "other"},
    ]


async def test_scim_writes_follow_the_shared_person_rule(
    scim: Scim, client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("ELSEWHERE")
    person = await directory.person(
        [ACCOUNT, "ELSEWHERE"], first_name="Sam", last_name="Shared", email_address="s@x.com"
    )
    [user] = await found(scim, 'userName eq "s@x.com"')
    assert user["name"]["givenName"] == "Sam"
    refused = await scim.patch(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "name.givenName", "value": "Samuel"},
        expect=403,
    )
    assert "name.givenName" in refused["detail"]
    # The persona's own fields may change.
    titled = await scim.patch(
        f"/Users/{user['id']}", {"op": "replace", "path": "title", "value": "Engineer"}
    )
    assert titled["title"] == "Engineer"
    assert person


GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


async def members_of(scim: Scim, group_id: str) -> list[str]:
    group = await scim("GET", f"/Groups/{group_id}")
    return sorted(m["value"] for m in group.get("members", []))


async def test_entra_id_group_provisioning(scim: Scim) -> None:
    ann = await scim.create(userName="ann", name={"givenName": "Ann", "familyName": "Lee"})
    bob = await scim.create(userName="bob", displayName="Bobby")
    empty = await scim("GET", '/Groups?excludedAttributes=members&filter=displayName eq "Sales"')
    assert empty["totalResults"] == 0
    created = await scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "externalId": "8aa1a0c0", "displayName": "Sales", "members": []},
        expect=201,
    )
    group_id = created["id"]
    assert created["members"] == []
    assert created["meta"]["resourceType"] == "Group"
    # Entra's existence check asks without members.
    found = await scim("GET", '/Groups?excludedAttributes=members&filter=displayName eq "sales"')
    assert [g["id"] for g in found["Resources"]] == [group_id]
    assert "members" not in found["Resources"][0]
    # Members added, then one removed, as Entra sends them (204: no member list read).
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "Add", "path": "members", "value": [{"value": ann["id"]}, {"value": bob["id"]}]},
        expect=204,
    )
    assert await members_of(scim, group_id) == sorted([ann["id"], bob["id"]])
    read = await scim("GET", f"/Groups/{group_id}")
    shown = {m["value"]: m["display"] for m in read["members"]}
    assert shown == {ann["id"]: "Ann Lee", bob["id"]: "Bobby"}
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "Remove", "path": "members", "value": [{"value": bob["id"]}]},
        expect=204,
    )
    assert await members_of(scim, group_id) == [ann["id"]]
    by_member = await scim("GET", f'/Groups?filter=members[value eq "{ann["id"]}"]')
    assert [g["id"] for g in by_member["Resources"]] == [group_id]
    user = await scim("GET", f"/Users/{ann['id']}")
    assert user["groups"] == [{"value": group_id, "display": "Sales", "type": "direct"}]
    # Rename.
    renamed = await scim.patch(
        f"/Groups/{group_id}?attributes=displayName",
        {"op": "Replace", "path": "displayName", "value": "Sales EMEA"},
    )
    assert renamed["displayName"] == "Sales EMEA"
    assert "members" not in renamed
    # A member that is not a User here, and a group as a member, are refused.
    stranger = await scim.patch(
        f"/Groups/{group_id}",
        {"op": "Add", "path": "members", "value": [{"value": GROUP_ID_NOBODY}]},
        expect=400,
    )
    assert stranger["scimType"] == "invalidValue"
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "Add", "path": "members", "value": [{"value": group_id, "type": "Group"}]},
        expect=400,
    )
    taken = await scim("POST", "/Groups", {"displayName": "X", "externalId": "8aa1a0c0"}, 409)
    assert taken["scimType"] == "uniqueness"
    await scim("DELETE", f"/Groups/{group_id}", expect=204)
    await scim("GET", f"/Groups/{group_id}", expect=404)
    assert "groups" not in await scim("GET", f"/Users/{ann['id']}")


GROUP_ID_NOBODY = "00000000-0000-4000-8000-000000000000"


async def test_okta_group_push(scim: Scim) -> None:
    ann = await scim.create(userName="ann")
    bob = await scim.create(userName="bob")
    created = await scim(
        "POST",
        "/Groups",
        {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": [{"value": ann["id"]}]},
        expect=201,
    )
    group_id = created["id"]
    assert [m["value"] for m in created["members"]] == [ann["id"]]
    # Okta renames with the group's own id inside the value, then pushes members.
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "replace", "value": {"id": group_id, "displayName": "Test SCIMv2 (renamed)"}},
        expect=204,
    )
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": bob["id"], "display": "bob"}]},
        expect=204,
    )
    group = await scim("GET", f"/Groups/{group_id}")
    assert group["displayName"] == "Test SCIMv2 (renamed)"
    assert [m["value"] for m in group["members"]] == [bob["id"]]
    # A members filter this server does not take is a filter it refuses (RFC 7644 §3.12).
    for refused in ('members[display eq "bob"]', f'members[value ne "{bob["id"]}"]'):
        answer = await scim.patch(
            f"/Groups/{group_id}", {"op": "remove", "path": refused}, expect=400
        )
        assert (answer["scimType"], answer["detail"]) == (
            "invalidFilter",
            'A members filter here is value eq "id", or several joined by or.',
        ), refused
    # An id that cannot be a User's is refused as the value form refuses it (it was
    # answered 204, as if removed); one that is no member's is removed as asked: the
    # members stay (the team's lastModified moves, as on every PATCH).
    for path, value in (
        ('members[value eq "not-a-uuid"]', None),
        (f'members[value eq "{bob["id"]}" or value eq "not-a-uuid"]', None),
        ("members", [{"value": "not-a-uuid"}]),
    ):
        operation = {"op": "remove", "path": path, **({"value": value} if value else {})}
        answer = await scim.patch(f"/Groups/{group_id}", operation, expect=400)
        assert (answer["scimType"], answer["detail"]) == (
            "invalidValue",
            "members value 'not-a-uuid' is not a User id.",
        ), path
    assert await scim("GET", f"/Groups/{group_id}") == group
    await scim.patch(
        f"/Groups/{group_id}",
        {"op": "remove", "path": f'members[value eq "{uuid.uuid4()}"]'},
        expect=204,
    )
    unchanged = await scim("GET", f"/Groups/{group_id}")
    assert {**unchanged, "meta": None} == {**group, "meta": None}
    # Okta's full push: PUT with the whole member list.
    replaced = await scim(
        "PUT",
        f"/Groups/{group_id}",
        {
            "schemas": [GROUP],
            "id": group_id,
            "displayName": "Test SCIMv2",
            "members": [{"value": ann["id"]}, {"value": bob["id"]}],
        },
    )
    assert sorted(m["value"] for m in replaced["members"]) == sorted([ann["id"], bob["id"]])
    stale = {"If-Match": created["meta"]["version"]}
    await scim("DELETE", f"/Groups/{group_id}", headers=stale, expect=412)
    # Deleting a member's User takes it out of the group.
    await scim("DELETE", f"/Users/{ann['id']}", expect=204)
    assert await members_of(scim, group_id) == [bob["id"]]


async def test_search_at_the_root_lists_users_then_groups(scim: Scim) -> None:
    ann = await scim.create(userName="ann")
    team = await scim("POST", "/Groups", {"displayName": "ann team"}, expect=201)
    search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
    both = await scim("POST", "/.search", {"schemas": [search], "count": 10})
    assert [r["id"] for r in both["Resources"]] == [ann["id"], team["id"]]
    assert both["totalResults"] == 2
    second = await scim("POST", "/.search", {"schemas": [search], "startIndex": 2})
    assert [r["id"] for r in second["Resources"]] == [team["id"]]
    # userName is a User's alone: Groups are left out, not refused.
    users = await scim("POST", "/.search", {"filter": 'userName eq "ann"'})
    assert [r["id"] for r in users["Resources"]] == [ann["id"]]
    groups = await scim("POST", "/.search", {"filter": 'displayName co "team"'})
    assert [r["id"] for r in groups["Resources"]] == [team["id"]]
    refused = await scim("POST", "/.search", {"filter": 'shoeSize eq "9"'}, expect=400)
    assert refused["scimType"] == "invalidFilter"


BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"


async def test_bulk_resolves_bulk_ids_and_reports_each_operation(scim: Scim) -> None:
    config = await scim("GET", "/ServiceProviderConfig")
    assert config["bulk"]["supported"] is True
    assert config["bulk"]["maxOperations"] == 1000
    operations = [
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "kim"}},
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g1",
            "data": {"displayName": "Ops", "members": [{"value": "bulkId:u1"}]},
        },
        {
            "method": "PATCH",
            "path": "/Users/bulkId:u1",
            "data": {"Operations": [{"op": "replace", "path": "active", "value": False}]},
        },
        {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "KIM"}},
        {"method": "DELETE", "path": "/Users/bulkId:nowhere"},
        {"method": "DELETE", "path": f"/Users/{GROUP_ID_NOBODY}"},
    ]
    answer = await scim("POST", "/Bulk", {"schemas": [BULK], "Operations": operations})
    results = answer["Operations"]
    assert [r["status"] for r in results] == ["201", "201", "200", "409", "409", "404"]
    assert results[3]["response"]["scimType"] == "uniqueness"
    user_id = results[0]["location"].rsplit("/", 1)[1]
    group = await scim("GET", results[1]["location"].split(f"/scim/v2/{ACCOUNT}", 1)[1])
    assert [m["value"] for m in group["members"]] == [user_id]
    assert (await scim("GET", f"/Users/{user_id}"))["active"] is False
    # failOnErrors: the run stops after that many errors.
    stopped = await scim(
        "POST",
        "/Bulk",
        {
            "schemas": [BULK],
            "failOnErrors": 1,
            "Operations": [
                {"method": "DELETE", "path": f"/Users/{GROUP_ID_NOBODY}"},
                {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "z"}},
            ],
        },
    )
    assert [r["status"] for r in stopped["Operations"]] == ["404"]
    too_many = [{"method": "DELETE", "path": f"/Users/{GROUP_ID_NOBODY}"}] * 1001
    await scim("POST", "/Bulk", {"schemas": [BULK], "Operations": too_many}, expect=413)


async def test_a_persona_without_email_reads_its_id_as_its_user_name(
    scim: Scim, directory: Directory
) -> None:
    await directory.person([ACCOUNT], first_name="No", last_name="Mail", external_ref="nm-1")
    [user] = (await scim("GET", "/Users"))["Resources"]
    assert user["userName"] == user["id"]
    assert [u["id"] for u in await found(scim, f'userName eq "{user["id"].upper()}"')] == [
        user["id"]
    ]


async def test_members_are_checked_in_slices(scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    """A team of 100,000 members is checked in slices of 10,000 ids (PostgreSQL takes at
    most 32,767 parameters a statement); here slices of 2, so five members take three."""
    from roster.core.people import personas

    monkeypatch.setattr(personas, "_CHECKED_AT_ONCE", 2)
    ids = [(await scim.create(userName=f"m{n}"))["id"] for n in range(5)]
    made = await scim(
        "POST", "/Groups", {"displayName": "five", "members": [{"value": i} for i in ids]}, 201
    )
    assert sorted(m["value"] for m in made["members"]) == sorted(ids)
    stranger = [*ids[:4], GROUP_ID_NOBODY]
    refused = await scim(
        "POST", "/Groups", {"displayName": "x", "members": [{"value": i} for i in stranger]}, 400
    )
    assert GROUP_ID_NOBODY in refused["detail"]


async def test_the_people_api_cannot_give_a_persona_another_users_user_name(
    scim: Scim, client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    """A persona reads its work email, else its person's, as its SCIM userName: the People
    API cannot create or change one to read a userName another User of the account has
    (409 duplicate_value naming the email, nothing written); in another account it can."""
    await scim.create(userName="boss@example.com", emails=[{"value": "b@x.com", "type": "work"}])
    body = {
        "accountId": ACCOUNT,
        "firstName": "Ann",
        "lastName": "Lee",
        "roleName": "Admin",
        "emailAddress": "BOSS@example.com",
    }
    taken = await client.post("/people", json=body, headers=caller.headers)
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["type"] == "duplicate_value"
    assert taken.json()["error"]["details"][0]["field"] == "emailAddress"
    assert (await scim("GET", "/Users"))["totalResults"] == 1
    added = await client.post(
        "/people", json={**body, "emailAddress": "ann@example.com"}, headers=caller.headers
    )
    assert added.status_code == 201, added.text
    persona = added.json()["persona"]
    changed = await client.patch(
        f"/personas/{persona['id']}?accountId={ACCOUNT}",
        json={"emailAddress": "Boss@Example.com"},
        headers=caller.headers,
    )
    assert changed.status_code == 409, changed.text
    assert [u["userName"] for u in await found(scim, 'userName eq "boss@example.com"')] == [
        "boss@example.com"
    ]
    # Another account has no such User.
    await directory.account("OTHER2")
    elsewhere = await directory.client(["OTHER2"])
    other = await client.post(
        "/people", json={**body, "accountId": "OTHER2"}, headers=elsewhere.headers
    )
    assert other.status_code == 201, other.text


async def test_a_people_api_write_waits_for_a_scim_writer_of_the_user(
    scim: Scim, client: httpx.AsyncClient, caller: Client, directory: Directory
) -> None:
    """A SCIM writer holds the User's lock from its If-Match check to its commit; a People
    API write of that persona, or of its person, waits for it (on SQLite, for the one
    writer), so it cannot slip in between the check and the write."""
    user = await scim.create(userName="held", name={"givenName": "Ann", "familyName": "Lee"})
    async with unit_of_work(directory.engine, write=True) as conn:
        await lock_unique_values(conn, ACCOUNT, {"user": user["id"]})
        persona = asyncio.ensure_future(
            client.patch(
                f"/personas/{user['id']}?accountId={ACCOUNT}",
                json={"jobTitle": "Chef"},
                headers=caller.headers,
            )
        )
        people = await client.get(f"/people?accountId={ACCOUNT}&limit=1", headers=caller.headers)
        person_id = people.json()["rows"][0]["id"]
        person = asyncio.ensure_future(
            client.patch(
                f"/people/{person_id}?accountId={ACCOUNT}",
                json={"lastName": "Leigh"},
                headers=caller.headers,
            )
        )
        await asyncio.sleep(0.5)
        assert not persona.done()
        assert not person.done()
    assert (await persona).status_code == 200, (await persona).text
    assert (await person).status_code == 200, (await person).text
    read = await scim("GET", f"/Users/{user['id']}")
    assert (read["title"], read["name"]["familyName"]) == ("Chef", "Leigh")
