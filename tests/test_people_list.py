"""GET /people: the row shape, order and paging, every filter, search, embeds, streaming."""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import aiosqlite
import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from roster.api.people.models import item_key
from roster.core.demo import generate_demo
from roster.core.people import embeds, listing
from roster.core.writer import PersonWrite, write_persons
from roster.db.backends import PostgresBackend, SqliteBackend, backend_for
from roster.db.engine import read_snapshot, run_statements, unit_of_work
from tests.factories import Client, Directory, statements_sent

ACCOUNT = "F50091"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EMBEDS = (
    "persona.addresses",
    "persona.createdBy",
    "persona.teams",
    "persona.primaryOwnerOf",
    "persona.roles",
)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account("OTHER")
    return await directory.client([ACCOUNT])


async def people(client: httpx.AsyncClient, caller: Client, **params: Any) -> dict[str, Any]:
    response = await client.get(
        "/people", params={"accountId": ACCOUNT, **params}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [f"{row['firstName']} {row['lastName']}" for row in body["rows"]]


async def rejected(
    client: httpx.AsyncClient, caller: Client, field: str, query: str
) -> dict[str, Any]:
    """A request (raw query string) refused with 400 invalid_request naming ``field``."""
    response = await client.get(f"/people?{query}", headers=caller.headers)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]], error
    return error


async def test_a_row_has_the_shape_of_the_spec(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person_id = await directory.person(
        [ACCOUNT],
        first_name="César",
        last_name="Treutel",
        email_address="c.treutel@acme.com",
        phone_number="+447700900123",
        employee_number="948",
        job_title="Buyer",
        external_ref="CT-1",
    )
    persona_id = await directory.persona(person_id, ACCOUNT)
    body = await people(client, caller)
    assert {k: body[k] for k in ("limit", "offset", "count", "search")} == {
        "limit": 100,
        "offset": 0,
        "count": 1,
        "search": None,
    }
    [row] = body["rows"]
    assert list(row) == [
        "id",
        "firstName",
        "lastName",
        "title",
        "middleInitials",
        "dob",
        "gender",
        "nationality",
        "countryOfResidence",
        "primaryEmailAddress",
        "primaryMobileNumber",
        "externalRef",
        "status",
        "createdAt",
        "updatedAt",
        "persona",
    ]
    assert row["id"] == str(person_id)
    assert (row["firstName"], row["lastName"]) == ("César", "Treutel")
    assert row["primaryEmailAddress"] == "c.treutel@acme.com"
    assert row["primaryMobileNumber"] == "+447700900123"
    assert row["externalRef"] == "CT-1"
    assert row["status"] == "active"
    assert TIMESTAMP.match(row["createdAt"])
    assert TIMESTAMP.match(row["updatedAt"])
    persona = row["persona"]
    assert list(persona) == [
        "id",
        "accountId",
        "emailAddress",
        "employeeNumber",
        "workNumber",
        "jobTitle",
        "status",
        "roleId",
        "createdByPersonaId",
        "displayName",
        "createdAt",
        "updatedAt",
    ]
    assert persona["id"] == str(persona_id)
    assert persona["accountId"] == ACCOUNT
    assert (persona["employeeNumber"], persona["jobTitle"]) == ("948", "Buyer")
    assert persona["createdByPersonaId"] is None
    assert TIMESTAMP.match(persona["createdAt"])
    assert TIMESTAMP.match(persona["updatedAt"])


@pytest.fixture(params=["searched once", "searched, counted", "gathered", "walked"])
def page_plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ways a page is read (core/people/listing.py): a search's page of up to
    SEARCH_PAGE_LIMIT rows is read by one statement, which gathers, counts and sorts the
    matches when few match, or counts them all and walks the account's ordered index
    when many do; otherwise the rows are counted first, then gathered and sorted when
    few match, or walked along the ordered index when many do (rows joined as they
    come, or keys first past an offset larger than the limit). Test data is small, so
    the other plans are forced by lowering the thresholds."""
    monkeypatch.setattr(listing, "_MANY_MATCHES", OrderedDict())
    if request.param in ("gathered", "walked"):
        monkeypatch.setattr(listing, "SEARCH_PAGE_LIMIT", 0)
    if request.param in ("searched, counted", "walked"):
        monkeypatch.setattr(listing, "GATHER_FIRST", -1)
    return str(request.param)


@pytest.mark.usefixtures("page_plan")
async def test_rows_are_ordered_by_last_then_first_name_ignoring_case_then_person_id(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for first, last in [
        ("bob", "zed"),
        ("Ann", "Adams"),
        ("ann", "ADAMS"),
        ("Carl", "adams"),
        ("Émile", "Éclair"),
        ("Zack", "Brown"),
    ]:
        await directory.person([ACCOUNT], first_name=first, last_name=last)
    body = await people(client, caller)
    # Case is ignored; accents are not (É sorts after z), the same on both backends.
    assert names(body)[2:] == ["Carl adams", "Zack Brown", "bob zed", "Émile Éclair"]
    twins = body["rows"][:2]
    assert {r["firstName"] for r in twins} == {"Ann", "ann"}
    assert [r["id"] for r in twins] == sorted(r["id"] for r in twins)


@pytest.mark.usefixtures("page_plan")
async def test_count_is_the_total_and_offset_pages_walk_every_row_once(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for n in range(7):
        await directory.person([ACCOUNT], first_name=f"P{n}", last_name="Same")
    everyone = names(await people(client, caller))
    walked: list[str] = []
    for offset in range(0, 9, 3):
        page = await people(client, caller, limit=3, offset=offset)
        assert (page["count"], page["limit"], page["offset"]) == (7, 3, offset)
        walked += names(page)
    assert walked == everyone
    assert len(everyone) == 7
    beyond = await people(client, caller, offset=50)
    assert (beyond["count"], beyond["rows"]) == (7, [])


@pytest.mark.parametrize(
    ("field", "query"),
    [
        ("accountId", ""),
        ("accountId", "accountId="),
        ("accountId", "accountId=bad%20id"),
        ("limit", f"accountId={ACCOUNT}&limit=0"),
        ("limit", f"accountId={ACCOUNT}&limit=100001"),
        ("limit", f"accountId={ACCOUNT}&limit=ten"),
        ("offset", f"accountId={ACCOUNT}&offset=-1"),
        ("offset", f"accountId={ACCOUNT}&offset=2147483648"),
        ("search", f"accountId={ACCOUNT}&search={'x' * 101}"),
        ("include", f"accountId={ACCOUNT}&include=persona.friends"),
        ("include", f"accountId={ACCOUNT}&include=persona.roles,"),
        ("status", f"accountId={ACCOUNT}&status=active,retired"),
        ("status", f"accountId={ACCOUNT}&status=Active"),
        ("teams", f"accountId={ACCOUNT}&teams=not-a-uuid"),
        ("roles", f"accountId={ACCOUNT}&roles=12345"),
        ("people", f"accountId={ACCOUNT}&people={uuid.uuid4()},nope"),
        ("budgetId", f"accountId={ACCOUNT}&budgetId=zzz"),
        ("roleNames", f"accountId={ACCOUNT}&roleNames="),
        ("withoutIndividualBudget", f"accountId={ACCOUNT}&withoutIndividualBudget=yes"),
        ("frist_name", f"accountId={ACCOUNT}&frist_name=Ann"),
        ("account_id", f"accountId={ACCOUNT}&account_id={ACCOUNT}"),
        ("limit", f"accountId={ACCOUNT}&limit=5&limit=10"),
        ("accountId", f"accountId={ACCOUNT}&accountId=OTHER"),
    ],
)
async def test_a_malformed_parameter_is_400_naming_it(
    client: httpx.AsyncClient, caller: Client, field: str, query: str
) -> None:
    error = await rejected(client, caller, field, query)
    assert field in error["message"]


async def test_limits_at_the_edges_are_accepted(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person([ACCOUNT], first_name="Only", last_name="One")
    assert (await people(client, caller, limit=1))["count"] == 1
    assert len((await people(client, caller, limit=100000))["rows"]) == 1
    assert (await people(client, caller, offset=2147483647))["rows"] == []


async def test_an_unknown_or_unreachable_account_is_the_same_404(
    client: httpx.AsyncClient, caller: Client
) -> None:
    bodies = []
    for account in ("NOPE", "OTHER"):
        response = await client.get(
            "/people", params={"accountId": account}, headers=caller.headers
        )
        assert response.status_code == 404
        bodies.append(response.json()["error"])
    assert [b["type"] for b in bodies] == ["account_not_found"] * 2
    assert bodies[0]["message"].replace("NOPE", "X") == bodies[1]["message"].replace("OTHER", "X")


@pytest.fixture
async def staff(directory: Directory, caller: Client) -> dict[str, uuid.UUID]:
    """Five people on the account (and one elsewhere), with roles, teams and budgets."""
    ids = {
        "ann": await directory.person(
            [ACCOUNT], first_name="Ann", last_name="Lee", status="active", role_name="Admin"
        ),
        "bob": await directory.person(
            [ACCOUNT], first_name="Bob", last_name="Moss", status="created", role_name="Payer"
        ),
        "cy": await directory.person(
            [ACCOUNT], first_name="Cy", last_name="Nash", status="invited", role_name="admin"
        ),
        "di": await directory.person(
            [ACCOUNT], first_name="Di", last_name="Oak", status="inviteExpired"
        ),
        "ed": await directory.person(
            [ACCOUNT, "OTHER"], first_name="Ed", last_name="Park", status="deactivated"
        ),
    }
    personas = {name: await directory.persona(pid, ACCOUNT) for name, pid in ids.items()}
    ids |= {f"{name}.persona": persona for name, persona in personas.items()}
    ids["red"] = await directory.team(ACCOUNT, "Red", members=[personas["ann"], personas["bob"]])
    ids["blue"] = await directory.team(
        ACCOUNT, "Blue", owner=personas["cy"], members=[personas["di"]]
    )
    ids["own"] = await directory.budget(ACCOUNT, "Ann's", "individual", owner=personas["ann"])
    ids["shared"] = await directory.budget(
        ACCOUNT, "Travel", "shared", owner=personas["bob"], members=[personas["cy"]]
    )
    ids["di_own"] = await directory.budget(ACCOUNT, "Di's", "individual", owner=personas["di"])
    return ids


def first_names(body: dict[str, Any]) -> set[str]:
    return {row["firstName"] for row in body["rows"]}


async def filtered(client: httpx.AsyncClient, caller: Client, query: str) -> set[str]:
    response = await client.get(f"/people?accountId={ACCOUNT}&{query}", headers=caller.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["rows"])
    return first_names(body)


async def test_status_filter_takes_commas_repeats_or_both(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    assert await filtered(client, caller, "status=active") == {"Ann"}
    for query in (
        "status=active%2Ccreated",
        "status=active,created",
        "status=active&status=created",
        "status=active,created&status=active",
    ):
        assert await filtered(client, caller, query) == {"Ann", "Bob"}
    assert await filtered(client, caller, "status=inviteExpired,deactivated") == {"Di", "Ed"}


async def test_teams_roles_people_and_budget_filters(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    s = {k: str(v) for k, v in staff.items()}
    assert await filtered(client, caller, f"teams={s['red']}") == {"Ann", "Bob"}
    assert await filtered(client, caller, f"teams={s['red']},{s['blue']}") == {"Ann", "Bob", "Di"}
    assert await filtered(client, caller, f"teams={s['red']}&teams={s['blue']}") == {
        "Ann",
        "Bob",
        "Di",
    }
    assert await filtered(client, caller, f"people={s['ann']},{s['ed']}") == {"Ann", "Ed"}
    assert await filtered(client, caller, f"people={s['ann']}&people={s['ed']}") == {"Ann", "Ed"}
    # budgetId: the owner or a member of any budget named.
    assert await filtered(client, caller, f"budgetId={s['shared']}") == {"Bob", "Cy"}
    assert await filtered(client, caller, f"budgetId={s['shared']},{s['own']}") == {
        "Ann",
        "Bob",
        "Cy",
    }
    # Well-formed ids that match nothing match nothing.
    assert await filtered(client, caller, f"teams={uuid.uuid4()}") == set()
    assert await filtered(client, caller, f"budgetId={uuid.uuid4()}") == set()
    # Upper-case UUIDs are the same ids.
    assert await filtered(client, caller, f"people={s['ann'].upper()}") == {"Ann"}


@pytest.mark.usefixtures("page_plan")
async def test_role_filters_by_id_and_by_name_ignoring_case(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    body = await people(client, caller, people=str(staff["ann"]))
    admin = body["rows"][0]["persona"]["roleId"]
    assert await filtered(client, caller, f"roles={admin}") == {"Ann", "Cy"}
    for names_given in ("roleNames=admin", "roleNames=ADMIN", "roleNames=Admin"):
        assert await filtered(client, caller, names_given) == {"Ann", "Cy"}
    assert await filtered(client, caller, "roleNames=admin,payer") == {"Ann", "Bob", "Cy"}
    assert await filtered(client, caller, "roleNames=admin&roleNames=Payer") == {"Ann", "Bob", "Cy"}
    assert await filtered(client, caller, "roleNames=User") == {"Di", "Ed"}
    assert await filtered(client, caller, "roleNames=Nobody") == set()


async def test_without_individual_budget(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    everyone = {"Ann", "Bob", "Cy", "Di", "Ed"}
    assert await filtered(client, caller, "withoutIndividualBudget=true") == {"Bob", "Cy", "Ed"}
    assert await filtered(client, caller, "withoutIndividualBudget=TRUE") == {"Bob", "Cy", "Ed"}
    assert await filtered(client, caller, "withoutIndividualBudget=false") == everyone
    assert await filtered(client, caller, "") == everyone


@pytest.mark.usefixtures("page_plan")
async def test_filters_combine_with_and(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    red = staff["red"]
    assert await filtered(client, caller, f"teams={red}&status=created") == {"Bob"}
    assert await filtered(client, caller, f"teams={red}&roleNames=admin") == {"Ann"}
    assert await filtered(client, caller, f"teams={red}&withoutIndividualBudget=true") == {"Bob"}
    assert await filtered(client, caller, "roleNames=admin&status=invited&search=nash") == {"Cy"}
    assert await filtered(client, caller, "roleNames=admin&search=moss") == set()


@pytest.mark.usefixtures("page_plan")
async def test_search_ignores_case_and_accents_and_finds_substrings(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(
        [ACCOUNT],
        first_name="César",
        last_name="Treutel",
        email_address="C.Treutel@Acme.com",
        phone_number="07700 900123",
        employee_number="EMP-948",
    )
    await directory.person([ACCOUNT], first_name="Anna", last_name="Acme", email_address="a@b.org")
    await directory.person(
        [ACCOUNT], first_name="Dee", last_name="Doe", email_address="dee@acme.com"
    )
    await directory.person(["OTHER"], first_name="Cesar", last_name="Treutel")
    cases = {
        "Cesar Treutel": {"César"},
        "Cesar+Treutel": set(),  # a literal plus is part of the term
        "treu": {"César"},
        "CÉSAR": {"César"},
        "  cesar   treutel  ": {"César"},
        "treutel cesar": {"César"},
        "@acme.com": {"César", "Dee"},
        "acme": {"César", "Anna", "Dee"},
        "7700900123": {"César"},
        "+447700": {"César"},
        "07700": {"César"},
        "emp-948": {"César"},
        "948": {"César"},
        "cesar dee": set(),
        "zz": set(),
    }
    for search, expected in cases.items():
        body = await people(client, caller, search=search)
        assert first_names(body) == expected, search
        assert body["count"] == len(expected)
        assert body["search"] == search
    # In a raw query string a plus is a space, as in the seed's example.
    raw = await client.get(
        f"/people?accountId={ACCOUNT}&search=Cesar+Treutel", headers=caller.headers
    )
    assert (raw.json()["search"], first_names(raw.json())) == ("Cesar Treutel", {"César"})


@pytest.mark.usefixtures("page_plan")
async def test_a_name_in_hangul_is_found_as_it_is_typed_however_it_was_written(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    """A Korean keyboard writes a syllable a letter at a time (ㄴ, 내, 낸), and a Mac
    sends text decomposed: each step finds the names it begins, written either way,
    because search's folding joins no letters back (migration 0015)."""
    composed, decomposed = "낸시", unicodedata.normalize("NFD", "낸시")
    await directory.person([ACCOUNT], first_name=composed, last_name="Kim")
    await directory.person([ACCOUNT], first_name=decomposed, last_name="Lee")
    await directory.person([ACCOUNT], first_name="나래", last_name="Park")
    cases = {
        "ㄴ": {"Kim", "Lee", "Park"},  # a compatibility letter, as a keyboard shows it
        "내": {"Kim", "Lee"},
        "낸": {"Kim", "Lee"},
        unicodedata.normalize("NFD", "낸")[:2]: {"Kim", "Lee"},  # 내, decomposed
        "낸시 kim": {"Kim"},
        "나": {"Park"},
        "냇": set(),  # another last letter
    }
    for search, expected in cases.items():
        body = await people(client, caller, search=search)
        assert {row["lastName"] for row in body["rows"]} == expected, search
        assert body["count"] == len(expected)


async def test_a_blank_search_is_no_filter_and_is_echoed(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person([ACCOUNT], first_name="Ann", last_name="Lee")
    for search in ("", "   "):
        body = await people(client, caller, search=search)
        assert (body["count"], body["search"]) == (1, search)


@pytest.mark.usefixtures("page_plan")
async def test_search_takes_like_metacharacters_literally(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for first, last in [
        ("Percy", "100%"),
        ("Una", "a_b"),
        ("Brook", "back\\slash"),
        ("Otto", "O'Brien"),
        ("Plain", "axxb"),
    ]:
        await directory.person([ACCOUNT], first_name=first, last_name=last)
    cases = {
        "%": {"Percy"},
        "0%": {"Percy"},
        "_": {"Una"},
        "a_b": {"Una"},
        "\\": {"Brook"},
        "k\\s": {"Brook"},
        "'": {"Otto"},
        "o'b": {"Otto"},
        "a%b": set(),
        '"': set(),
    }
    for search, expected in cases.items():
        assert first_names(await people(client, caller, search=search)) == expected, search


@pytest.mark.usefixtures("page_plan")
async def test_search_combines_with_paging(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for n in range(5):
        await directory.person([ACCOUNT], first_name=f"Match{n}", last_name="Smith")
    await directory.person([ACCOUNT], first_name="Other", last_name="Jones")
    page = await people(client, caller, search="smith", limit=2, offset=2)
    assert page["count"] == 5
    assert names(page) == ["Match2 Smith", "Match3 Smith"]
    deep = await people(client, caller, search="smith", limit=1, offset=3)  # offset > limit
    assert (deep["count"], names(deep)) == (5, ["Match3 Smith"])
    embedded = await people(
        client, caller, search="smith", limit=2, offset=2, include="persona.teams,persona.roles"
    )
    assert (embedded["count"], names(embedded)) == (5, ["Match2 Smith", "Match3 Smith"])
    assert [(r["persona"]["teams"], len(r["persona"]["roles"])) for r in embedded["rows"]] == [
        ([], 1),
        ([], 1),
    ]
    beyond = await people(client, caller, search="smith", offset=7)
    assert (beyond["count"], beyond["rows"]) == (5, [])
    deep_beyond = await people(client, caller, search="smith", limit=1, offset=5)
    assert (deep_beyond["count"], deep_beyond["rows"]) == (5, [])
    assert (await people(client, caller, search="nobody"))["count"] == 0


@pytest.mark.parametrize("gather_first", [20_000, 3])
async def test_a_search_expected_to_match_few_rows_is_read_once(
    client: httpx.AsyncClient,
    app: FastAPI,
    directory: Directory,
    caller: Client,
    monkeypatch: pytest.MonkeyPatch,
    gather_first: int,
) -> None:
    """A search matching few rows is counted and paged by one statement, with no plan
    asked for first; when it matches more than GATHER_FIRST, one more statement counts
    every match and walks the ordered index for the page (two statements search) and
    the count stays exact. The same search again is read by that one at once."""
    for n in range(5):
        await directory.person([ACCOUNT], first_name=f"Match{n}", last_name="Smith")
    monkeypatch.setattr(listing, "GATHER_FIRST", gather_first)
    monkeypatch.setattr(listing, "_MANY_MATCHES", OrderedDict())
    for again in (False, True):
        with counting_queries(app, monkeypatch) as statements:
            page = await people(
                client, caller, search="SMITH" if again else "smith", limit=2, offset=1
            )
        assert page["count"] == 5
        assert names(page) == ["Match1 Smith", "Match2 Smith"]
        searching = [s for s in statements if "search" in s.lower()]
        assert len(searching) == (1 if gather_first >= 5 or again else 2), searching
        assert not [s for s in statements if "explain" in s.lower()]
    # A page past the last match still has its count from the same statement.
    with counting_queries(app, monkeypatch) as statements:
        beyond = await people(client, caller, search="smith", limit=2, offset=7)
    assert (beyond["count"], beyond["rows"]) == (5, [])
    assert len([s for s in statements if "search" in s.lower()]) == 1, statements


async def test_a_search_is_planned_for_its_terms_every_time(
    client: httpx.AsyncClient, app: FastAPI, directory: Directory, caller: Client
) -> None:
    """PostgreSQL keeps a plan made for any values after a prepared statement's fifth run;
    a search's statement is planned for its own terms every time (the plan for any term
    walked the whole account for a rare one): GET /people runs on the listing engine,
    whose sessions plan so, and the core on another connection (the web page's) sets
    that around the search and back to the default after it, for the finds that come
    next."""
    if directory.engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans each statement as it runs")
    await directory.person([ACCOUNT], first_name="Ann", last_name="Smith")
    services = app.state.services
    for n in range(8):
        found = await people(client, caller, search="smith" + "x" * (n % 2))
        assert found["count"] == 1 - n % 2
    for engine in (services.engine, services.listing_engine):
        async with engine.connect() as conn:
            if engine is services.engine:
                for n in range(8):
                    query = listing.PeopleQuery(search="ann" + "x" * (n % 2))
                    assert (await listing.search_page(conn, ACCOUNT, query)) is not None
            pooled = await conn.get_raw_connection()
            driver = pooled.driver_connection
            shown = await driver.fetchval("SHOW plan_cache_mode")
            plans = await driver.fetch(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE '%search_text LIKE%' AND statement LIKE 'WITH matched%'"
            )
        listed = engine is services.listing_engine
        assert shown == ("force_custom_plan" if listed else "auto")
        assert [tuple(p) for p in plans] == [(0, 8)]


async def test_each_include_adds_only_its_key(
    client: httpx.AsyncClient, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    for embed in EMBEDS:
        body = await people(client, caller, include=embed, people=str(staff["ann"]))
        key = embed.removeprefix("persona.")
        assert key in body["rows"][0]["persona"]
        assert not set(EMBEDS) - {embed} & {f"persona.{k}" for k in body["rows"][0]["persona"]}
    repeated = await client.get(
        "/people",
        params=[("accountId", ACCOUNT), *(("include", e) for e in EMBEDS)],
        headers=caller.headers,
    )
    joined = await people(client, caller, include=",".join(EMBEDS))
    assert repeated.json() == joined


async def test_embeds_hold_what_the_spec_says(
    client: httpx.AsyncClient, directory: Directory, caller: Client, staff: dict[str, uuid.UUID]
) -> None:
    ann, cy = staff["ann.persona"], staff["cy.persona"]
    address = await directory.address(ACCOUNT, ann, region="Greater London", address_line2="Flat 2")
    created = await client.post(
        "/people",
        json={
            "accountId": ACCOUNT,
            "firstName": "New",
            "lastName": "Starter",
            "roleName": "Viewer",
            "createdByPersonaId": str(ann),
        },
        headers=caller.headers,
    )
    assert created.status_code == 201, created.text
    body = await people(client, caller, include=",".join(EMBEDS))
    rows = {row["firstName"]: row["persona"] for row in body["rows"]}
    assert rows["Ann"]["addresses"] == [
        {
            "id": str(address),
            "type": "home",
            "addressLine1": "1 High Street",
            "addressLine2": "Flat 2",
            "addressLine3": None,
            "city": "London",
            "region": "Greater London",
            "postcode": "N1 1AA",
            "countryCode": "GB",
        }
    ]
    assert rows["Bob"]["addresses"] == []
    assert rows["New"]["createdBy"] == {
        "id": str(ann),
        "personId": str(staff["ann"]),
        "firstName": "Ann",
        "lastName": "Lee",
        "emailAddress": None,
    }
    assert rows["Ann"]["createdBy"] is None
    assert rows["Ann"]["teams"] == [{"id": str(staff["red"]), "name": "Red"}]
    assert rows["Ed"]["teams"] == []
    assert rows["Cy"]["primaryOwnerOf"] == [
        {"type": "team", "id": str(staff["blue"]), "name": "Blue"}
    ]
    assert rows["Bob"]["primaryOwnerOf"] == [
        {"type": "budget", "id": str(staff["shared"]), "name": "Travel"}
    ]
    assert rows["Ann"]["primaryOwnerOf"] == [
        {"type": "budget", "id": str(staff["own"]), "name": "Ann's"}
    ]
    assert rows["Ann"]["roles"] == [{"id": rows["Ann"]["roleId"], "name": "Admin", "type": "core"}]
    assert rows["Di"]["roles"][0]["name"] == "User"
    assert rows["Cy"]["id"] == str(cy)  # the persona's own id
    assert rows["Cy"]["teams"] == []  # Cy owns Blue without being one of its members


@contextmanager
def counting_queries(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch | None = None
) -> Iterator[list[str]]:
    """Every statement the app's engine runs while the block is open; with
    ``monkeypatch``, those run on the drivers' connections directly too (fetch_plain)."""
    with statements_sent(app.state.services.engine) as statements:
        if monkeypatch is not None:
            _count_driver_reads(statements, monkeypatch)
        yield statements


def _count_driver_reads(statements: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Add to ``statements`` those run on the drivers' connections directly."""
    fetch = asyncpg.Connection.fetch

    async def counted_fetch(self: asyncpg.Connection, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return await fetch(self, sql, *args)

    monkeypatch.setattr(asyncpg.Connection, "fetch", counted_fetch)
    fetch_all = aiosqlite.Connection.execute_fetchall

    async def counted_fetch_all(self: aiosqlite.Connection, sql: str, *args: Any) -> Any:
        statements.append(sql)
        return await fetch_all(self, sql, *args)

    monkeypatch.setattr(aiosqlite.Connection, "execute_fetchall", counted_fetch_all)


async def test_embeds_cost_the_same_queries_for_5_rows_as_for_200(
    client: httpx.AsyncClient, app: FastAPI, directory: Directory, caller: Client
) -> None:
    async with unit_of_work(directory.engine, write=True) as conn:
        outcomes = await write_persons(
            conn,
            [
                PersonWrite(
                    {"external_ref": f"bulk-{n}", "first_name": f"F{n}", "last_name": f"L{n:03}"},
                    frozenset({ACCOUNT}),
                )
                for n in range(200)
            ],
            region="GB",
        )
    persona_ids = [await directory.persona(o.person_id, ACCOUNT) for o in outcomes if o.person_id]
    for n, persona_id in enumerate(persona_ids):
        if n % 3 == 0:
            await directory.address(ACCOUNT, persona_id)
    await directory.team(ACCOUNT, "All", owner=persona_ids[0], members=persona_ids)
    await directory.budget(ACCOUNT, "Pot", owner=persona_ids[1], members=persona_ids[5:50])

    await people(client, caller, limit=1)  # the first request also loads the signing key
    costs = {}
    for limit in (5, 200):
        with counting_queries(app) as statements:
            body = await people(client, caller, limit=limit, include=",".join(EMBEDS))
        assert len(body["rows"]) == limit
        assert all(len(row["persona"]["teams"]) == 1 for row in body["rows"])
        costs[limit] = len(statements)
    assert costs[5] == costs[200]
    assert costs[200] <= 12  # credentials and account, count, rows, one per embed


async def stream_people(
    app: FastAPI, caller: Client, query: str, hang_up_after: int | None = None
) -> list[bytes]:
    """Call GET /people as a server would, and the body pieces as they leave; with
    ``hang_up_after``, the client goes away once it has that many pieces.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/people",
        "raw_path": b"/people",
        "query_string": query.encode(),
        "headers": [(b"authorization", f"ApiKey {caller.api_key}".encode())],
        "server": ("roster.test", 80),
        "client": ("127.0.0.1", 1234),
    }
    pieces: list[bytes] = []
    requested = False
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200
        if message["type"] != "http.response.body":
            return
        pieces.append(message["body"])
        if not message.get("more_body") or len(pieces) == hang_up_after:
            gone.set()  # the server learns it from receive(), as under uvicorn
            await asyncio.sleep(0.05)  # a socket write: the server gets to listen

    await app(scope, receive, send)
    return [piece for piece in pieces if piece]


@pytest.fixture
async def nine_in_chunks_of_two(
    directory: Directory, caller: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nine people, listed two rows per chunk."""
    for n in range(9):
        await directory.person([ACCOUNT], first_name=f"P{n}", last_name="Streamed")
    monkeypatch.setattr(listing, "CHUNK_SIZE", 2)


@pytest.mark.usefixtures("nine_in_chunks_of_two")
async def test_a_large_page_is_streamed_in_chunks(app: FastAPI, caller: Client) -> None:
    query = f"accountId={ACCOUNT}&limit=100000&include=persona.roles"
    pieces = await stream_people(app, caller, query)
    assert len(pieces) >= 6  # the head, five chunks of at most two rows, the tail
    body = orjson.loads(b"".join(pieces))
    assert body["count"] == 9
    assert len(body["rows"]) == 9
    assert [row["firstName"] for row in body["rows"]] == sorted(f"P{n}" for n in range(9))


EVERY_EMBED = ",".join(
    (
        "persona.addresses",
        "persona.createdBy",
        "persona.teams",
        "persona.primaryOwnerOf",
        "persona.roles",
    )
)


@pytest.mark.usefixtures("page_plan")
async def test_rows_read_ahead_chunk_by_chunk_are_the_rows_read_at_once(
    client: httpx.AsyncClient,
    directory: Directory,
    caller: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next chunk (and its embeds) is read while one is rendered: many small chunks
    give the same answer as one chunk, every embed included."""
    await generate_demo(directory.engine, directory.settings, ACCOUNT, 40, seed=7)
    whole = await people(client, caller, limit=1000, include=EVERY_EMBED)
    monkeypatch.setattr(listing, "CHUNK_SIZE", 3)
    chunked = await people(client, caller, limit=1000, include=EVERY_EMBED)
    assert chunked == whole
    assert whole["count"] == len(whole["rows"]) >= 40
    personas = [row["persona"] for row in whole["rows"]]
    for embed in ("addresses", "teams", "primaryOwnerOf"):
        assert any(persona[embed] for persona in personas), embed
    assert any(persona["createdBy"] for persona in personas)
    assert all(len(persona["roles"]) == 1 for persona in personas)


@pytest.mark.usefixtures("page_plan")
async def test_embeds_the_database_writes_are_the_embeds_python_writes(
    client: httpx.AsyncClient,
    directory: Directory,
    caller: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL the embeds are JSON the database writes, as columns of a page's rows
    or, for a large page, a chunk at a time; both must parse to what the portable path
    (objects loaded per chunk, as on SQLite) writes, order included."""
    await generate_demo(directory.engine, directory.settings, ACCOUNT, 40, seed=3)
    first = (await people(client, caller, limit=1))["rows"][0]["persona"]["id"]
    for n in range(4):  # several addresses: their order is by creation, not by id
        await directory.address(ACCOUNT, uuid.UUID(first), address_line1=f"{n} Mill Lane")
    written = await people(client, caller, limit=1000, include=EVERY_EMBED)
    monkeypatch.setattr(listing, "EMBED_COLUMNS_UP_TO", 10)  # as a large page is
    monkeypatch.setattr(listing, "CHUNK_SIZE", 7)  # chunks read while the rows stream
    assert await people(client, caller, limit=1000, include=EVERY_EMBED) == written
    small = await people(client, caller, limit=5, include=EVERY_EMBED)  # columns again
    assert small["rows"] == written["rows"][:5]
    for backend in {PostgresBackend, SqliteBackend}:
        monkeypatch.setattr(backend, "renders_json", False)
    loaded = await people(client, caller, limit=1000, include=EVERY_EMBED)
    assert written == loaded
    assert any(row["persona"]["primaryOwnerOf"] for row in written["rows"])
    lines = [a["addressLine1"] for a in written["rows"][0]["persona"]["addresses"]]
    assert lines[-4:] == [f"{n} Mill Lane" for n in range(4)]


async def test_a_large_pages_embeds_are_found_by_index_whatever_the_tables_sizes(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large page's embeds are written a chunk at a time, one statement per embed for
    the chunk's personas. Planned for a chunk's many ids, a lookup in a table the planner
    deems small scanned the whole table, each chunk again (test tables are tiny, so it
    would here). With the backend's chunk_embeds_setup each is found by index; a page
    runs it once its own statement is planned, and undoes it once its rows are read."""
    await generate_demo(directory.engine, directory.settings, ACCOUNT, 40, seed=5)
    monkeypatch.setattr(listing, "EMBED_COLUMNS_UP_TO", 10)
    monkeypatch.setattr(listing, "CHUNK_SIZE", 7)
    query = listing.PeopleQuery(limit=1000, include=frozenset(embeds.EMBEDS))
    with statements_sent(directory.engine) as run:
        async with read_snapshot(directory.engine) as conn:
            backend = backend_for(conn)
            if not backend.renders_json:
                pytest.skip("SQLite loads embeds as objects, by statements of its own")
            page = await listing.list_people(conn, ACCOUNT, query, item_key)
            chunks = [chunk async for chunk in page.chunks]
            after_the_page = await conn.scalar(text("SHOW enable_seqscan"))
            await run_statements(conn, backend.chunk_embeds_setup)
            plans = {}  # of the first chunk's statements
            for embed in embeds.EMBEDS:
                ids = list({row.persona_value(embed.on) for row in chunks[0]} - {None})
                statement = embeds._json_statement(embed, backend, item_key)
                compiled = statement.compile(dialect=conn.dialect)
                values = {**compiled.params, "ids": ids}
                positional = tuple(values[name] for name in compiled.positiontup or ())
                explained = await conn.exec_driver_sql(f"EXPLAIN {compiled}", positional)
                plans[embed.name] = "\n".join(line for (line,) in explained)
    assert len(chunks[0]) == 7
    assert sum(map(len, chunks)) == page.count >= 40
    assert set(plans) == {"addresses", "created_by", "teams", "primary_owner_of", "roles"}
    for name, plan in plans.items():
        assert "Index" in plan, (name, plan)
        assert "Seq Scan" not in plan, (name, plan)
    # The page's own statement is planned first; the setting ends with its rows.
    page_at = next(n for n, sql in enumerate(run) if "persons.first_name" in sql)
    set_at = run.index(backend.chunk_embeds_setup[0])
    undone_at = run.index(backend.chunk_embeds_done[0])
    assert page_at < set_at < undone_at
    assert after_the_page == "on"


async def test_the_count_and_the_rows_see_one_snapshot(
    directory: Directory, caller: Client
) -> None:
    for n in range(3):
        await directory.person([ACCOUNT], first_name=f"P{n}", last_name="Before")
    async with read_snapshot(directory.engine) as conn:
        page = await listing.list_people(conn, ACCOUNT, listing.PeopleQuery(limit=100))
        # Another request adds someone between the count and the rows.
        await directory.person([ACCOUNT], first_name="Late", last_name="Arrival")
        rows = [row async for chunk in page.chunks for row in chunk]
    assert page.count == len(rows) == 3
    async with read_snapshot(directory.engine) as conn:
        assert (await listing.list_people(conn, ACCOUNT, listing.PeopleQuery())).count == 4


@pytest.mark.usefixtures("nine_in_chunks_of_two")
async def test_a_client_going_away_mid_stream_releases_the_connection(
    app: FastAPI, caller: Client
) -> None:
    pieces = await stream_people(app, caller, f"accountId={ACCOUNT}&limit=100000", 2)
    assert len(pieces) < 7  # not the head, five chunks and the tail
    assert app.state.services.engine.sync_engine.pool.checkedout() == 0
