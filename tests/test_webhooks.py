"""``/webhooks`` (spec/events.md): registering, reading, changing, rotating, replaying and
removing an account's webhooks; bad input refused naming the field, nothing changed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from roster.core.webhooks import CheckedUrl, checked_url, register_webhook, update_webhook
from roster.db.engine import unit_of_work
from roster.db.tables import events, webhooks
from roster.errors import InvalidRequest
from tests.factories import Client, Directory
from tests.webhooks import register, send

ACCOUNT = "F50091"
OTHER = "OTHER"
URL = "https://93.184.215.14/roster-hook"  # a public address: no DNS needed


@pytest.fixture
async def admin(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account(OTHER)
    return await directory.client([ACCOUNT], scopes=["admin"], name="ops")


async def count_webhooks(directory: Directory) -> int:
    async with unit_of_work(directory.engine, write=False) as conn:
        return int(await conn.scalar(select(func.count()).select_from(webhooks)) or 0)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


async def newest_event(directory: Directory) -> int:
    async with unit_of_work(directory.engine, write=False) as conn:
        return int(await conn.scalar(select(func.max(events.c.id))) or 0)


async def test_a_webhook_is_registered_its_secret_shown_once(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    newest = await newest_event(directory)
    made = await register(
        client, admin, ACCOUNT, URL, types=["persona.*", "team.member_added"], description="CRM"
    )
    assert made["secret"].startswith("whsec_")
    assert len(made["secret"]) >= 38
    assert made["id"].startswith("wh_")
    shown = {k: v for k, v in made.items() if k not in ("id", "secret", "createdAt", "updatedAt")}
    assert shown == {
        "accountId": ACCOUNT,
        "url": URL,
        "types": ["persona.*", "team.member_added"],
        "description": "CRM",
        "state": "active",
        "failingSince": None,
        "deliveredThrough": newest,  # events that commit after it are delivered
        "attempts": 0,
        "nextAttemptAt": None,
        "previousSecretExpiresAt": None,
    }
    one = await send(client, admin, "GET", f"/webhooks/{made['id']}")
    assert one.status_code == 200
    assert "secret" not in one.json()
    assert one.json() == {k: v for k, v in made.items() if k != "secret"}
    listed = await send(client, admin, "GET", "/webhooks")
    assert listed.json() == {"webhooks": [one.json()]}


async def test_a_client_sees_only_the_webhooks_of_accounts_it_reaches(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    everyone = await directory.client(None, scopes=["admin"])
    mine = await register(client, admin, ACCOUNT, URL)
    theirs = await register(client, everyone, OTHER, URL)
    listed = (await send(client, admin, "GET", "/webhooks")).json()["webhooks"]
    assert [w["id"] for w in listed] == [mine["id"]]
    all_of_them = (await send(client, everyone, "GET", "/webhooks")).json()["webhooks"]
    assert [w["id"] for w in all_of_them] == [mine["id"], theirs["id"]]
    one_account = await send(client, everyone, "GET", f"/webhooks?accountId={OTHER}")
    assert [w["id"] for w in one_account.json()["webhooks"]] == [theirs["id"]]
    for method, path in (
        ("GET", f"/webhooks/{theirs['id']}"),
        ("PATCH", f"/webhooks/{theirs['id']}"),
        ("DELETE", f"/webhooks/{theirs['id']}"),
        ("POST", f"/webhooks/{theirs['id']}/rotate-secret"),
        ("GET", f"/webhooks/{theirs['id']}/deliveries"),
        ("POST", f"/webhooks/{theirs['id']}/replay?from=1"),
    ):
        body = {"description": "x"} if method == "PATCH" else None
        refused = await send(client, admin, method, path, body)
        assert problem(refused, 404)["type"] == "not_found", (method, path)
    assert (
        problem(await send(client, admin, "GET", f"/webhooks?accountId={OTHER}"), 404)["type"]
        == "account_not_found"
    )
    registering = await send(client, admin, "POST", "/webhooks", {"accountId": OTHER, "url": URL})
    assert problem(registering, 404)["type"] == "account_not_found"


async def test_webhooks_need_the_admin_scope_and_credentials(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account(ACCOUNT)
    writer = await directory.client([ACCOUNT], scopes=["read", "write"])
    body = {"accountId": ACCOUNT, "url": URL}
    assert problem(await send(client, writer, "POST", "/webhooks", body), 403)["type"] == (
        "insufficient_scope"
    )
    assert problem(await client.get("/webhooks"), 401)["type"] == "missing_authorization"
    bad = await client.get("/webhooks", headers={"Authorization": "ApiKey nope"})
    assert problem(bad, 403)["type"] == "invalid_authorization"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://93.184.215.14/hook"}, "url"),  # plain http
        ({"url": "ftp://93.184.215.14/hook"}, "url"),
        ({"url": "https://127.0.0.1/hook"}, "url"),  # loopback
        ({"url": "https://10.1.2.3/hook"}, "url"),  # private
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),  # link-local
        ({"url": "https://[::1]/hook"}, "url"),
        ({"url": "https://[::ffff:10.0.0.1]/hook"}, "url"),  # IPv4-mapped private
        ({"url": "https://0.0.0.0/hook"}, "url"),
        ({"url": "https://224.0.0.1/hook"}, "url"),  # multicast
        ({"url": "https://localhost/hook"}, "url"),
        ({"url": "https://user:pw@93.184.215.14/hook"}, "url"),
        ({"url": "https:///hook"}, "url"),
        ({"url": "https://no-such-host.invalid/hook"}, "url"),
        ({"url": "https://x/" + "a" * 2048}, "url"),
        ({"url": 5}, "url"),
        ({"types": ["persona.renamed"]}, "types"),
        ({"types": "persona.*"}, "types"),
        ({"url": "https://93.184.215.14/a\tb"}, "url"),  # the declared field's rules
        ({"description": "x" * 257}, "description"),
        ({"description": " "}, "description"),
        ({"description": "CRM\x07"}, "description"),
        ({"secret": "whsec_mine"}, "secret"),
        ({"accountId": None}, "accountId"),
    ],
)
async def test_bad_registrations_are_refused_naming_the_field(
    client: httpx.AsyncClient, admin: Client, directory: Directory, body: Any, field: str
) -> None:
    response = await send(
        client, admin, "POST", "/webhooks", {"accountId": ACCOUNT, "url": URL, **body}
    )
    error = problem(response, 400)
    assert error["type"] == "invalid_request"
    assert [d["field"].split("[")[0] for d in error["details"]][:1] == [field], error
    assert await count_webhooks(directory) == 0


async def test_core_checks_a_webhook_by_its_declared_fields(
    admin: Client, directory: Directory
) -> None:
    """Whichever door calls it, core refuses what the declarations (core/fields.py)
    refuse, naming the field: a URL too long, a blank description."""

    def blamed(refused: pytest.ExceptionInfo[InvalidRequest]) -> list[str]:
        return [d.field for d in refused.value.details]

    with pytest.raises(InvalidRequest) as too_long:
        await checked_url("https://93.184.215.14/" + "a" * 2048, allow_private=False)
    assert blamed(too_long) == ["url"]
    async with unit_of_work(directory.engine, write=True) as conn:
        with pytest.raises(InvalidRequest) as blank:
            await register_webhook(conn, ACCOUNT, CheckedUrl(URL), [], " ")
        assert blamed(blank) == ["description"]
        made = await register_webhook(conn, ACCOUNT, CheckedUrl(URL), [], "CRM")
        with pytest.raises(InvalidRequest) as too_long:
            await update_webhook(conn, made.webhook.id, None, {"description": "x" * 257})
        assert blamed(too_long) == ["description"]


async def test_a_webhook_is_changed_and_re_enabled(
    client: httpx.AsyncClient, admin: Client
) -> None:
    made = await register(client, admin, ACCOUNT, URL, description="CRM")
    path = f"/webhooks/{made['id']}"
    changed = await send(
        client,
        admin,
        "PATCH",
        path,
        {"types": ["team.*"], "description": None, "state": "disabled"},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["types"] == ["team.*"]
    assert changed.json()["description"] is None
    assert changed.json()["state"] == "disabled"
    assert changed.json()["url"] == URL
    again = await send(client, admin, "PATCH", path, {"state": "active"})
    assert again.json()["state"] == "active"
    assert (await send(client, admin, "GET", path)).json() == again.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://10.0.0.1/x"}, "url"),
        ({"url": None}, "url"),
        ({"types": ["nope"]}, "types"),
        ({"types": None}, "types"),
        ({"state": "failing"}, "state"),
        ({"state": None}, "state"),
        ({"secret": "whsec_x"}, "secret"),
    ],
)
async def test_bad_changes_are_refused_and_change_nothing(
    client: httpx.AsyncClient, admin: Client, body: Any, field: str
) -> None:
    made = await register(client, admin, ACCOUNT, URL, types=["persona.*"])
    path = f"/webhooks/{made['id']}"
    before = (await send(client, admin, "GET", path)).json()
    error = problem(await send(client, admin, "PATCH", path, {"description": "new", **body}), 400)
    assert [d["field"].split("[")[0] for d in error["details"]][:1] == [field], error
    assert (await send(client, admin, "GET", path)).json() == before


async def test_rotation_shows_a_new_secret_and_keeps_the_old_for_the_grace(
    client: httpx.AsyncClient, admin: Client
) -> None:
    made = await register(client, admin, ACCOUNT, URL)
    path = f"/webhooks/{made['id']}/rotate-secret"
    rotated = await send(client, admin, "POST", f"{path}?gracePeriodSeconds=3600")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != made["secret"]
    assert rotated.json()["previousSecretExpiresAt"] is not None
    at_once = await send(client, admin, "POST", f"{path}?gracePeriodSeconds=0")
    assert at_once.json()["previousSecretExpiresAt"] is None
    too_long = await send(client, admin, "POST", f"{path}?gracePeriodSeconds=999999999")
    assert problem(too_long, 400)["details"][0]["field"] == "gracePeriodSeconds"


async def test_replay_moves_the_cursor(client: httpx.AsyncClient, admin: Client) -> None:
    made = await register(client, admin, ACCOUNT, URL)
    path = f"/webhooks/{made['id']}/replay"
    replayed = await send(client, admin, "POST", f"{path}?from=1")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["deliveredThrough"] == 0
    for bad in ("from=0", "from=x", ""):
        error = problem(await send(client, admin, "POST", f"{path}?{bad}"), 400)
        assert error["details"][0]["field"] == "from", error
    assert (await send(client, admin, "GET", f"/webhooks/{made['id']}")).json()[
        "deliveredThrough"
    ] == 0


async def test_a_removed_webhook_is_gone(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    made = await register(client, admin, ACCOUNT, URL)
    removed = await send(client, admin, "DELETE", f"/webhooks/{made['id']}")
    assert removed.status_code == 204
    assert problem(await send(client, admin, "GET", f"/webhooks/{made['id']}"), 404)
    assert await count_webhooks(directory) == 0
    assert problem(await send(client, admin, "DELETE", f"/webhooks/{made['id']}"), 404)
