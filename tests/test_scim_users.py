"""SCIM Users (spec/scim.md) on both backends: discovery, create, read, filter, page,
replace, PATCH (with Entra's and Okta's quirks), ETags, delete, and SCIM's error body."""

from __future__ import annotations

import asyncio
import base64
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from roster.api.scim.filters import group_condition, user_condition
from roster.core.people import user_rows
from roster.db.backends import backend_for, backend_named
from roster.db.engine import unit_of_work
from roster.db.tables import team_members, teams
from tests.factories import Client, Directory
from tests.scim import ACCOUNT, BASE, ENTERPRISE, ERROR, PATCH, USER, Scim


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account("OTHER")
    return await directory.client([ACCOUNT])


@pytest.fixture
def scim(client: httpx.AsyncClient, caller: Client) -> Scim:
    return Scim(client, caller)


def ann(**more: Any) -> dict[str, Any]:
    return {
        "userName": "ann.lee@example.com",
        "externalId": "ext-ann",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann.lee@example.com", "type": "work", "primary": True}],
        "active": True,
        **more,
    }


async def test_discovery_states_what_is_served(scim: Scim) -> None:
    config = await scim("GET", "/ServiceProviderConfig")
    assert config["patch"] == {"supported": True}
    assert config["filter"] == {"supported": True, "maxResults": 1000}
    assert config["etag"] == {"supported": True}
    assert config["bulk"]["supported"] is True
    assert config["sort"] == {"supported": True}
    types = await scim("GET", "/ResourceTypes")
    assert [t["id"] for t in types["Resources"]] == ["User", "Group"]
    schemas = await scim("GET", "/Schemas")
    ids = [s["id"] for s in schemas["Resources"]]
    assert ids == [USER, ENTERPRISE, "urn:ietf:params:scim:schemas:core:2.0:Group"]
    user = await scim("GET", f"/Schemas/{USER}")
    names = {a["name"] for a in user["attributes"]}
    assert {"userName", "name", "emails", "active", "externalId", "displayName"} <= names
    assert "password" not in names
    await scim("GET", "/Schemas/urn:nope", expect=404)


async def test_a_list_of_an_account_not_found_is_a_404_whatever_else_is_wrong(
    client: httpx.AsyncClient, scim: Scim, directory: Directory
) -> None:
    # A list reads its account only when its answer is empty or an error
    # (api/scim/routes.listed); every answer here must still be the account's 404.
    await scim.create(**ann())
    everywhere = Scim(client, await directory.client(None)).headers
    bo = {**ann(), "userName": "bo@example.com", "externalId": "ext-bo", "emails": []}
    made = await client.post("/scim/v2/OTHER/Users", json=bo, headers=everywhere)
    assert made.status_code == 201, made.text
    asked = [
        ("GET", "Users", {"filter": 'userName eq "ann.lee@example.com"'}, None),
        ("GET", "Users", {"filter": 'userName eq "bo@example.com"'}, None),
        ("GET", "Users", {}, None),
        ("GET", "Users", {"filter": "userName eq ((("}, None),
        ("GET", "Users", {"cursor": "not-a-cursor"}, None),
        ("GET", "Users", {"count": "many"}, None),
        ("GET", "Groups", {"filter": 'displayName eq "x"'}, None),
        ("POST", "Users/.search", {}, b"not json"),
        ("POST", "Groups/.search", {}, b"[]"),
    ]
    for method, path, params, body in asked:
        for account, headers in (("NOWHERE", everywhere), ("OTHER", scim.headers)):
            answer = await client.request(
                method,
                f"/scim/v2/{account}/{path}",
                params=params,
                content=body,
                headers={**headers, "Content-Type": "application/scim+json"},
            )
            assert answer.status_code == 404, (account, path, params, answer.text)
            assert answer.json()["schemas"] == [ERROR]
            assert "ann" not in answer.text
            assert "bo@" not in answer.text
    # The account that exists answers each as itself.
    found = await scim("GET", '/Users?filter=userName eq "ann.lee@example.com"')
    assert [user["userName"] for user in found["Resources"]] == ["ann.lee@example.com"]
    assert (await scim("GET", '/Users?filter=userName eq "nobody"'))["totalResults"] == 0
    bad = await scim("GET", "/Users?filter=userName eq (((", expect=400)
    assert bad["scimType"] == "invalidFilter"
    await scim("GET", "/Users?cursor=not-a-cursor", expect=400)


async def test_errors_are_scim_errors_including_auth(
    client: httpx.AsyncClient, scim: Scim, directory: Directory
) -> None:
    missing = await client.get(f"{BASE}/Users")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["schemas"] == [ERROR]
    wrong = await client.get(f"{BASE}/Users", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["status"] == "401"
    # An account the client does not reach reads as one that does not exist.
    other = await client.get("/scim/v2/OTHER/Users", headers=scim.headers)
    nowhere = await client.get("/scim/v2/NOWHERE/Users", headers=scim.headers)
    assert other.status_code == nowhere.status_code == 404
    assert other.json()["schemas"] == [ERROR]
    await scim("GET", "/Users/not-an-id", expect=404)
    await scim("GET", "/Nothing", expect=404)
    not_allowed = await client.delete(f"{BASE}/ServiceProviderConfig", headers=scim.headers)
    assert not_allowed.status_code == 405
    assert not_allowed.json()["schemas"] == [ERROR]
    assert not_allowed.headers["allow"] == "GET"
    too_large = await client.post(
        f"{BASE}/Users", content=b" " * (10 * 1024 * 1024 + 1), headers=scim.headers
    )
    assert too_large.status_code == 413
    assert too_large.headers["content-type"] == "application/scim+json"
    assert too_large.json()["status"] == "413"
    bad = await client.post(f"{BASE}/Users", content=b"{", headers=scim.headers)
    assert bad.status_code == 400
    assert bad.json()["scimType"] == "invalidSyntax"
    reader = await directory.client([ACCOUNT], scopes=("read",))
    refused = await client.post(
        f"{BASE}/Users", json=ann(), headers={"Authorization": f"Bearer {reader.api_key}"}
    )
    assert refused.status_code == 403
    assert refused.json()["schemas"] == [ERROR]


async def test_create_read_and_uniqueness(scim: Scim, client: httpx.AsyncClient) -> None:
    created = await scim.create(**ann(displayName="Ann L.", title="CFO"))
    assert created["userName"] == "ann.lee@example.com"
    assert created["name"]["formatted"] == "Ann Lee"
    assert created["active"] is True
    assert created["title"] == "CFO"
    assert created["roles"] == [{"value": "User"}]
    assert created["meta"]["resourceType"] == "User"
    assert created["meta"]["version"].startswith('W/"')
    read = await scim("GET", f"/Users/{created['id']}")
    assert read == created
    clash = await scim("POST", "/Users", ann(), expect=409)
    assert clash["scimType"] == "uniqueness"
    # userName is unique without case; externalId with case.
    upper = await scim("POST", "/Users", ann(userName="ANN.LEE@example.com", externalId="x"), 409)
    assert upper["scimType"] == "uniqueness"
    twin = await scim("POST", "/Users", {**ann(userName="other"), "emails": []}, 409)
    assert "externalId" in twin["detail"]
    await scim.create(userName="bob", externalId="EXT-ANN")
    missing = await scim("POST", "/Users", {"schemas": [USER]}, expect=400)
    assert missing["scimType"] == "invalidValue"
    assert "userName" in missing["detail"]
    unknown = await scim("POST", "/Users", {"schemas": ["urn:x"], "userName": "z"}, expect=400)
    assert unknown["scimType"] == "invalidValue"
    long = await scim("POST", "/Users", {"userName": "z" * 257}, expect=400)
    assert "userName" in long["detail"]
    role = await scim("POST", "/Users", {"userName": "r", "roles": [{"value": "Pilot"}]}, 400)
    assert role["scimType"] == "invalidValue"


async def test_filters_and_pages(scim: Scim) -> None:
    made = {}
    for given, family, email in (
        ("Ann", "Lee", "ann@example.com"),
        ("Bob", "Leeds", "bob@example.org"),
        ("Cy", "Moss", "cy@example.com"),
    ):
        user = await scim.create(
            userName=email.split("@")[0],
            externalId=f"x-{given}",
            name={"givenName": given, "familyName": family},
            emails=[{"value": email, "type": "work"}],
            active=given != "Cy",
        )
        made[given] = user["id"]

    async def ids(filter_text: str) -> list[str]:
        found = await scim("POST", "/Users/.search", {"filter": filter_text})
        return sorted(r["id"] for r in found["Resources"])

    def of(*names: str) -> list[str]:
        return sorted(made[n] for n in names)

    assert await ids('userName eq "ANN"') == of("Ann")
    assert await ids('externalId eq "x-Ann"') == of("Ann")
    assert await ids('externalId eq "X-ANN"') == []
    assert await ids('name.familyName sw "lee"') == of("Ann", "Bob")
    assert await ids('name.familyName ew "ds"') == of("Bob")
    assert await ids('emails co "example.com"') == of("Ann", "Cy")
    assert await ids('emails[type eq "work" and value ew ".org"]') == of("Bob")
    assert await ids('emails.value eq "CY@example.com"') == of("Cy")
    assert await ids("active eq false") == of("Cy")
    assert await ids("not (active eq false) and name.givenName pr") == of("Ann", "Bob")
    assert await ids('userName eq "ann" or userName eq "cy"') == of("Ann", "Cy")
    assert await ids('urn:ietf:params:scim:schemas:core:2.0:User:UserName Eq "bob"') == of("Bob")
    assert await ids('meta.created gt "2000-01-01T00:00:00Z"') == of("Ann", "Bob", "Cy")
    # Without an offset a moment is UTC's (it was a 500).
    assert await ids('meta.created gt "2000-01-01T00:00:00"') == of("Ann", "Bob", "Cy")
    assert await ids('meta.created lt "2000-01-01T00:00:00"') == []
    assert await ids('meta.lastModified lt "2999-01-01T00:00:00+05:00"') == of("Ann", "Bob", "Cy")
    assert await ids(f'id eq "{made["Bob"]}"') == of("Bob")
    assert await ids("title pr") == []
    bad = await scim("GET", "/Users?filter=userName%20eq", expect=400)
    assert bad["scimType"] == "invalidFilter"
    unknown = await scim("GET", '/Users?filter=shoeSize%20eq%20"9"', expect=400)
    assert unknown["scimType"] == "invalidFilter"

    page = await scim("GET", "/Users?startIndex=2&count=1")
    assert page["totalResults"] == 3
    assert page["startIndex"] == 2
    assert page["itemsPerPage"] == 1
    assert [r["id"] for r in page["Resources"]] == [made["Bob"]]
    counted = await scim("GET", "/Users?count=0")
    assert counted["totalResults"] == 3
    assert counted["Resources"] == []
    some = await scim("GET", "/Users?attributes=userName&count=1")
    assert set(some["Resources"][0]) == {"id", "schemas", "userName"}
    less = await scim("GET", f"/Users/{made['Ann']}?excludedAttributes=name,emails")
    assert "name" not in less
    assert "emails" not in less
    assert less["userName"] == "ann"

    # No name equals "": a User without one has none, not an empty one (RFC 7644's eq
    # is "identical"); every name starts with "".
    nameless = await scim.create(userName="nameless", externalId="x-nameless")
    made["Nameless"] = nameless["id"]
    assert await ids('name.familyName eq ""') == []
    assert await ids('name.givenName eq " "') == []
    assert await ids('emails[type eq "work" and value eq ""]') == []
    assert await ids('name.familyName sw ""') == of("Ann", "Bob", "Cy")
    assert await ids("not (name.familyName pr)") == of("Nameless")


#: Users for the combined filters below: (givenName, familyName, work email).
COMBINED_USERS = (
    ("Ann", "Lee", "ann@example.com"),
    ("Bob", "Leeds", "bob@example.org"),
    ("Cy", "Moss", "cy@example.com"),
    ("Dana", "Mosley", "dana@sample.net"),
    ("Eve", "Greenlee", "eve@example.com"),
)
#: Filters of one comparison each, and which of COMBINED_USERS each finds.
ATOMS: dict[str, Callable[[tuple[str, str, str]], bool]] = {
    'name.familyName co "lee"': lambda u: "lee" in u[1].lower(),
    'name.familyName sw "mos"': lambda u: u[1].lower().startswith("mos"),
    'name.familyName ew "ds"': lambda u: u[1].endswith("ds"),
    'name.givenName co "an"': lambda u: "an" in u[0].lower(),
    'emails co "example.com"': lambda u: u[2].endswith("example.com"),
    'name.givenName eq "EVE"': lambda u: u[0] == "Eve",
    'name.familyName co "zz"': lambda u: False,
    # Each email probe binds its key under a name of its own.
    'emails[value eq "BOB@example.org"]': lambda u: u[2] == "bob@example.org",
    'emails.value eq "cy@example.com"': lambda u: u[2] == "cy@example.com",
}


async def test_combined_filters_find_what_each_part_finds(scim: Scim) -> None:
    """Any two comparisons joined by ``and`` or ``or`` (or one negated) find what the
    parts find: each comparison's values are its own, however many search the same
    (trigram) text in one statement."""
    made = {}
    for given, family, email in COMBINED_USERS:
        user = await scim.create(
            userName=email,
            name={"givenName": given, "familyName": family},
            emails=[{"value": email, "type": "work"}],
        )
        made[(given, family, email)] = user["id"]

    async def ids(filter_text: str) -> set[str]:
        found = await scim("POST", "/Users/.search", {"filter": filter_text})
        assert found["totalResults"] == len(found["Resources"]), filter_text
        return {r["id"] for r in found["Resources"]}

    def found_by(rule: Callable[[tuple[str, str, str]], bool]) -> set[str]:
        return {i for u, i in made.items() if rule(u)}

    for one, rule in ATOMS.items():
        assert await ids(one) == found_by(rule), one
    for one, a in ATOMS.items():
        for two, b in ATOMS.items():
            both, either, second_only = (
                found_by(a) & found_by(b),
                found_by(a) | found_by(b),
                found_by(b) - found_by(a),
            )
            assert await ids(f"({one}) and ({two})") == both
            assert await ids(f"({one}) or ({two})") == either
            assert await ids(f"not ({one}) and ({two})") == second_only


def address(kind: str, street: str, locality: str, postcode: str, country: str) -> dict[str, str]:
    return {
        "type": kind,
        "streetAddress": street,
        "locality": locality,
        "postalCode": postcode,
        "country": country,
    }


async def test_address_filters_compare_one_address_at_a_time(scim: Scim) -> None:
    """``addresses.x`` finds Users with any address whose x compares; ``addresses[...]``
    those with one address meeting the whole value filter; texts compare without case,
    and ``streetAddress`` reads its lines joined by line breaks."""
    ann = await scim.create(
        userName="ann",
        addresses=[
            {
                **address("work", "1 Main St\nFloor 2", "London", "SW1A 1AA", "GB"),
                "formatted": "1 Main St, Floor 2, London SW1A 1AA",
                "primary": True,
            },
            address("home", "3 Rue X", "Paris", "75001", "FR"),
        ],
    )
    bob = await scim.create(
        userName="bob", addresses=[address("work", "9 Quai Y", "Paris", "SW9 9ZZ", "fr")]
    )
    cy = await scim.create(userName="cy")
    expected = {
        'addresses.locality eq "london"': {ann["id"]},
        'addresses.locality eq "Paris"': {ann["id"], bob["id"]},
        'addresses[type eq "work" and locality eq "Paris"]': {bob["id"]},
        'addresses[type eq "HOME" and locality eq "paris"]': {ann["id"]},
        # London's postcode starts with SW, but not on the address in Paris.
        'addresses[locality eq "Paris" and postalCode sw "sw"]': {bob["id"]},
        'addresses[locality eq "Paris" and not (postalCode sw "sw")]': {ann["id"]},
        'addresses.streetAddress ew "FLOOR 2"': {ann["id"]},
        'addresses.streetAddress sw "1 main st"': {ann["id"]},
        'addresses.country eq "fr"': {ann["id"], bob["id"]},
        'addresses.locality ne "Paris"': {cy["id"]},
        "addresses pr": {ann["id"], bob["id"]},
        "not (addresses pr)": {cy["id"]},
        "addresses.region pr": set(),
        'addresses.postalCode co "9 9"': {bob["id"]},
        'addresses.formatted co "FLOOR 2, london"': {ann["id"]},
        "addresses.primary eq true": {ann["id"]},
        'addresses[primary eq true and locality eq "London"]': {ann["id"]},
        'addresses[primary eq true and locality eq "Paris"]': set(),
        'addresses[primary eq false and locality eq "Paris"]': {ann["id"], bob["id"]},
        # Present when sent: bob's address was sent without it.
        "addresses.primary pr": {ann["id"]},
        'addresses[primary pr and type eq "work"]': {ann["id"]},
    }
    for filter_text, wanted in expected.items():
        found = await scim("POST", "/Users/.search", {"filter": filter_text})
        assert {r["id"] for r in found["Resources"]} == wanted, filter_text
        assert found["totalResults"] == len(wanted), filter_text
    for refused in ('addresses eq "x"', 'addresses.label eq "x"', 'addresses.primary eq "x"'):
        error = await scim("POST", "/Users/.search", {"filter": refused}, 400)
        assert error["scimType"] == "invalidFilter", refused
        assert "addresses" in error["detail"], refused


async def test_value_filters_keep_the_rules_of_null_and_pr(scim: Scim) -> None:
    """Within ``emails[...]``, ``phoneNumbers[...]``, ``addresses[...]`` and
    ``members[...]``, ``pr``, ``ne`` and null mean what they mean outside: ``eq null`` is
    ``not pr`` and no other operator takes null. ``emails[value eq null]`` and
    ``addresses[primary eq null]`` were a 400, and ``emails[shoeSize pr]`` found every
    User with an email. The filters read a User's emails as it shows them."""
    ann = await scim.create(
        userName="ann",
        emails=[{"value": "ann@example.com", "type": "work"}],
        phoneNumbers=[{"value": "+44 20 7946 0000", "type": "mobile"}],
        addresses=[address("work", "1 Main St", "London", "SW1A 1AA", "GB")],
    )
    bob = await scim.create(userName="bob", emails=[{"value": "bob@example.org", "type": "work"}])
    cy = await scim.create(userName="cy")
    dee = await scim.create(
        userName="dee",
        emails=[
            {"value": "dee@example.com", "type": "work"},
            {"value": "dee@home.net", "type": "home"},
        ],
    )
    eve = await scim.create(userName="eve", emails=[{"value": "eve@home.org", "type": "home"}])
    # The same email twice, but for case: one value shown, the work one.
    fay = await scim.create(
        userName="fay",
        emails=[
            {"value": "Fay@example.com", "type": "work"},
            {"value": "fay@EXAMPLE.com", "type": "home"},
        ],
    )
    assert {e["type"] for e in dee["emails"]} == {"work", "other"}
    assert [e["type"] for e in eve["emails"]] == ["other"]
    assert [e["type"] for e in fay["emails"]] == ["work"]
    group = await scim(
        "POST", "/Groups", {"displayName": "Sales", "members": [{"value": ann["id"]}]}, 201
    )
    emailed = {user["id"] for user in (ann, bob, dee, eve, fay)}
    # A person's own email is an "other" value only where it is not the work one (a new
    # User's person takes its work email: such Users were found as "other" too).
    others = {dee["id"], eve["id"]}
    expected = {
        "Users": {
            "emails[value eq null]": set(),
            "emails[value ne null]": emailed,
            "emails[value pr]": emailed,
            "emails pr": emailed,
            "emails[type pr]": emailed,
            "emails[type eq null]": set(),
            'emails[type ne "work"]': others,
            'emails[type eq "other"]': others,
            'emails.type eq "other"': others,
            'not (emails.type eq "other")': {ann["id"], bob["id"], cy["id"], fay["id"]},
            'emails[type eq "other" and value ew ".net"]': {dee["id"]},
            'emails[value co "home"]': others,
            'emails[value pr and type eq "work"]': {ann["id"], bob["id"], dee["id"], fay["id"]},
            "phoneNumbers[value eq null]": set(),
            "phoneNumbers[value pr]": {ann["id"]},
            "phoneNumbers[type ne null]": {ann["id"]},
            "addresses[region eq null]": {ann["id"]},
            "addresses[region pr]": set(),
            'addresses[locality ne null and locality eq "london"]': {ann["id"]},
            # Sent without primary: not present, and read as false.
            "addresses[primary eq null]": {ann["id"]},
            "addresses[primary ne null]": set(),
            "addresses[primary ne true]": {ann["id"]},
            "addresses[primary eq false]": {ann["id"]},
        },
        "Groups": {
            "members[value eq null]": set(),
            "members[value ne null]": {group["id"]},
        },
    }
    for resources, filters in expected.items():
        for filter_text, wanted in filters.items():
            await _found(scim, resources, filter_text, wanted)
    for refused, named in (
        ("emails[shoeSize pr]", "shoesize"),
        ("emails[value gt null]", "gt null"),
        ("phoneNumbers[type sw null]", "sw null"),
        ("addresses[locality lt null]", "lt null"),
        ("addresses[primary gt null]", "gt null"),
        ('addresses[primary eq "yes"]', "primary"),
        ("emails[type gt 1]", "type"),
    ):
        error = await scim("POST", "/Users/.search", {"filter": refused}, 400)
        assert error["scimType"] == "invalidFilter", refused
        assert named in error["detail"].lower(), (refused, error["detail"])
    refused_member = await scim(
        "POST", "/Groups/.search", {"filter": "members[value le null]"}, 400
    )
    assert "le null" in refused_member["detail"]


async def test_role_filters_find_the_users_of_the_role(scim: Scim) -> None:
    """``roles`` compares the User's one role by its name, without case, alone or beside
    other comparisons. The page's statement joins ``roles`` for the role's name, and the
    filter's EXISTS over ``roles`` was correlated away with it (no FROM left): a 500."""
    ann = await scim.create(userName="ann", name={"familyName": "Lee"}, roles=[{"value": "Admin"}])
    bob = await scim.create(userName="bob", name={"familyName": "Leeds"})  # the User role
    cy = await scim.create(userName="cy", name={"familyName": "Moss"}, roles=[{"value": "User"}])
    everyone = {ann["id"], bob["id"], cy["id"]}
    users = {bob["id"], cy["id"]}
    expected = {
        'roles eq "User"': users,
        'roles eq "uSER"': users,
        'roles.value eq "Admin"': {ann["id"]},
        'roles[value eq "User"]': users,
        'roles[value eq "admin" or value eq "Owner"]': {ann["id"]},
        'roles co "dmi"': {ann["id"]},
        "roles pr": everyone,
        # A role of the account nobody has, and a name that is no role.
        'roles eq "Owner"': set(),
        'roles[value eq "Pilot"]': set(),
        'roles ne "User"': {ann["id"]},
        'not (roles eq "User")': {ann["id"]},
        'roles eq "User" and userName eq "bob"': {bob["id"]},
        'roles eq "Admin" and userName eq "bob"': set(),
        'roles[value eq "User"] and not (userName eq "bob")': {cy["id"]},
        'roles eq "Admin" or userName eq "cy"': {ann["id"], cy["id"]},
        # A name prefix's page reads its matches first (user_rows._gathered_page).
        'roles eq "User" and name.familyName sw "lee"': {bob["id"]},
    }
    for filter_text, wanted in expected.items():
        await _found(scim, "Users", filter_text, wanted)
    # A page shorter than the matches counts them in a statement of its own.
    page = await scim("POST", "/Users/.search", {"filter": 'roles eq "User"', "count": 1})
    assert page["totalResults"] == 2
    assert [r["id"] for r in page["Resources"]] == [bob["id"]]
    assert page["Resources"][0]["roles"] == [{"value": "User"}]
    # groups is an EXISTS over the persona's memberships, built the same way.
    team = await scim(
        "POST", "/Groups", {"displayName": "Sales", "members": [{"value": cy["id"]}]}, 201
    )
    for filter_text, wanted in {
        f'groups eq "{team["id"]}"': {cy["id"]},
        "groups pr": {cy["id"]},
        f'roles eq "User" and not (groups eq "{team["id"]}")': {bob["id"]},
    }.items():
        found = await scim("POST", "/Users/.search", {"filter": filter_text})
        assert {r["id"] for r in found["Resources"]} == wanted, filter_text
        assert found["totalResults"] == len(wanted), filter_text
    for refused in (
        'roles.display eq "User"',
        'roles[type eq "x"]',
        # pr takes the sub-attributes its comparisons take, no others.
        "roles.display pr",
        "id.x pr",
        "meta.nothing pr",
        "emails.foo pr",
        "groups.display pr",
        "userName.x pr",
    ):
        error = await scim("POST", "/Users/.search", {"filter": refused}, 400)
        assert error["scimType"] == "invalidFilter", refused
        named = refused.split(" ")[0] if refused.endswith(" pr") else "roles"
        assert named.lower() in error["detail"].lower(), (refused, error["detail"])
    for present in ("roles.value pr", "meta.created pr", "emails.value pr", "groups.value pr"):
        found = await scim("POST", "/Users/.search", {"filter": present})
        wanted = {cy["id"]} if present.startswith(("groups", "emails")) else everyone
        if present.startswith("emails"):
            wanted = {r["id"] for r in (ann, bob, cy) if r.get("emails")}
        assert {r["id"] for r in found["Resources"]} == wanted, present


async def test_filters_on_emails_and_phone_numbers_find_the_values_users_show(
    scim: Scim,
) -> None:
    """A filter on an email's or phone number's value or type finds exactly the Users
    whose shown values meet it: both read one declaration of the values a User holds
    (resources.py ``MULTI_VALUED``), the person's own email shown only where it is not the
    work one. ``co``, ``sw`` and ``ew`` are narrowed first by the search index, by every
    term of the sent value, cut inside a decomposed syllable too: a value holding it
    holds its fold (``matching.search_fold`` recomposes nothing)."""

    def values(**by_type: str) -> list[dict[str, str]]:
        return [{"value": value, "type": kind} for kind, value in by_type.items()]

    users = [
        await scim.create(
            userName="ann",
            emails=values(work="Ann.Lee@Example.com"),
            phoneNumbers=values(work="+44 (0)20 7946 0000", mobile="07700 900123"),
        ),
        await scim.create(
            userName="bo",
            emails=values(work="bo@work.example", home="BO@WORK.example"),
            phoneNumbers=values(mobile="0161 496 0000"),
        ),
        await scim.create(
            userName="cy",
            emails=values(work="cy@work.example", home="cy.home@mail.example"),
            phoneNumbers=values(work="+1 (415) 555-2671"),
        ),
        await scim.create(userName="di", emails=values(home="di@mail.example")),
        # Decomposed (as macOS writes text): Hangul jamo and a Bengali vowel sign, cut
        # inside below; search's folding once joined them back (before migration 0015).
        await scim.create(
            userName="ed",
            phoneNumbers=values(
                work=unicodedata.normalize("NFD", "02-1234-5678 내선 12"),
                mobile="০১৭১১ " + unicodedata.normalize("NFD", "ো") + "৫",
            ),
        ),
    ]
    shown = {
        attribute: {
            user["id"]: [(v["value"], v["type"]) for v in user.get(attribute, [])] for user in users
        }
        for attribute in ("emails", "phoneNumbers")
    }
    assert shown["emails"][users[1]["id"]] == [("bo@work.example", "work")]
    assert [t for _, t in shown["emails"][users[2]["id"]]] == ["work", "other"]
    meets: dict[str, Callable[[str, str], bool]] = {
        "eq": lambda held, sent: held == sent,
        "co": lambda held, sent: sent in held,
        "sw": lambda held, sent: held.startswith(sent),
        "ew": lambda held, sent: held.endswith(sent),
    }
    checked = 0
    for attribute, by_user in shown.items():
        for held_values in by_user.values():
            for value, kind in held_values:
                half = len(value) // 2
                sent_values = {value, value[:5], value[3:9].upper(), value[-6:]}
                sent_values |= {value[: half + 1], value[half:], value[half - 2 : half + 1]}
                # Cut before and after each letter that is not ASCII, inside syllables too.
                cuts = [at for at, letter in enumerate(value) if not letter.isascii()]
                sent_values |= {value[:at] for at in cuts} | {value[at:] for at in cuts}
                for sent in sorted(sent_values):
                    for op, meet in meets.items():
                        wanted = {
                            user
                            for user, held in by_user.items()
                            if any(meet(v.lower(), sent.lower()) for v, _ in held)
                        }
                        quoted = sent.replace('"', '\\"')
                        await _found(scim, "Users", f'{attribute}[value {op} "{quoted}"]', wanted)
                        checked += 1
                wanted = {user for user, held in by_user.items() if kind in (t for _, t in held)}
                await _found(scim, "Users", f'{attribute}[type eq "{kind}"]', wanted)
    assert checked > 100


async def _found(scim: Scim, resources: str, filter_text: str, wanted: set[str]) -> None:
    """The filter finds exactly ``wanted``, on the page and in ``totalResults``."""
    found = await scim("GET", f"/{resources}?{urlencode({'filter': filter_text})}")
    assert {r["id"] for r in found["Resources"]} == wanted, filter_text
    assert found["totalResults"] == len(wanted), filter_text


async def test_group_filters_on_members_id_meta_and_absence(scim: Scim) -> None:
    """Groups answer what Users answer: ``pr`` on ``id``, ``meta.*`` and ``members``, and
    ``eq null`` as ``not (x pr)`` (``members eq null`` was an EXISTS never true, so it
    never found a Group without members; ``id pr`` and ``meta.created pr`` were 400). A
    value filter on members is met by one member, as one address meets a User's."""
    ann = (await scim.create(userName="ann"))["id"]
    bob = (await scim.create(userName="bob"))["id"]

    async def group(name: str, *members: str, **more: Any) -> str:
        body = {"displayName": name, "members": [{"value": m} for m in members], **more}
        made: str = (await scim("POST", "/Groups", body, 201))["id"]
        return made

    sales = await group("Sales", ann, bob)
    ops = await group("Ops", ann)
    empty = await group("Empty", externalId="x-empty")
    every = {sales, ops, empty}
    expected = {
        "members pr": {sales, ops},
        "members.value pr": {sales, ops},
        "members[value pr]": {sales, ops},
        "not (members pr)": {empty},
        "members eq null": {empty},
        "members.value eq null": {empty},
        "members ne null": {sales, ops},
        'not (members pr) and displayName sw "e"': {empty},
        f'members eq "{ann}"': {sales, ops},
        f'not (members eq "{bob}")': {ops, empty},
        f'members eq "{ann}" and members eq "{bob}"': {sales},
        f'members[value eq "{ann}" or value eq "{bob}"]': {sales, ops},
        # One member is never both; a member other than ann is bob, in Sales.
        f'members[value eq "{ann}" and value eq "{bob}"]': set(),
        f'members[not (value eq "{ann}")]': {sales},
        'members[value eq "no id"]': set(),
        "id pr": every,
        "meta.created pr": every,
        "meta.lastModified pr": every,
        "meta.resourceType pr": every,
        'meta.resourceType eq "Group"': every,
        'meta.resourceType eq "User"': set(),
        "displayName pr": every,
        "displayName eq null": set(),
        "externalId pr": {empty},
        "externalId eq null": {sales, ops},
        f'id eq "{ops}"': {ops},
    }
    for filter_text, wanted in expected.items():
        await _found(scim, "Groups", filter_text, wanted)
    for refused in (
        "members.display pr",
        'members[display eq "x"]',
        "id.x pr",
        "meta.nothing pr",
        "members gt null",
        'members.value co "a"',
    ):
        error = await scim("GET", f"/Groups?{urlencode({'filter': refused})}", expect=400)
        assert error["scimType"] == "invalidFilter", refused
    # The root search answers with both kinds where both answer (Groups refused these).
    for filter_text, wanted in {
        "id pr": {ann, bob, *every},
        'meta.resourceType eq "Group"': every,
        # Users have no members: the filter finds none of them.
        "meta.created pr and not (members pr)": {empty},
    }.items():
        found = await scim("POST", "/.search", {"filter": filter_text})
        assert {r["id"] for r in found["Resources"]} == wanted, filter_text
        assert found["totalResults"] == len(wanted), filter_text


async def test_group_filters_keep_their_table_beside_a_join_of_members(
    scim: Scim, app: Any
) -> None:
    """A Groups filter's EXISTS over ``team_members`` is correlated to ``teams`` alone: a
    statement that joins ``team_members`` itself (as the Users page joins ``roles``)
    keeps the subquery's own table. Auto-correlated, the subquery lost every FROM."""
    ann = (await scim.create(userName="ann"))["id"]
    bob = (await scim.create(userName="bob"))["id"]
    made = {}
    for name, members in (("Sales", [ann, bob]), ("Ops", [ann]), ("Empty", [])):
        body = {"displayName": name, "members": [{"value": m} for m in members]}
        made[name] = (await scim("POST", "/Groups", body, 201))["id"]
    joined = teams.outerjoin(team_members, team_members.c.team_id == teams.c.id)
    expected = {  # each Group found, and how many members the join counts for it
        "members pr": {"Sales": 2, "Ops": 1},
        "not (members pr)": {"Empty": 0},
        f'members eq "{bob}"': {"Sales": 2},
        f'members[value eq "{ann}"] and not (members eq "{bob}")': {"Ops": 1},
    }
    engine = app.state.services.engine
    for filter_text, wanted in expected.items():
        async with unit_of_work(engine, write=False) as conn:
            condition = group_condition(filter_text, backend_for(conn))
            rows = await conn.execute(
                select(teams.c.id, func.count(team_members.c.persona_id))
                .select_from(joined)
                .where(teams.c.account_id == ACCOUNT, condition)
                .group_by(teams.c.id)
            )
            counted = {str(team_id): count for team_id, count in rows}
        assert counted == {made[name]: n for name, n in wanted.items()}, filter_text


async def test_user_name_filters_compare_the_user_name_a_user_reads(
    scim: Scim, directory: Directory, backend: str, app: Any
) -> None:
    """A User without a userName or any email reads its id as its userName, and ``eq``,
    ``sw``, ``co``, ``ew`` compare that (only ``eq`` did: the others, and ``not`` of them,
    missed it). ``eq`` stays one probe of the key's index; orderings and values that
    cannot be part of an id compare the key alone (the index's range)."""
    yan = (await scim.create(userName="Yan"))["id"]
    zed = (await scim.create(userName="zed@example.com"))["id"]
    nameless = []
    for n in range(2):
        person = await directory.person([ACCOUNT], first_name="No", last_name=f"Mail{n}")
        persona = str(await directory.persona(person, ACCOUNT))
        assert (await scim("GET", f"/Users/{persona}"))["userName"] == persona
        nameless.append(persona)
    one, two = nameless
    every = {yan, zed, one, two}
    expected = {
        f'userName eq "{one}"': {one},
        f'userName eq "{one.upper()}"': {one},
        # The id written otherwise is not the userName the User reads.
        f'userName eq "{uuid.UUID(one).hex}"': set(),
        f'userName eq "urn:uuid:{one}"': set(),
        f'userName ne "{one}"': every - {one},
        f'userName sw "{one[:8].upper()}"': {one},
        f'userName co "{one[9:18]}"': {one},
        f'userName ew "{one[-12:]}"': {one},
        f'not (userName co "{two[9:18]}")': every - {two},
        f'userName sw "{one[:8]}" or userName eq "yan"': {one, yan},
        'userName sw "z"': {zed},
        'userName co "@EXAMPLE"': {zed},
        # Orderings compare the key, as sortBy orders: those without one are not in it.
        'userName lt "g"': set(),
        'userName ge "a"': {yan, zed},
        "userName pr": every,
        "not (userName pr)": set(),
        "userName eq null": set(),
    }
    for filter_text, wanted in expected.items():
        await _found(scim, "Users", filter_text, wanted)
    # eq compares the key column (its index), never the id's text, id or not; so do
    # orderings, and text matches of a value no id's text holds.
    plain_key = [f'userName eq "{v}"' for v in ("yan", one)]
    plain_key += ['userName gt "a"', 'userName le "0"', 'userName sw "jo"', 'userName co "x@"']
    for filter_text in plain_key:
        compiled = user_condition(filter_text, backend_named(backend)).condition
        shown = str(compiled.compile(dialect=app.state.services.engine.dialect))
        assert "personas.user_name_key" in shown, filter_text
        assert "CAST" not in shown, filter_text  # (the id's text, on both backends)


FAMILIES = ("Straße", "Strauss", "Ström", "O'Neil", "Zoë", "zoe", "Zo", "\ud7ffx", "\U0010ffff")


async def test_name_sw_compares_keys_by_prefix(scim: Scim) -> None:
    """``name.familyName sw`` and ``name.givenName sw`` find the Users whose name's key
    (NFC, case-folded, as ``eq`` compares) starts with the value's key: every prefix of
    every name, in any case, finds exactly those (familyName a range of the account's
    sort_last index, givenName of the persons' key index: both ways, on both backends)."""
    made = {}
    for n, name in enumerate(FAMILIES):
        user = await scim.create(userName=f"u{n}", name={"familyName": name, "givenName": name})
        made[name] = user["id"]
    prefixes = {name[:end] for name in FAMILIES for end in range(1, len(name) + 1)}
    for attribute in ("name.familyName", "name.givenName"):
        for prefix in sorted(prefixes):
            for sent in {prefix, prefix.upper(), prefix.lower()}:
                escaped = sent.replace("\\", "\\\\").replace('"', '\\"')
                found = await scim(
                    "POST", "/Users/.search", {"filter": f'{attribute} sw "{escaped}"'}
                )
                key = sent.strip().casefold()
                wanted = {made[n] for n in FAMILIES if n.casefold().startswith(key)}
                assert {r["id"] for r in found["Resources"]} == wanted, (attribute, sent)


async def test_put_patch_etags_and_delete(scim: Scim) -> None:
    user = await scim.create(**ann())
    at = f"/Users/{user['id']}"
    etag = user["meta"]["version"]
    assert await scim("GET", at, headers={"If-None-Match": etag}, expect=304) is None
    replaced = await scim("PUT", at, {**ann(), "name": {"givenName": "Anne"}, "title": "CEO"})
    assert replaced["name"] == {"givenName": "Anne", "formatted": "Anne"}
    assert replaced["title"] == "CEO"
    assert replaced["meta"]["version"] != etag
    stale = await scim("PUT", at, ann(), headers={"If-Match": etag}, expect=412)
    assert stale["status"] == "412"
    patched = await scim(
        "PATCH",
        at,
        {
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a@x.com"},
                {"op": "replace", "value": {"name.familyName": "Lee-Ray", "displayName": "AL"}},
                {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "Finance"},
                {"op": "replace", "path": "active", "value": "False"},
            ],
        },
        headers={"If-Match": replaced["meta"]["version"]},
    )
    assert patched["emails"] == [
        {"value": "a@x.com", "type": "work"},
        {"value": "ann.lee@example.com", "type": "other"},
    ]
    assert patched["name"]["familyName"] == "Lee-Ray"
    assert patched["displayName"] == "AL"
    assert patched[ENTERPRISE]["department"] == "Finance"
    assert patched["active"] is False
    removed = await scim(
        "PATCH",
        at,
        {"schemas": [PATCH], "Operations": [{"op": "remove", "path": "displayName"}]},
    )
    assert "displayName" not in removed
    bad_path = await scim(
        "PATCH",
        at,
        {"schemas": [PATCH], "Operations": [{"op": "add", "path": "a[[", "value": 1}]},
        400,
    )
    assert bad_path["scimType"] == "invalidPath"
    bad_op = await scim(
        "PATCH", at, {"schemas": [PATCH], "Operations": [{"op": "move", "path": "title"}]}, 400
    )
    assert bad_op["scimType"] == "invalidSyntax"
    await scim("DELETE", at, headers={"If-Match": 'W/"old"'}, expect=412)
    await scim("DELETE", at, expect=204)
    await scim("GET", at, expect=404)
    await scim("DELETE", at, expect=404)


async def test_concurrent_creates_of_one_user_name_give_one_user(scim: Scim) -> None:
    async def create(n: int) -> int:
        response = await scim.http.post(
            f"{BASE}/Users",
            json={"userName": "Same.Name", "externalId": f"e{n}"},
            headers=scim.headers,
        )
        return response.status_code

    statuses = await asyncio.gather(*(create(n) for n in range(6)))
    assert sorted(statuses) == [201, 409, 409, 409, 409, 409]
    found = await scim("GET", '/Users?filter=userName eq "same.name"')
    assert found["totalResults"] == 1


async def test_cursor_pages_walk_users_and_groups(scim: Scim) -> None:
    config = await scim("GET", "/ServiceProviderConfig")
    assert config["pagination"]["cursor"] is True
    made = [(await scim.create(userName=f"u{n}"))["id"] for n in range(5)]
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page = await scim("GET", f'/Users?cursor={cursor}&count=2&filter=userName sw "u"')
        assert page["totalResults"] == 5
        assert "startIndex" not in page
        seen += [r["id"] for r in page["Resources"]]
        pages += 1
        if "nextCursor" not in page:
            break
        cursor = page["nextCursor"]
    assert seen == made
    assert pages == 3
    bad = await scim("GET", "/Users?cursor=bm90LWEtY3Vyc29y", expect=400)
    assert bad["scimType"] == "invalidCursor"
    teams = [
        (await scim("POST", "/Groups", {"displayName": f"t{n}"}, expect=201))["id"]
        for n in range(3)
    ]
    first = await scim("POST", "/Groups/.search", {"cursor": "", "count": 2})
    assert [g["id"] for g in first["Resources"]] == teams[:2]
    rest = await scim("GET", f"/Groups?cursor={first['nextCursor']}&count=2")
    assert [g["id"] for g in rest["Resources"]] == teams[2:]
    assert "nextCursor" not in rest
    await scim("GET", f"/Groups?cursor={first['nextCursor'][:-3]}", expect=400)


@pytest.mark.parametrize("gather_first", [1000, 3])
async def test_pages_of_a_prefix_or_search_filter(
    scim: Scim, monkeypatch: pytest.MonkeyPatch, gather_first: int
) -> None:
    """A filter answered by its index (a name prefix, a trigram search) reads its matches
    first and pages them in the order of creation, with offsets and cursors; with more
    matches than GATHER_FIRST (3 here) the ordered walk answers the same."""
    monkeypatch.setattr(user_rows, "GATHER_FIRST", gather_first)
    made = [
        (await scim.create(userName=f"p{n}", name={"familyName": f"Page{n}"}))["id"]
        for n in range(5)
    ]
    await scim.create(userName="other", name={"familyName": "Other"})
    for text in ('name.familyName sw "PAGE"', 'name.familyName co "age"'):
        for start in range(1, 8):
            page = await scim(
                "POST", "/Users/.search", {"filter": text, "startIndex": start, "count": 2}
            )
            assert page["totalResults"] == 5, text
            assert [r["id"] for r in page["Resources"]] == made[start - 1 : start + 1], text
        seen: list[str] = []
        cursor = ""
        while True:
            page = await scim(
                "POST", "/Users/.search", {"filter": text, "cursor": cursor, "count": 2}
            )
            assert page["totalResults"] == 5, text
            seen += [r["id"] for r in page["Resources"]]
            if "nextCursor" not in page:
                break
            cursor = page["nextCursor"]
        assert seen == made, text
    none = await scim("POST", "/Users/.search", {"filter": 'name.familyName sw "zz"'})
    assert (none["totalResults"], none["Resources"]) == (0, [])


async def test_sort_by_simple_attributes(scim: Scim) -> None:
    for given, family, title in (("b", "Moss", None), ("a", "lee", "CFO"), ("c", "Adams", "ceo")):
        await scim.create(
            userName=f"{given}-user", name={"givenName": given, "familyName": family}, title=title
        )

    async def order(query: str) -> list[str]:
        found = await scim("GET", f"/Users?{query}")
        return [r["userName"] for r in found["Resources"]]

    assert await order("sortBy=name.familyName") == ["c-user", "a-user", "b-user"]
    assert await order("sortBy=userName&sortOrder=descending") == ["c-user", "b-user", "a-user"]
    # Without case; a User without the attribute comes last either way.
    assert await order("sortBy=title") == ["c-user", "a-user", "b-user"]  # ceo < CFO
    assert await order("sortBy=title&sortOrder=descending") == ["a-user", "c-user", "b-user"]
    assert await order(f"sortBy={USER}:name.givenName&count=2") == ["a-user", "b-user"]
    bad = await scim("GET", "/Users?sortBy=emails", expect=400)
    assert bad["scimType"] == "invalidValue"
    await scim("GET", "/Users?sortBy=userName&sortOrder=sideways", expect=400)
    await scim("GET", "/Users?sortBy=userName&cursor=", expect=400)
    for name in ("beta", "Alpha"):
        await scim("POST", "/Groups", {"displayName": name}, expect=201)
    groups = await scim("POST", "/Groups/.search", {"sortBy": "displayName"})
    assert [g["displayName"] for g in groups["Resources"]] == ["Alpha", "beta"]


async def test_hostile_pages_and_cursors_are_refused_or_empty_never_500(scim: Scim) -> None:
    await scim.create(userName="only")
    far = await scim("GET", "/Users?startIndex=99999999999999999999999")
    assert far["Resources"] == []
    assert far["totalResults"] == 1
    await scim("GET", "/Users?count=lots", expect=400)
    for position in ([2**63], [-1], ["x"], [1, 2], {"a": 1}):
        cursor = base64.urlsafe_b64encode(orjson.dumps(position)).decode()
        bad = await scim("GET", f"/Users?cursor={cursor}", expect=400)
        assert bad["scimType"] == "invalidCursor"
    for position in (["2026-01-01T00:00:00", str(uuid.uuid4())], ["soon", "x"]):
        cursor = base64.urlsafe_b64encode(orjson.dumps(position)).decode()
        await scim("GET", f"/Groups?cursor={cursor}", expect=400)
    await scim("GET", "/Users?filter=userName%20eq%20%22a%00b%22", expect=400)
    await scim("GET", "/Groups?filter=displayName%20eq%20%22a%00b%22", expect=400)


async def test_a_whole_middle_name_is_kept(scim: Scim, client: httpx.AsyncClient) -> None:
    """name.middleName is a person's middle name(s), up to 256 characters as the other
    names (not initials only): what an IdP sends reads back, through SCIM and People."""
    middle = "Maria-Josefa Anunciación Carolina Dolores de la Santísima Trinidad"
    assert len(middle) > 36
    user = await scim.create(
        **ann(name={"givenName": "Ann", "familyName": "Lee", "middleName": middle})
    )
    assert user["name"]["middleName"] == middle
    assert user["name"]["formatted"] == f"Ann {middle} Lee"
    read = await scim("GET", f"/Users/{user['id']}")
    assert read["name"]["middleName"] == middle
    too_long = await scim.patch(
        f"/Users/{user['id']}",
        {"op": "replace", "path": "name.middleName", "value": "x" * 257},
        expect=400,
    )
    assert too_long["scimType"] == "invalidValue"
    assert "name.middleName" in too_long["detail"]
    assert (await scim("GET", f"/Users/{user['id']}"))["name"]["middleName"] == middle


async def test_formatted_names_and_users_without_emails_or_phones(scim: Scim) -> None:
    """name.formatted is kept as sent, else built (and a built one sent back is not
    frozen); a User left without any email or phone number has none, its person's too."""
    user = await scim.create(**ann(phoneNumbers=[{"value": "+44 20 7946 0000", "type": "mobile"}]))
    assert user["name"]["formatted"] == "Ann Lee"
    assert user["phoneNumbers"] == [{"value": "+44 20 7946 0000", "type": "mobile"}]
    # Read and sent back whole: the built name stays built.
    resource = {k: v for k, v in user.items() if k not in ("id", "meta", "groups")}
    await scim("PUT", f"/Users/{user['id']}", resource)
    renamed = await scim.patch(
        f"/Users/{user['id']}", {"op": "replace", "path": "name.familyName", "value": "Kim"}
    )
    assert renamed["name"]["formatted"] == "Ann Kim"
    # Sent: kept as sent, whatever the parts.
    styled = await scim.patch(
        f"/Users/{user['id']}", {"op": "replace", "path": "name.formatted", "value": "Dr Ann K."}
    )
    assert styled["name"] == {"givenName": "Ann", "familyName": "Kim", "formatted": "Dr Ann K."}
    # Every email and phone number removed: none is left, the person's neither.
    emptied = await scim.patch(
        f"/Users/{user['id']}",
        {"op": "remove", "path": "emails"},
        {"op": "remove", "path": "phoneNumbers"},
    )
    assert "emails" not in emptied
    assert "phoneNumbers" not in emptied
    assert await scim("GET", '/Users?filter=emails co "ann.lee"') == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 0,
        "startIndex": 1,
        "itemsPerPage": 0,
        "Resources": [],
    }
    # Every User has an active state and a role: the schema says so.
    schema = await scim("GET", f"/Schemas/{USER}")
    required = {a["name"] for a in schema["attributes"] if a["required"]}
    assert required == {"userName", "active", "roles"}


WORK_ADDRESS = {
    "type": "work",
    "streetAddress": "1 Main Street\nFloor 3",
    "locality": "London",
    "postalCode": "EC1A 1BB",
    "country": "gb",
    "primary": True,
    "formatted": "1 Main Street, Floor 3, London EC1A 1BB",
}


async def test_addresses_are_the_personas_addresses(scim: Scim) -> None:
    """addresses (type, streetAddress as one to three lines, locality, region, postalCode,
    country, formatted, primary) are the persona's addresses, written by POST, PUT and PATCH
    (value-filtered paths too); an address Roster cannot keep is 400 naming what it lacks,
    nothing changed."""
    home = {
        "type": "home",
        "streetAddress": "9 Elm Road",
        "locality": "Leeds",
        "region": "West Yorkshire",
        "postalCode": "LS1 4AP",
        "country": "GB",
    }
    user = await scim.create(**ann(addresses=[WORK_ADDRESS, home]))
    work = WORK_ADDRESS
    assert user["addresses"] == [{**work, "country": "GB"}, home]
    user_id = user["id"]
    assert (await scim("GET", f"/Users/{user_id}"))["addresses"] == user["addresses"]
    # Entra's value-filtered paths, several sub-attributes in one request.
    moved = await scim.patch(
        f"/Users/{user_id}",
        {"op": "replace", "path": 'addresses[type eq "work"].streetAddress', "value": "2 Side St"},
        {"op": "replace", "path": 'addresses[type eq "work"].locality', "value": "Bristol"},
    )
    assert moved["addresses"][1] == {
        **work,
        "country": "GB",
        "streetAddress": "2 Side St",
        "locality": "Bristol",
    }
    assert moved["meta"]["version"] != user["meta"]["version"]
    # A new address given one sub-attribute at a time lacks the others: refused, named.
    partial = await scim.patch(
        f"/Users/{user_id}",
        {"op": "add", "path": 'addresses[type eq "other"].streetAddress', "value": "3 Lane"},
        expect=400,
    )
    assert partial["scimType"] == "invalidValue"
    assert "addresses.locality is required" in partial["detail"]
    for bad, named in (
        ([{**home, "country": "Narnia"}], "addresses.country"),
        ([{**home, "type": "Registered"}], "addresses.type"),
        ([{**home, "streetAddress": "a\nb\nc\nd"}], "addresses.streetAddress"),
        ([{**home, "streetAddress": " \n "}], "addresses.streetAddress"),
        ([{**home, "locality": "  "}], "addresses.locality"),
        ([{**home, "postalCode": 12}], "addresses.postalCode"),
        ([{k: v for k, v in home.items() if k != "postalCode"}], "addresses.postalCode"),
        ([{**home, "formatted": "x" * 1025}], "addresses.formatted"),
        ([{**home, "primary": "maybe"}], "addresses.primary"),
        ([{**home, "primary": True}, WORK_ADDRESS], "addresses.primary"),
    ):
        refused = await scim("PUT", f"/Users/{user_id}", ann(addresses=bad), expect=400)
        assert named in refused["detail"], bad
    assert (await scim("GET", f"/Users/{user_id}"))["addresses"] == moved["addresses"]
    # Untyped: other. A replace leaving them out removes them.
    replaced = await scim("PUT", f"/Users/{user_id}", ann(addresses=[{**home, "type": None}]))
    assert replaced["addresses"] == [{**home, "type": "other"}]
    # primary as Entra sends booleans, as strings.
    made_primary = await scim.patch(
        f"/Users/{user_id}",
        {"op": "replace", "path": 'addresses[type eq "other"].primary', "value": "True"},
    )
    assert made_primary["addresses"] == [{**home, "type": "other", "primary": True}]
    not_primary = await scim.patch(
        f"/Users/{user_id}",
        {"op": "replace", "path": 'addresses[type eq "other"].primary', "value": "False"},
    )
    assert not_primary["addresses"] == [{**home, "type": "other", "primary": False}]
    cleared = await scim.patch(f"/Users/{user_id}", {"op": "remove", "path": "addresses"})
    assert "addresses" not in cleared
    schema = await scim("GET", f"/Schemas/{USER}")
    (addresses,) = [a for a in schema["attributes"] if a["name"] == "addresses"]
    assert {a["name"]: a["required"] for a in addresses["subAttributes"]} == {
        "streetAddress": True,
        "locality": True,
        "region": False,
        "postalCode": True,
        "country": True,
        "type": False,
        "formatted": False,
        "primary": False,
    }
    assert {a["name"]: a["type"] for a in addresses["subAttributes"]}["primary"] == "boolean"


async def test_a_patch_making_an_address_primary_makes_the_other_not(scim: Scim) -> None:
    """RFC 7644 §3.5.2: a PATCH that sets primary true on one address sets it false on the
    one that was primary; a request making two primary is refused, as a PUT is."""
    home = address("home", "9 Elm Road", "Leeds", "LS1 4AP", "GB")
    user = await scim.create(**ann(addresses=[WORK_ADDRESS, home]))
    at = f"/Users/{user['id']}"
    moved = await scim.patch(
        at, {"op": "replace", "path": 'addresses[type eq "home"].primary', "value": True}
    )
    assert [(a["type"], a.get("primary")) for a in moved["addresses"]] == [
        ("work", False),
        ("home", True),
    ]
    other = address("other", "1 Dock St", "Hull", "HU1 1AA", "GB")
    added = await scim.patch(
        at, {"op": "add", "path": "addresses", "value": [{**other, "primary": "True"}]}
    )
    assert [(a["type"], a.get("primary")) for a in added["addresses"]] == [
        ("work", False),
        ("home", False),
        ("other", True),
    ]
    both = await scim.patch(
        at,
        {"op": "replace", "path": 'addresses[type eq "work"].primary', "value": True},
        {"op": "replace", "path": 'addresses[type eq "home"].primary', "value": True},
        expect=400,
    )
    assert "addresses.primary" in both["detail"]
    assert (await scim("GET", at))["addresses"] == added["addresses"]


async def test_a_patch_paths_filter_is_refused_where_a_search_would_be(scim: Scim) -> None:
    """A PATCH path's value filter compares the attribute's sub-attributes (the schema's,
    and those RFC 7643 §2.4 gives every multi-valued attribute) by the rule of searches:
    an unknown sub-attribute, or an ordering with null, is 400 invalidFilter and changes
    nothing; an attribute the server does not keep is ignored, whatever its filter. Until
    2026-11-29 ``emails[shoeSize eq null]`` matched every email (a sub-attribute never
    present is null), so removing by it removed them all."""
    user = await scim.create(**ann(addresses=[WORK_ADDRESS]))
    at = f"/Users/{user['id']}"
    refused = {
        "emails[shoeSize eq null]": "emails.shoesize",
        'emails[shoeSize ne "9"]': "emails.shoesize",
        "emails[value.x pr]": "emails.value.x",
        'addresses[label eq "x"]': "addresses.label",
        "emails[value gt null]": "gt null",
        'emails[type eq "work" or shoeSize pr]': "emails.shoesize",
    }
    for path, detail in refused.items():
        for op in ("remove", "replace"):
            operation = {"op": op, "path": path, "value": {"value": "z@x.com"}}
            answer = await scim.patch(at, operation, expect=400)
            assert answer["scimType"] == "invalidFilter", (path, answer)
            assert detail in answer["detail"], (path, answer)
    assert (await scim("GET", at)) == user  # nothing changed, version included
    # An attribute the server does not keep is ignored, with any filter, as before.
    ims = {"op": "replace", "path": 'ims[shoeSize eq "aim"].value', "value": "ann"}
    assert await scim.patch(at, ims) == user
    # RFC 7643 §2.4's sub-attributes are known to every multi-valued attribute: Entra ID
    # writes a role as roles[primary eq "True"].value.
    display = await scim.patch(at, {"op": "remove", "path": 'emails[display eq "x"]'})
    assert display["emails"] == user["emails"]
    role = await scim.patch(
        at, {"op": "replace", "path": 'roles[primary eq "True"].value', "value": "Admin"}
    )
    assert [r["value"] for r in role["roles"]] == ["Admin"]


async def test_racing_writers_with_one_version_give_one_change_and_412s(scim: Scim) -> None:
    """If-Match is compared while the User's (and the Group's) writers take turns: of
    writers sending the same version at once, one changes it and the others get 412."""
    user = await scim.create(**ann())
    group = await scim("POST", "/Groups", {"displayName": "Racers"}, expect=201)

    async def patch(path: str, version: str, op: dict[str, Any]) -> int:
        response = await scim.http.patch(
            BASE + path,
            json={"schemas": [PATCH], "Operations": [op]},
            headers={**scim.headers, "If-Match": version},
        )
        return response.status_code

    for path, version, attribute in (
        (f"/Users/{user['id']}", user["meta"]["version"], "title"),
        (f"/Groups/{group['id']}", group["meta"]["version"], "displayName"),
    ):
        statuses = await asyncio.gather(
            *(
                patch(path, version, {"op": "replace", "path": attribute, "value": f"v{n}"})
                for n in range(4)
            )
        )
        assert sorted(statuses)[1:] == [412, 412, 412], statuses
        assert sorted(statuses)[0] in (200, 204)
