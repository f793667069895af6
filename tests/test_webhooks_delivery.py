"""Webhook deliveries (spec/events.md) to a loopback receiver: signed per Standard
Webhooks, in id order per webhook, retried on the schedule, failing then disabled,
re-enabled where they stopped, one slow receiver delaying no other, one deliverer."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.api.events import event_json
from roster.core import deliverer as deliverer_module
from roster.core.clock import now
from roster.core.deliverer import (
    POLL_SECONDS,
    RECHECK_SECONDS,
    Attempt,
    Deliverer,
    Outcome,
    moved_past,
    record_attempts,
)
from roster.core.webhooks import RETRY_DELAYS, find_webhook
from roster.db.engine import unit_of_work
from roster.db.tables import leases
from roster.settings import Settings
from tests.factories import Client, Directory
from tests.webhooks import receiving, register, send

ACCOUNT = "F50091"
OTHER = "OTHER"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback receivers: private targets allowed (the refusal is tested on its own)."""
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
async def admin(directory: Directory) -> Client:
    await directory.account(ACCOUNT)
    await directory.account(OTHER)
    return await directory.client([ACCOUNT, OTHER], scopes=["admin"], name="ops")


class Clock:
    """The deliverer's clock: real time, plus what a test advances it by."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return now() + self.ahead


@asynccontextmanager
async def delivering(
    directory: Directory, *, allow_private: bool = True, clock: Clock | None = None, **more: Any
) -> AsyncIterator[Deliverer]:
    deliverer = Deliverer(
        directory.engine,
        event_json,
        allow_private=allow_private,
        lease_seconds=3,
        clock=clock or Clock(),
        **{"poll_seconds": 0.02, "recheck_seconds": 0.1, **more},
    )
    running = asyncio.create_task(deliverer.run())
    try:
        yield deliverer
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def change(client: httpx.AsyncClient, caller: Client, n: int, account: str = ACCOUNT) -> None:
    """``n`` changes through the People API: a new person each."""
    for i in range(n):
        body = {"accountId": account, "firstName": f"P{i}", "lastName": "Lee", "roleName": "User"}
        response = await send(client, caller, "POST", "/people", body)
        assert response.status_code == 201, response.text


async def feed(client: httpx.AsyncClient, caller: Client, made: dict[str, Any]) -> list[Any]:
    """The events of a webhook's account since it was registered, as the feed shows them."""
    query = f"accountId={made['accountId']}&after={made['deliveredThrough']}&limit=1000"
    response = await send(client, caller, "GET", f"/events?{query}")
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["events"]
    return found


async def webhook(client: httpx.AsyncClient, caller: Client, made: dict[str, Any]) -> Any:
    return (await send(client, caller, "GET", f"/webhooks/{made['id']}")).json()


async def deliveries(client: httpx.AsyncClient, caller: Client, made: dict[str, Any]) -> list[Any]:
    response = await send(client, caller, "GET", f"/webhooks/{made['id']}/deliveries")
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["deliveries"]
    return found


async def logged(
    client: httpx.AsyncClient, caller: Client, made: dict[str, Any], count: int
) -> list[Any]:
    """The webhook's deliveries log, once it holds ``count`` attempts."""

    async def enough() -> bool:
        return len(await deliveries(client, caller, made)) >= count

    await until(enough)
    return await deliveries(client, caller, made)


async def until(check: Any, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 (looks at the database)
            await asyncio.sleep(0.02)


async def test_a_failed_first_attempt_is_retried_and_the_second_verifies(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async def first_fails(path: str, n: int) -> int:
        return 500 if n == 0 else 204

    clock = Clock()
    async with receiving(first_fails) as receiver, delivering(directory, clock=clock):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 1)
        [event] = await feed(client, admin, made)
        [first] = await receiver.wait_for("/hook", 1)
        await asyncio.sleep(0.3)
        assert len(receiver.received["/hook"]) == 1  # the second waits 5 s
        clock.ahead = RETRY_DELAYS[1]
        [_, second] = await receiver.wait_for("/hook", 2)
        log = await logged(client, admin, made, 2)
    assert second.verified_by(made["secret"])
    assert second.event == event  # the event exactly as GET /events shows it
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == str(event["id"])
    assert second.headers["content-type"] == "application/json"
    assert second.headers["webhook-signature"].startswith("v1,")
    assert not second.verified_by("whsec_" + "A" * 32)
    assert [(d["eventId"], d["attempt"], d["statusCode"], d["succeeded"]) for d in log] == [
        (event["id"], 2, 204, True),
        (event["id"], 1, 500, False),
    ]
    assert all(d["error"] is None and d["durationMs"] >= 0 for d in log)
    shown = await webhook(client, admin, made)
    assert (shown["deliveredThrough"], shown["attempts"], shown["state"]) == (
        event["id"],
        0,
        "active",
    )


async def test_each_webhook_gets_its_account_s_events_of_its_types_in_order(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async with receiving() as receiver, delivering(directory):
        everything = await register(client, admin, ACCOUNT, receiver.url("/all"))
        await register(client, admin, ACCOUNT, receiver.url("/teams"), types=["team.*"])
        await register(client, admin, OTHER, receiver.url("/other"))
        await change(client, admin, 12)
        await change(client, admin, 2, account=OTHER)
        mine = await feed(client, admin, everything)
        got = await receiver.wait_for("/all", len(mine))
        await receiver.wait_for("/other", 2)
        await asyncio.sleep(0.3)
    assert [r.event for r in got] == mine  # every one, once, in id order
    assert all(r.verified_by(everything["secret"]) for r in got)
    assert receiver.received["/teams"] == []
    assert [r.event["accountId"] for r in receiver.received["/other"]] == [OTHER, OTHER]


async def test_a_slow_receiver_delays_no_other_webhook(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async def slow_one(path: str, n: int) -> int:
        if path == "/slow":
            await asyncio.sleep(4)
        return 200

    async with receiving(slow_one) as receiver, delivering(directory):
        await register(client, admin, ACCOUNT, receiver.url("/slow"))
        await register(client, admin, ACCOUNT, receiver.url("/fast"))
        await change(client, admin, 5)
        await receiver.wait_for("/fast", 5, within=3)
        assert len(receiver.received["/slow"]) == 1  # still on its first


async def test_private_targets_are_refused_at_delivery_too(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    """Registered while allowed (or before DNS changed): refused when connecting."""
    async with receiving() as receiver, delivering(directory, allow_private=False):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 1)

        async def attempted() -> bool:
            return bool(await deliveries(client, admin, made))

        await until(attempted)
    [attempt] = await deliveries(client, admin, made)
    assert attempt["statusCode"] is None
    assert not attempt["succeeded"]
    assert "refused" in attempt["error"], attempt
    assert receiver.received["/hook"] == []


async def test_during_a_rotation_s_grace_both_secrets_verify_and_after_only_the_new(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async with receiving() as receiver, delivering(directory):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        path = f"/webhooks/{made['id']}/rotate-secret"
        graced = (await send(client, admin, "POST", f"{path}?gracePeriodSeconds=3600")).json()
        await change(client, admin, 1)
        [during] = await receiver.wait_for("/hook", 1)
        at_once = (await send(client, admin, "POST", f"{path}?gracePeriodSeconds=0")).json()
        await change(client, admin, 1)
        [_, after] = await receiver.wait_for("/hook", 2)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verified_by(made["secret"])
    assert during.verified_by(graced["secret"])
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert after.verified_by(at_once["secret"])
    assert not after.verified_by(graced["secret"])
    assert not after.verified_by(made["secret"])


async def test_replay_delivers_again_from_an_event(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async with receiving() as receiver, delivering(directory):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 3)
        first = await receiver.wait_for("/hook", 3)
        ids = [r.event["id"] for r in first]
        replayed = await send(client, admin, "POST", f"/webhooks/{made['id']}/replay?from={ids[1]}")
        assert replayed.json()["deliveredThrough"] == ids[1] - 1
        got = await receiver.wait_for("/hook", 5)
    assert [r.event["id"] for r in got] == [*ids, ids[1], ids[2]]


async def test_acknowledgements_written_after_a_replay_do_not_undo_it(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    """The race a replay loses otherwise: the deliverer's view has the cursor at the first
    event, and a replay from the second moves it to exactly there. Acknowledgements of the
    second and third, written after, must not move the cursor past the replay."""
    made = await register(client, admin, ACCOUNT, "http://127.0.0.1:9/hook")
    await change(client, admin, 3)
    ids = [e["id"] for e in await feed(client, admin, made)]
    async with unit_of_work(directory.engine, write=True) as conn:
        view = await find_webhook(conn, made["id"])
        assert view is not None
        first = Attempt(ids[0], Outcome(200, None, 1), now())
        assert await record_attempts(conn, view, [first])
    view = moved_past(view, ids[0])
    replayed = await send(client, admin, "POST", f"/webhooks/{made['id']}/replay?from={ids[1]}")
    assert replayed.json()["deliveredThrough"] == ids[0], replayed.text
    late = [Attempt(i, Outcome(200, None, 1), now()) for i in ids[1:]]
    async with unit_of_work(directory.engine, write=True) as conn:
        assert not await record_attempts(conn, view, late)  # the view no longer holds
    after = await webhook(client, admin, made)
    assert (after["deliveredThrough"], after["state"]) == (ids[0], "active")
    logged_ids = [d["eventId"] for d in await deliveries(client, admin, made)]
    assert logged_ids == [ids[2], ids[1], ids[0]]  # every attempt is still logged


async def test_failing_after_the_schedule_disabled_after_five_days_and_re_enabled(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    down = True

    async def receiver_down(path: str, n: int) -> int:
        return 503 if down else 200

    clock = Clock()
    async with receiving(receiver_down) as receiver, delivering(directory, clock=clock):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 2)
        events = await feed(client, admin, made)
        for attempt, delay in enumerate(RETRY_DELAYS, start=1):
            clock.ahead += delay
            await receiver.wait_for("/hook", attempt)
            if attempt < len(RETRY_DELAYS):
                assert (await webhook(client, admin, made))["state"] == "active"

        async def state_is(state: str) -> Any:
            async def check() -> bool:
                return bool((await webhook(client, admin, made))["state"] == state)

            return check

        await until(await state_is("failing"))
        failing = await webhook(client, admin, made)
        assert failing["failingSince"] is not None
        assert failing["attempts"] == 8
        # Failing, it is tried every 10 h; after 5 days failing it is disabled.
        clock.ahead += timedelta(hours=10)
        await receiver.wait_for("/hook", 9)
        clock.ahead += timedelta(days=5)
        await receiver.wait_for("/hook", 10)
        await until(await state_is("disabled"))
        clock.ahead += timedelta(days=1)
        await asyncio.sleep(0.5)
        assert len(receiver.received["/hook"]) == 10  # disabled: nothing more is sent
        assert {r.event["id"] for r in receiver.received["/hook"]} == {events[0]["id"]}
        down = False
        enabled = await send(client, admin, "PATCH", f"/webhooks/{made['id']}", {"state": "active"})
        assert enabled.json()["state"] == "active", enabled.text
        got = await receiver.wait_for("/hook", 10 + len(events))
        log = await logged(client, admin, made, 10 + len(events))
    assert [r.event["id"] for r in got[10:]] == [e["id"] for e in events]
    assert [d["attempt"] for d in reversed(log)] == [*range(1, 11), 1, 1]


async def test_two_deliverers_one_delivers(
    client: httpx.AsyncClient, admin: Client, directory: Directory
) -> None:
    async with (
        receiving() as receiver,
        delivering(directory, holder="one"),
        delivering(directory, holder="two"),
    ):
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 10)
        count = len(await feed(client, admin, made))
        got = await receiver.wait_for("/hook", count)
        await asyncio.sleep(0.5)
        async with unit_of_work(directory.engine, write=False) as conn:
            holders = (await conn.execute(select(leases.c.holder))).scalars().all()
    ids = [r.headers["webhook-id"] for r in receiver.received["/hook"]]
    assert len(ids) == len(set(ids)) == count == len(got)
    assert holders in (["one"], ["two"])


async def test_the_cursor_moves_past_many_events_of_other_types(
    client: httpx.AsyncClient, admin: Client, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So that a webhook of rare types does not read past the same events again and again;
    an event of its types after them is still delivered."""
    monkeypatch.setattr(deliverer_module, "SKIP_AHEAD", 3)
    async with receiving() as receiver, delivering(directory):
        made = await register(client, admin, ACCOUNT, receiver.url("/roles"), types=["role.*"])
        await change(client, admin, 4)
        newest = (await feed(client, admin, made))[-1]["id"]
        start = made["deliveredThrough"]

        async def skipped() -> bool:
            """Moved by at least SKIP_AHEAD (in one step or more), never past the log."""
            cursor = (await webhook(client, admin, made))["deliveredThrough"]
            assert cursor <= newest
            return bool(cursor >= start + 3)

        await until(skipped)
        role = {"accountId": ACCOUNT, "name": "Astronaut"}
        assert (await send(client, admin, "POST", "/roles", role)).status_code == 201
        [got] = await receiver.wait_for("/roles", 1)
    assert got.event["type"] == "role.created"
    assert got.event["id"] > newest


_READS = re.compile(r"\bFROM (events|webhooks)\b", re.IGNORECASE)


@contextmanager
def reads_of_tables(engine: AsyncEngine) -> Iterator[Counter[str]]:
    """How many statements sent to the database read ``events`` and ``webhooks`` (the
    statements themselves, as SQLAlchemy sends them), while the block runs."""
    counted: Counter[str] = Counter()

    def count(*sent: Any) -> None:
        counted.update(found.group(1) for found in _READS.finditer(sent[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def leading(deliverer: Deliverer) -> None:
    """Once the deliverer holds the lease and has had its first look at the webhooks."""
    async with asyncio.timeout(10):
        while not deliverer.holding():  # noqa: ASYNC110 (a flag the deliverer sets)
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)


async def test_an_idle_deliverer_looks_at_the_webhooks_not_at_the_events(
    client: httpx.AsyncClient, admin: Client, directory: Directory, app: Any
) -> None:
    """With no webhook, the holder reads the webhooks every 2 s and never the events
    (not 20 times a second, forever); a webhook another process registers is served at
    its next look, and from then on the events are polled every 50 ms."""
    async with (
        receiving() as receiver,
        delivering(
            directory, poll_seconds=POLL_SECONDS, recheck_seconds=RECHECK_SECONDS
        ) as deliverer,
    ):
        await leading(deliverer)
        with reads_of_tables(directory.engine) as idle:
            await asyncio.sleep(3.0)
        assert idle["events"] == 0, idle
        assert 1 <= idle["webhooks"] <= 2, idle  # every 2 s
        # The app's requests do not tell this deliverer: as from another process.
        assert app.state.services.deliverer is not deliverer
        await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 1)
        await receiver.wait_for("/hook", 1, within=RECHECK_SECONDS + 2.0)
        with reads_of_tables(directory.engine) as serving:
            await asyncio.sleep(1.0)
        assert serving["events"] >= 5, serving  # polled again: 20 a second while served


async def test_a_webhook_registered_in_the_same_process_is_served_at_once(
    client: httpx.AsyncClient, admin: Client, directory: Directory, app: Any
) -> None:
    """The API tells its process's deliverer (as ``roster serve`` wires it): an idle
    holder whose next look at the webhooks is 30 s away serves a new webhook at once,
    its first delivery within a poll of the change's commit."""
    async with (
        receiving() as receiver,
        delivering(directory, poll_seconds=POLL_SECONDS, recheck_seconds=30.0) as deliverer,
    ):
        app.state.services.deliverer = deliverer
        await leading(deliverer)
        await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 1)
        committed = time.monotonic()
        await receiver.wait_for("/hook", 1, within=5.0)
        assert time.monotonic() - committed < 1.0
