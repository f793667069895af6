"""Rules that hold for all data: cursor walks are complete and ordered; reach is never exceeded."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
from hypothesis import given
from hypothesis import strategies as st

from roster.core.auth import create_client
from roster.core.matching import name_key
from roster.core.persons import PersonCriteria, find_persons
from roster.core.writer import PersonWrite
from roster.db.engine import unit_of_work
from roster.errors import NotFound
from tests.factories import PROPERTY_SETTINGS, Directory

ACCOUNTS = ("A1", "A2", "A3", "A4")
NAMES = ("Ann", "ANN", "Bob", "Zoë", "zoe")


@dataclass(frozen=True)
class Someone:
    first_name: str
    last_name: str
    accounts: frozenset[str]


people = st.lists(
    st.builds(
        Someone,
        first_name=st.sampled_from(NAMES),
        last_name=st.sampled_from(NAMES),
        accounts=st.frozensets(st.sampled_from(ACCOUNTS), max_size=3),
    ),
    max_size=25,
)
account_sets = st.frozensets(st.sampled_from(ACCOUNTS), min_size=1)


async def load(directory: Directory, someone: list[Someone]) -> list[uuid.UUID]:
    """A fresh directory holding these people, in order (their cursor order)."""
    return await directory.fresh(
        ACCOUNTS,
        [
            PersonWrite(
                {"external_ref": f"p{n}", "first_name": s.first_name, "last_name": s.last_name},
                s.accounts,
            )
            for n, s in enumerate(someone)
        ],
    )


@PROPERTY_SETTINGS
@given(
    someone=people,
    first_name=st.none() | st.sampled_from(NAMES),
    groups=st.none() | account_sets,
    reach=st.none() | account_sets,
    page_size=st.integers(min_value=1, max_value=6),
)
async def test_walking_the_cursor_returns_every_match_once_in_order(
    directory: Directory,
    someone: list[Someone],
    first_name: str | None,
    groups: frozenset[str] | None,
    reach: frozenset[str] | None,
    page_size: int,
) -> None:
    ids = await load(directory, someone)
    # The persons asked for are those with a persona in the requested groups that
    # the client can also reach.
    scope = set(ACCOUNTS) & (groups or set(ACCOUNTS)) & (reach or set(ACCOUNTS))
    expected = [
        person_id
        for person_id, s in zip(ids, someone, strict=True)
        if (first_name is None or name_key(s.first_name) == name_key(first_name))
        and s.accounts & scope
    ]
    walked: list[uuid.UUID] = []
    after = 1
    async with unit_of_work(directory.engine, write=False) as conn:
        while True:
            try:
                page = await find_persons(
                    conn,
                    PersonCriteria(first_name=first_name),
                    account_ids=groups,
                    reachable=reach,
                    after=after,
                    region="GB",
                    page_size=page_size,
                )
            except NotFound:
                assert after == 1, "a page after one that said more remain was empty"
                assert expected == []
                break
            assert 1 <= len(page.persons) <= page_size
            walked += [p.id for p in page.persons]
            for record in page.persons:
                assert reach is None or set(record.group_ids) <= reach
            if page.last_id == -1:
                break
            assert page.last_id == page.persons[-1].seq
            after = page.last_id
    assert walked == expected


@PROPERTY_SETTINGS
@given(someone=people, reach=account_sets, groups=st.none() | account_sets)
async def test_a_limited_client_never_sees_a_person_outside_its_accounts(
    client: httpx.AsyncClient,
    directory: Directory,
    someone: list[Someone],
    reach: frozenset[str],
    groups: frozenset[str] | None,
) -> None:
    ids = await load(directory, someone)
    async with unit_of_work(directory.engine, write=True) as conn:
        credentials = await create_client(conn, "prop", ["read"], sorted(reach))
    headers = {"Authorization": f"ApiKey {credentials.api_key}"}
    body = {} if groups is None else {"group_ids": sorted(groups)}
    response = await client.post("/persons/find/", json=body, headers=headers)
    accounts_of = {str(i): s.accounts for i, s in zip(ids, someone, strict=True)}
    if groups is not None and not groups <= reach:
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "group_not_found"
        return
    visible = {i for i, accounts in accounts_of.items() if accounts & (groups or reach)}
    if not visible:
        assert response.status_code == 404
        return
    returned = response.json()["persons"]
    assert {p["identifier"] for p in returned} == visible
    for person in returned:
        assert accounts_of[person["identifier"]] & reach
        assert set(person["group_ids"]) == accounts_of[person["identifier"]] & reach
