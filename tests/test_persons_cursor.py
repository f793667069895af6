"""The Persons API cursor: after-id / last_id, pages of 100, walked to the end."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import Client, Directory


async def page(client: httpx.AsyncClient, caller: Client, **body: Any) -> httpx.Response:
    return await client.post("/persons/find/", json=body, headers=caller.headers)


@pytest.fixture
async def caller(directory: Directory) -> Client:
    await directory.account("F50091")
    return await directory.client(["F50091"])


async def test_the_first_person_is_found_with_the_seed_default_after_id(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    first = await directory.person(["F50091"])
    # null means "not given", as for every other field (and beside the other spelling too)
    bodies: list[dict[str, Any]] = [
        {},
        {"after-id": 1},
        {"after-id": "1"},
        {"after_id": 1},
        {"after-id": 0},
        {"after-id": None},
        {"after_id": None, "after-id": 1},
    ]
    for body in bodies:
        response = await page(client, caller, **body)
        assert response.status_code == 200, body
        assert response.json()["persons"][0]["identifier"] == str(first)
        assert response.json()["last_id"] == -1


async def test_walking_250_persons_gives_pages_of_100_and_ends_with_minus_one(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    created = [str(await directory.person(["F50091"])) for _ in range(250)]
    seen: list[str] = []
    after: Any = 1
    sizes = []
    while True:
        response = await page(client, caller, **{"after-id": after})
        assert response.status_code == 200
        body = response.json()
        sizes.append(len(body["persons"]))
        seen += [p["identifier"] for p in body["persons"]]
        if body["last_id"] == -1:
            break
        after = str(body["last_id"])  # a digit string works as well as a number
    assert sizes == [100, 100, 50]
    assert seen == created


async def test_last_id_is_minus_one_when_the_page_is_exactly_full(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for _ in range(100):
        await directory.person(["F50091"])
    body = (await page(client, caller)).json()
    assert len(body["persons"]) == 100
    assert body["last_id"] == -1


async def test_a_page_after_the_last_answers_not_found(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for _ in range(101):
        await directory.person(["F50091"])
    first = (await page(client, caller)).json()
    second = await page(client, caller, after_id=first["last_id"])
    assert len(second.json()["persons"]) == 1
    assert second.json()["last_id"] == -1
    beyond = await page(client, caller, **{"after-id": 10**12})
    assert beyond.status_code == 404
    assert beyond.json()["error"]["type"] == "not_found"


async def test_the_cursor_is_unrelated_to_identifier_and_external_ref(
    client: httpx.AsyncClient, directory: Directory, caller: Client
) -> None:
    for n in range(120):
        await directory.person(["F50091"], external_ref=f"ref-{999 - n}")
    body = (await page(client, caller)).json()
    assert isinstance(body["last_id"], int)
    assert body["last_id"] > 1
    assert [p["external_ref"] for p in body["persons"]] == [f"ref-{999 - n}" for n in range(100)]
