"""SCIM latencies against a running ``roster serve`` whose account holds imported people
(docs/scim.md, "Not done yet": the figures there come from this, at 50,000 personas):

    python -m bench.scim http://127.0.0.1:8000 ACCOUNT API_KEY

Medians of sequential requests: ``userName eq``, ``emails[value eq]`` and a Persons API
find by email of the same people, ``name.familyName sw``, and a PATCH adding one member
to a 10-member and to a large Group (as large as the account allows, up to 100,000).
It creates two Groups in the account.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import httpx

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
