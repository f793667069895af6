"""Many Roster nodes: two `roster serve` processes on their own ports, sharing one
PostgreSQL database and one Redis, answer alike and share each client's rate-limit
budget."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.server import Server, serve
from tests.acceptance import (
    ACCOUNTS,
    EMBEDS,
    Operator,
    add_admin,
    bearer,
    make_client,
    make_directory,
    spends_one_budget,
    upsert_people,
)
from tests.conftest import emptied
from tests.servers import ThrowawayRedis

pytestmark = pytest.mark.slow

#: Each client's budget on both nodes: an hour's window, so that no test straddles one.
BUDGET = 30


@dataclass
class Nodes:
    database_url: str
    operator: Operator
    first: Server
    second: Server


@pytest.fixture(scope="module")
def redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nodes(
    postgresql_url: str, redis: ThrowawayRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nodes]:
    url = emptied(postgresql_url)
    operator = make_directory(url)
    logs = tmp_path_factory.mktemp("nodes")
    env = {"ROSTER_REDIS_URL": redis.url, "ROSTER_RATE_LIMIT": f"{BUDGET}/hour"}
    with (
        serve(url, workers=1, log_dir=logs / "first", **env) as first,
        serve(url, workers=1, log_dir=logs / "second", **env) as second,
    ):
        yield Nodes(url, operator, first, second)


def answers(server: Server, headers: dict[str, str]) -> list[Any]:
    """What one node answers to the same finds and listings."""
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        finds = [
            http.post("/persons/find/", json=criterion, headers=headers)
            for criterion in (
                {"email_address": "ADA2@example.com"},
                {"external_ref": "ref-3"},
                {"email_address": "grace@example.com"},
            )
        ]
        listings = [
            http.get("/people", params={"accountId": ACCOUNTS[0], **params}, headers=headers)
            for params in (
                {"include": EMBEDS},
                {"search": "lovelace", "status": "active"},
                {"roleNames": "Admin", "limit": "1"},
            )
        ]
    assert [r.status_code for r in finds + listings] == [200] * 6
    return [r.json() for r in finds + listings]


def test_two_nodes_give_the_same_answers(nodes: Nodes) -> None:
    with httpx.Client(base_url=nodes.first.base_url, timeout=30) as first:
        token = bearer(first, nodes.operator)  # a token one node gave ...
        ids = upsert_people(first, token, 4)
    with httpx.Client(base_url=nodes.second.base_url, timeout=30) as second:
        made = add_admin(second, token)  # ... works on the other, as what it wrote
    on_first, on_second = answers(nodes.first, token), answers(nodes.second, token)
    assert on_first == on_second
    # And they are the right answers, not the same mistake twice.
    assert [p["identifier"] for p in on_first[0]["persons"]] == [ids[2]]
    assert [p["identifier"] for p in on_first[1]["persons"]] == [ids[3]]
    assert [p["identifier"] for p in on_first[2]["persons"]] == [made["id"]]
    assert on_first[3]["count"] == 5
    assert {row["lastName"] for row in on_first[4]["rows"]} == {"Lovelace"}
    assert on_first[4]["count"] == 2
    assert [row["id"] for row in on_first[5]["rows"]] == [made["id"]]


def test_two_nodes_spend_one_budget(nodes: Nodes) -> None:
    spender = make_client(nodes.database_url)
    spends_one_budget([nodes.first.base_url, nodes.second.base_url], spender, BUDGET)
