"""POST /persons/find/: matching rules, group filters, the cursor, and its errors."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from roster.core.persons import _find_statement
from roster.db.backends import backend_for
from roster.db.engine import unit_of_work
from tests.factories import Client, Directory

NOT_FOUND_MESSAGE = "There are no person records matching the information provided."


async def find(client: httpx.AsyncClient, caller: Client, **body: Any) -> httpx.Response:
    return await client.post("/persons/find/", json=body, headers=caller.headers)


def identifiers(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["identifier"] for p in response.json()["persons"]]


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091", external_ref="grp-1")
    await directory.account("F50092", external_ref="grp-2")
    return await directory.client(["F50091", "F50092"])


async def test_answer_has_the_seed_fields_and_group_ids(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(
        ["F50091"],
        first_name="Test",
        last_name="Person 1",
        email_address="test1@example.com",
        phone_number="01234567890",
        external_ref="id-1",
    )
    response = await find(client, caller, external_ref="id-1")
    assert response.status_code == 200
    assert response.json() == {
        "last_id": -1,
        "persons": [
            {
                "identifier": str(person),
                "first_name": "Test",
                "last_name": "Person 1",
                "email_address": "test1@example.com",
                "phone_number": "01234567890",
                "external_ref": "id-1",
                "group_ids": ["F50091"],
            }
        ],
    }


async def test_unset_fields_appear_as_null(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], external_ref="only-ref")
    [person] = (await find(client, caller, external_ref="only-ref")).json()["persons"]
    assert person["first_name"] is None
    assert person["email_address"] is None
    assert person["phone_number"] is None


async def test_email_matches_after_case_folding_and_nfc(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    ann = await directory.person(["F50091"], first_name="Ann", email_address="Ann.Lee@Example.COM")
    zoe = await directory.person(
        ["F50091"], first_name="Zoë", email_address="zoe\u0308@example.com"
    )
    assert identifiers(await find(client, caller, email_address="ann.lee@example.com")) == [
        str(ann)
    ]
    # "ë" precomposed (NFC) finds the address stored decomposed (NFD).
    assert identifiers(await find(client, caller, email_address="ZO\u00cb@EXAMPLE.COM")) == [
        str(zoe)
    ]


@pytest.mark.parametrize("asked", ["01234 567890", "+44 1234 567890", "+441234567890"])
async def test_phone_matches_in_e164(
    client: httpx.AsyncClient, directory: Directory, caller: Client, asked: str
) -> None:
    person = await directory.person(["F50091"], first_name="Pat", phone_number="01234-567890")
    assert identifiers(await find(client, caller, phone_number=asked)) == [str(person)]


async def test_unparseable_phone_matches_by_digits(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091"], first_name="Pat", phone_number="ext. 12-34")
    assert identifiers(await find(client, caller, phone_number="1234")) == [str(person)]


async def test_names_fold_case_but_keep_accents(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    smith = await directory.person(["F50091"], first_name="Zoë", last_name="SMITH")
    found = await find(client, caller, first_name="zoë", last_name="Smith")
    assert identifiers(found) == [str(smith)]
    missing = await find(client, caller, first_name="Zoe", last_name="Smith")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"type": "not_found", "message": NOT_FOUND_MESSAGE}


async def test_identifier_and_external_ref_are_case_sensitive(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091"], external_ref="Ref-A")
    assert identifiers(await find(client, caller, identifier=str(person))) == [str(person)]
    assert (await find(client, caller, identifier=str(person).upper())).status_code == 404
    assert (await find(client, caller, external_ref="ref-a")).status_code == 404
    assert (await find(client, caller, identifier="not-a-uuid")).status_code == 404


async def test_all_given_criteria_must_match(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    one = await directory.person(["F50091"], first_name="Ann", last_name="Lee")
    await directory.person(["F50091"], first_name="Ann", last_name="Other")
    await directory.person(["F50091"], first_name="Bob", last_name="Lee")
    assert identifiers(await find(client, caller, first_name="ann", last_name="lee")) == [str(one)]


async def test_no_criteria_pages_through_everyone_the_client_sees(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.account("HIDDEN")
    seen = [
        await directory.person(["F50091"]),
        await directory.person(["F50092"]),
        await directory.person(["F50091", "HIDDEN"]),
    ]
    await directory.person(["HIDDEN"])
    assert identifiers(await find(client, caller)) == [str(p) for p in seen]


async def test_group_filters_by_id_and_by_external_ref(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    first = await directory.person(["F50091"], last_name="First")
    both = await directory.person(["F50091", "F50092"], last_name="Both")
    second = await directory.person(["F50092"], last_name="Second")
    by_id = await find(client, caller, group_ids=["F50092"])
    by_ref = await find(client, caller, groups_external_refs=["grp-2"])
    assert identifiers(by_id) == identifiers(by_ref) == [str(both), str(second)]
    assert identifiers(await find(client, caller, group_ids=["F50091", "F50092"])) == [
        str(first),
        str(both),
        str(second),
    ]
    # group_ids lists every reachable group the person belongs to, not just the filter.
    assert by_id.json()["persons"][0]["group_ids"] == ["F50091", "F50092"]


async def test_a_person_in_several_groups_appears_once(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091", "F50092"], email_address="twice@example.com")
    assert identifiers(await find(client, caller, email_address="twice@example.com")) == [
        str(person)
    ]


async def test_group_ids_show_only_reachable_groups(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("MINE")
    await directory.account("THEIRS")
    caller = await directory.client(["MINE"])
    await directory.person(["MINE", "THEIRS"], external_ref="shared")
    [person] = (await find(client, caller, external_ref="shared")).json()["persons"]
    assert person["group_ids"] == ["MINE"]


async def test_both_group_identifiers_is_the_seed_error(
    client: httpx.AsyncClient, caller: Client
) -> None:
    response = await find(client, caller, group_ids=["F50091"], groups_external_refs=["grp-1"])
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "both_group_identifiers_provided",
        "message": "You have provided both group ids and group external references for the "
        "find persons operation. Please only provide one of the two.",
    }


async def test_null_group_list_counts_as_not_given(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091"], external_ref="x")
    response = await find(client, caller, group_ids=None, groups_external_refs=["grp-1"])
    assert identifiers(response) == [str(person)]


@pytest.mark.parametrize("field", ["group_ids", "groups_external_refs"])
async def test_an_empty_group_list_is_invalid(
    client: httpx.AsyncClient, caller: Client, field: str
) -> None:
    response = await find(client, caller, **{field: []})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["details"][0]["field"] == field


async def test_unknown_and_unreachable_groups_answer_the_same(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.account("OTHER", external_ref="other-ref")
    unknown = await find(client, caller, group_ids=["F50091", "NOPE"])
    unreachable = await find(client, caller, group_ids=["F50091", "OTHER"])
    assert unknown.status_code == unreachable.status_code == 404
    assert unknown.json()["error"]["type"] == unreachable.json()["error"]["type"]
    assert unknown.json()["error"]["type"] == "group_not_found"
    assert "NOPE" in unknown.json()["error"]["message"]
    assert unreachable.json() == {
        "error": {
            **unknown.json()["error"],
            "message": unknown.json()["error"]["message"].replace("NOPE", "OTHER"),
            "details": [{"field": "group_ids", "problem": "'OTHER' not found"}],
        }
    }
    by_ref = await find(client, caller, groups_external_refs=["other-ref"])
    assert by_ref.status_code == 404
    assert by_ref.json()["error"]["type"] == "group_not_found"


async def test_unknown_field_is_rejected_not_ignored(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    await directory.person(["F50091"], first_name="Ann")
    response = await find(client, caller, frist_name="Ann")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert error["details"] == [{"field": "frist_name", "problem": "is not a known field"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"first_name": 5}, "first_name"),
        ({"group_ids": "F50091"}, "group_ids"),
        ({"after-id": -1}, "after-id"),
        ({"after-id": "12a"}, "after-id"),
        ({"after-id": 1.5}, "after-id"),
        ({"after-id": True}, "after-id"),
        ({"email_address": "x" * 321}, "email_address"),
    ],
)
async def test_malformed_values_name_the_field(
    client: httpx.AsyncClient, caller: Client, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/persons/find/", json=body, headers=caller.headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in [d["field"] for d in error["details"]]


@pytest.mark.parametrize("cursor", [2**63 - 1, 2**63, 10**30, "9" * 40])
async def test_a_cursor_past_every_person_finds_no_one(
    client: httpx.AsyncClient, caller: Client, directory: Directory, cursor: int | str
) -> None:
    await directory.person(["F50091"], first_name="Ann", external_ref="ann")
    response = await find(client, caller, **{"after-id": cursor})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "not_found",
        "message": "There are no person records matching the information provided.",
    }


async def test_both_cursor_spellings_at_once_is_invalid(
    client: httpx.AsyncClient, caller: Client
) -> None:
    response = await find(client, caller, **{"after-id": 1, "after_id": 1})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


async def test_body_must_be_a_json_object(client: httpx.AsyncClient, caller: Client) -> None:
    response = await client.post("/persons/find/", json=[1, 2], headers=caller.headers)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


async def test_path_without_trailing_slash_is_served_without_redirect(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091"], external_ref="slashless")
    response = await client.post(
        "/persons/find", json={"external_ref": "slashless"}, headers=caller.headers
    )
    assert identifiers(response) == [str(person)]


async def test_a_metacharacter_criterion_matches_literally(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    person = await directory.person(["F50091"], external_ref="a%_'\\b", first_name="O'Brien")
    await directory.person(["F50091"], external_ref="aXYZb")
    assert identifiers(await find(client, caller, external_ref="a%_'\\b")) == [str(person)]
    assert identifiers(await find(client, caller, first_name="o'brien")) == [str(person)]
    for value in ["a%", "%", "_"]:
        response = await find(client, caller, external_ref=value)
        assert response.status_code == 404, value


@pytest.mark.parametrize(("field", "value"), [("external_ref", "a\x00b"), ("first_name", "\x00")])
async def test_a_nul_criterion_is_refused_before_the_database(
    client: httpx.AsyncClient, caller: Client, field: str, value: str
) -> None:
    """No stored value holds a NUL: it is refused like any text no database can store
    (it used to match nothing, 404; issue 19 makes every door refuse it alike)."""
    response = await find(client, caller, **{field: value})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_request",
            "message": f"Invalid request: check {field}.",
            "details": [
                {
                    "field": field,
                    "problem": "must not contain NUL characters or unpaired surrogates",
                }
            ],
        }
    }


async def test_the_plain_fetch_gives_what_sqlalchemy_gives(directory: Directory) -> None:
    """PostgreSQL runs a find on asyncpg directly (Backend.fetch_plain); its rows, with
    scope and reach bound as lists, are the ones SQLAlchemy's execution gives. On SQLite
    fetch_plain is SQLAlchemy's execution, so there only its rows are checked."""
    for account in ("P1", "P2", "P3"):
        await directory.account(account)
    await directory.person(["P1", "P2"], first_name="Ann", email_address="ann@p.example")
    await directory.person(["P2", "P3"], first_name="Ann", external_ref="ann-2")
    await directory.person(["P3"], first_name="Bo", external_ref="bo")
    parameters = {"first_name": "ann", "after": 0, "limit": 101, "scope": ["P2", "P3"]}
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        statement = _find_statement(backend, ("first_name",), True, True)
        for reach in (["P2"], ["P1", "P2", "P3"]):
            bound = {**parameters, "reach": reach}
            plain = await backend.fetch_plain(conn, statement, bound)
            assert [(row[2], row[-1]) for row in plain] == (
                [("Ann", "P2"), ("Ann", "P2")]
                if reach == ["P2"]
                else [("Ann", "P1"), ("Ann", "P2"), ("Ann", "P2"), ("Ann", "P3")]
            )
            if conn.dialect.name == "postgresql":  # two paths: asyncpg's own, SQLAlchemy's
                assert all(isinstance(row, asyncpg.Record) for row in plain)
                executed = [tuple(row) for row in await conn.execute(statement, bound)]
                assert [tuple(row) for row in plain] == executed
