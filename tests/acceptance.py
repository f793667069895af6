"""The acceptance of both APIs as a client of a running `roster serve` sees it: a token,
upserts and finds (Persons API), writes and listings with search, filters and embeds
(People API). Used where the deployment is the thing under test (a pooler, many nodes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.commands import roster

ACCOUNTS = ("P1", "P2")
EMBEDS = "persona.addresses,persona.createdBy,persona.teams,persona.primaryOwnerOf,persona.roles"


@dataclass(frozen=True)
class Operator:
    """A directory made with the `roster` command: two accounts and one client of both."""

    client_id: str
    client_secret: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"ApiKey {self.api_key}"}


def make_directory(database_url: str, **env: str) -> Operator:
    """Two accounts and a client reaching both, by the command line (``env``: its settings)."""
    for account in ACCOUNTS:
        _run(database_url, env, "accounts", "create", account, "--name", f"Account {account}")
    return make_client(database_url, **env)


def make_client(database_url: str, **env: str) -> Operator:
    """A client reaching both accounts, allowed to read and write, by the command line."""
    scopes = ("--scope", "read", "--scope", "write")
    reach = [arg for account in ACCOUNTS for arg in ("--account", account)]
    made = json.loads(
        _run(
            database_url,
            env,
            "clients",
            "create",
            "--name",
            "acceptance",
            *reach,
            *scopes,
            "--json",
        )
    )
    return Operator(str(made["client_id"]), str(made["client_secret"]), str(made["api_key"]))


def _run(database_url: str, env: dict[str, str], *args: str) -> str:
    done = roster(database_url, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.request.url, response.text)
    return response.json() if response.content else None


def bearer(http: httpx.Client, operator: Operator) -> dict[str, str]:
    """Headers with a token from POST /oauth2/token (client credentials)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": operator.client_id,
        "client_secret": operator.client_secret,
    }
    body = _ok(http.post("/oauth2/token", data=form))
    assert body["token_type"] == "Bearer"
    return {"Authorization": f"Bearer {body['access_token']}"}


def upsert_people(http: httpx.Client, headers: dict[str, str], count: int) -> list[str]:
    """Creates ``count`` persons in both accounts by POST /persons/multiple/; their ids."""
    items = [
        {
            "first_name": f"Ada{i}",
            "last_name": "Lovelace" if i % 2 else "Byron",
            "email_address": f"ada{i}@example.com",
            "external_ref": f"ref-{i}",
            "group_ids": list(ACCOUNTS),
        }
        for i in range(count)
    ]
    entries = _ok(http.post("/persons/multiple/", json={"persons": items}, headers=headers))
    entries = entries["persons"]
    assert [e["success"] for e in entries] == [True] * count, entries
    return [str(e["identifier"]) for e in entries]


def add_admin(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    """Grace Hopper, an Admin of the first account, by POST /people; her row."""
    body = {
        "accountId": ACCOUNTS[0],
        "firstName": "Grace",
        "lastName": "Hopper",
        "emailAddress": "grace@example.com",
        "roleName": "Admin",
    }
    row: dict[str, Any] = _ok(http.post("/people", json=body, headers=headers), 201)
    return row


def find(http: httpx.Client, headers: dict[str, str], **criterion: str) -> list[str]:
    """The identifiers POST /persons/find/ answers (none on 404)."""
    response = http.post("/persons/find/", json=criterion, headers=headers)
    if response.status_code == 404:
        return []
    return [str(p["identifier"]) for p in _ok(response)["persons"]]


def people(http: httpx.Client, headers: dict[str, str], **params: str) -> dict[str, Any]:
    """GET /people of the first account with these query parameters."""
    body: dict[str, Any] = _ok(
        http.get("/people", params={"accountId": ACCOUNTS[0], **params}, headers=headers)
    )
    return body


def run_acceptance(
    base_url: str, operator: Operator, between: Callable[[], None] | None = None
) -> None:
    """Both APIs, once each way, with their answers checked, then the same under concurrent
    clients (so that a pooler hands transactions of many clients to few connections).
    ``between``, if given, is called after the first part, before the concurrent clients
    start (a deployment with a replica waits there for it to have the first part's writes)."""
    with httpx.Client(base_url=base_url, timeout=30) as http:
        headers = bearer(http, operator)
        ids = upsert_people(http, headers, 6)
        # An upsert of a known email updates that person.
        again = _ok(
            http.post(
                "/persons/multiple/",
                json={
                    "persons": [
                        {"first_name": "Ada0", "last_name": "Byron"}
                        | {"email_address": "ADA0@example.com", "group_ids": [ACCOUNTS[0]]}
                    ]
                },
                headers=operator.headers,
            )
        )["persons"]
        assert again[0]["identifier"] == ids[0], again
        assert find(http, headers, email_address="ada3@EXAMPLE.com") == [ids[3]]
        assert find(http, operator.headers, external_ref="ref-5") == [ids[5]]
        assert find(http, headers, email_address="nobody@example.com") == []

        made = add_admin(http, headers)
        persona = made["persona"]["id"]
        changed = _ok(
            http.patch(
                f"/personas/{persona}",
                params={"accountId": ACCOUNTS[0]},
                json={"jobTitle": "Rear Admiral"},
                headers=headers,
            )
        )
        assert changed["persona"]["jobTitle"] == "Rear Admiral"
        assert find(http, headers, email_address="grace@example.com") == [made["id"]]

        everyone = people(http, headers, include=EMBEDS, limit="100")
        assert (everyone["count"], len(everyone["rows"])) == (7, 7)
        assert {"addresses", "teams", "roles"} <= set(everyone["rows"][0]["persona"])
        searched = people(http, headers, search="lovelace")
        assert searched["count"] == 3
        assert {r["lastName"] for r in searched["rows"]} == {"Lovelace"}
        admins = people(http, headers, roleNames="Admin", status="active")
        assert [r["id"] for r in admins["rows"]] == [made["id"]]
        page = people(http, headers, limit="2", offset="2", search="ada")
        assert (page["count"], len(page["rows"])) == (6, 2)

    def one_client(n: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            for _ in range(3):
                assert find(http, operator.headers, external_ref=f"ref-{n % 6}") == [ids[n % 6]]
                assert people(http, operator.headers, search="byron")["count"] == 3
                written = upsert_people_once(http, operator.headers, n)
                assert find(http, operator.headers, external_ref=f"c-{n}") == [written]

    if between is not None:
        between()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one_client, range(16)))


def upsert_people_once(http: httpx.Client, headers: dict[str, str], n: int) -> str:
    """One person of the concurrent clients (the same again on each call: an update)."""
    item = {"first_name": "C", "last_name": f"Client{n}", "external_ref": f"c-{n}"}
    body = {"persons": [item | {"group_ids": [ACCOUNTS[1]]}]}
    [entry] = _ok(http.post("/persons/multiple/", json=body, headers=headers))["persons"]
    assert entry["success"] is True, entry
    return str(entry["identifier"])


# -- one request at a time, for the deployment tests (replicas, nodes) ---------------------


def replica_state(base_url: str) -> str:
    """The first replica's state as a node's /readyz reports it."""
    ready = httpx.get(base_url + "/readyz", timeout=5).json()
    return str(ready["replicas"][0]["state"])


def find_email(base_url: str, who: Operator, email: str) -> httpx.Response:
    """POST /persons/find/ by one email, as ``who``."""
    return httpx.post(
        base_url + "/persons/find/",
        json={"email_address": email},
        headers=who.headers,
        timeout=10,
    )


def found(answer: httpx.Response) -> bool:
    """Whether a find found someone (200) or no one (404); anything else fails."""
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def upsert_email(base_url: str, who: Operator, email: str) -> None:
    """Ann Lee with this email in the first account, by POST /persons/multiple/ as ``who``."""
    item = {"first_name": "Ann", "last_name": "Lee", "email_address": email}
    _ok(
        httpx.post(
            base_url + "/persons/multiple/",
            json={"persons": [item | {"group_ids": [ACCOUNTS[0]]}]},
            headers=who.headers,
            timeout=10,
        )
    )


def spends_one_budget(base_urls: list[str], who: Operator, budget: int) -> None:
    """``who``'s requests, spread over the nodes at ``base_urls`` (from several threads),
    spend one budget of ``budget`` requests: exactly that many are answered, each with
    one fewer remaining, and then every node refuses (429, rate_limited, Retry-After)."""
    params = {"accountId": ACCOUNTS[0], "limit": "1"}

    def one(n: int) -> httpx.Response:
        url = base_urls[n % len(base_urls)] + "/people"
        return httpx.get(url, params=params, headers=who.headers, timeout=30)

    with ThreadPoolExecutor(4 if budget > 100 else 1) as pool:
        answered = list(pool.map(one, range(budget)))
    refused = [one(n) for n in range(2 * len(base_urls))]
    assert [a.status_code for a in answered] == [200] * budget, [
        a.text for a in answered if a.status_code != 200
    ][:3]
    remaining = sorted(int(a.headers["RateLimit-Remaining"]) for a in answered)
    assert remaining == list(range(budget))  # each answer spent one of the same budget
    assert [r.status_code for r in refused] == [429] * len(refused)
    assert [r.headers["RateLimit-Remaining"] for r in refused] == ["0"] * len(refused)
    assert refused[-1].json()["error"]["type"] == "rate_limited"
    assert int(refused[-1].headers["Retry-After"]) > 0
