"""SCIM latencies against a running ``roster serve`` whose account holds imported people
(docs/scim.md: the 50,000-persona figures there come from this):

    python -m bench.scim http://127.0.0.1:8000 ACCOUNT API_KEY

Medians of sequential requests: ``userName eq``, ``emails[value eq]`` and a Persons API
find by email of the same people, ``name.familyName sw``, and a PATCH adding one member
to a 10-member and to a large Group (as large as the account allows, up to 100,000).
It creates two Groups in the account.

The benchmark suite (``python -m bench``) measures the same rows with its own machinery;
``prepare_groups`` below builds their Groups.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.db.backends import backend_for
from roster.db.engine import unit_of_work
from roster.db.tables import personas, team_members, teams

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def median_ms(send: Callable[[int], httpx.Response], times: int = 60) -> float:
    took = []
    for n in range(times):
        started = time.perf_counter()
        answer = send(n)
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status_code in (200, 204), answer.text
    return statistics.median(took)


def all_ids(http: httpx.Client, base: str, most: int) -> list[str]:
    """Up to ``most`` User ids, walking cursor pages."""
    ids: list[str] = []
    cursor: str | None = ""
    while cursor is not None and len(ids) < most:
        page = http.get(f"{base}/Users", params={"cursor": cursor, "count": 1000}).json()
        ids += [r["id"] for r in page["Resources"]]
        cursor = page.get("nextCursor")
    return ids[:most]


def adding_one(
    http: httpx.Client, group_url: str, spare: list[str]
) -> Callable[[int], httpx.Response]:
    """The n-th PATCH adding the n-th spare User to a Group."""

    def send(n: int) -> httpx.Response:
        operation = {"op": "add", "path": "members", "value": [{"value": spare[n]}]}
        return http.patch(group_url, json={"schemas": [PATCH], "Operations": [operation]})

    return send


def measure(url: str, account: str, key: str) -> dict[str, float]:
    base = f"/scim/v2/{account}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    users = http.get(f"{base}/Users", params={"count": 200, "startIndex": 1000}).json()
    emails = [u["emails"][0]["value"] for u in users["Resources"] if u.get("emails")]
    families = [u["name"]["familyName"][:4] for u in users["Resources"] if u.get("name")]
    ids = all_ids(http, base, 100_200)
    figures = {
        "persons find by email": median_ms(
            lambda n: http.post("/persons/find/", json={"email_address": emails[n % len(emails)]})
        ),
        "userName eq": median_ms(
            lambda n: http.get(
                f"{base}/Users", params={"filter": f'userName eq "{emails[n % len(emails)]}"'}
            )
        ),
        "emails[value eq]": median_ms(
            lambda n: http.get(
                f"{base}/Users",
                params={"filter": f'emails[value eq "{emails[n % len(emails)].upper()}"]'},
            )
        ),
        "name.familyName sw": median_ms(
            lambda n: http.get(
                f"{base}/Users",
                params={"filter": f'name.familyName sw "{families[n % len(families)]}"'},
            )
        ),
    }
    spare, members = ids[-100:], ids[:-100]
    for label, size in (("10-member", 10), (f"{len(members)}-member", len(members))):
        group = http.post(
            f"{base}/Groups",
            json={
                "displayName": f"bench {label}",
                "members": [{"value": i} for i in members[:size]],
            },
        ).json()["id"]
        figures[f"PATCH add 1 member, {label} group"] = median_ms(
            adding_one(http, f"{base}/Groups/{group}", spare), times=50
        )
    return figures


def main() -> None:
    url, account, key = sys.argv[1:4]
    for label, figure in measure(url, account, key).items():
        print(f"{label}: median {figure:.1f} ms")


if __name__ == "__main__":
    main()


# -- the benchmark suite's SCIM rows (bench/suite.py) -------------------------------------

#: The large Group's size in a full run; a smoke run's is as much smaller as its BIG.
LARGE_GROUP = 100_000
SMALL_GROUP = 10
#: Users kept out of both Groups, each added once by a measured PATCH.
SPARE_USERS = 1_200


def group_sizes(big: int) -> tuple[int, int]:
    """The small and the large Group's sizes for an account of ``big`` personas: the
    large one 100,000 at the full run's 500,000, proportionally smaller below."""
    return SMALL_GROUP, max(SMALL_GROUP * 10, min(LARGE_GROUP, big * LARGE_GROUP // 500_000))


async def prepare_groups(engine: AsyncEngine, account: str, big: int) -> dict[str, Any]:
    """The two Groups (teams) the PATCH rows add members to, made on first use with
    their first members, and the spare Users the PATCHes add (taken out of both Groups
    again, so a run on reused data measures the same adds)."""
    small, large = group_sizes(big)
    async with unit_of_work(engine, write=True) as conn:
        ids = list(
            await conn.scalars(
                select(personas.c.id)
                .where(personas.c.account_id == account)
                .order_by(personas.c.seq)
                .limit(large + SPARE_USERS)
            )
        )
        spare = ids[large:]
        groups: dict[str, str] = {}
        for size in (small, large):
            name = f"SCIM bench {size}"
            found = await conn.scalar(
                select(teams.c.id).where(teams.c.account_id == account, teams.c.name == name)
            )
            if found is None:
                found = uuid.uuid4()
                stamp = datetime.now(UTC)
                await conn.execute(
                    teams.insert().values(
                        id=found,
                        account_id=account,
                        name=name,
                        primary_owner_persona_id=ids[0],
                        created_at=stamp,
                        updated_at=stamp,
                    )
                )
                rows = [{"team_id": found, "persona_id": p} for p in ids[:size]]
                for start in range(0, len(rows), 50_000):
                    await backend_for(conn).insert_many(
                        conn, team_members, rows[start : start + 50_000]
                    )
            await conn.execute(
                delete(team_members).where(
                    team_members.c.team_id == found, team_members.c.persona_id.in_(spare)
                )
            )
            groups[f"{size}-member"] = str(found)
    return {"groups": groups, "spare": [str(s) for s in spare]}
