"""``roster deliver`` as a real process (spec/events.md: "a restart or a crash loses no
delivery"): killed with SIGKILL in the middle of a delivery and started again, it
delivers every event, the interrupted one again; two of them deliver each event once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.same_person import prepare
from bench.server import serve
from tests.commands import ROSTER
from tests.factories import Client, Directory
from tests.test_webhooks_delivery import change, feed, logged, settings  # noqa: F401
from tests.webhooks import receiving, register

pytestmark = pytest.mark.slow

ACCOUNT = "F50091"


@contextmanager
def roster_deliver(database_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    environment = {
        **os.environ,
        "ROSTER_DATABASE_URL": database_url,
        "ROSTER_WEBHOOK_ALLOW_PRIVATE": "true",
        "ROSTER_WEBHOOK_LEASE_SECONDS": "2",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [ROSTER, "deliver"], env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


async def test_a_deliverer_killed_mid_delivery_loses_nothing_when_started_again(
    client: httpx.AsyncClient, directory: Directory, database_url: str, tmp_path: Path
) -> None:
    await directory.account(ACCOUNT)
    admin: Client = await directory.client([ACCOUNT], scopes=["admin"])
    held = asyncio.Event()

    async def hold_the_fifth(path: str, n: int) -> int:
        if n == 4:
            held.set()
            await asyncio.sleep(3)  # the deliverer is killed while it waits for this
        return 200

    log = tmp_path / "deliver.log"
    async with receiving(hold_the_fifth) as receiver:
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        await change(client, admin, 12)
        events = [e["id"] for e in await feed(client, admin, made)]
        with roster_deliver(database_url, log) as first:
            await asyncio.wait_for(held.wait(), 60)
            # The acknowledgements are written while the next event is sent: a moment
            # for the fourth's, so that only the fifth is in flight when it dies.
            await asyncio.sleep(0.5)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        with roster_deliver(database_url, log) as second:
            got = await receiver.wait_for("/hook", len(events) + 1, within=60)
            await logged(client, admin, made, len(events))
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=30) == 0, log.read_text()
    ids = [r.event["id"] for r in got]
    # The first four acknowledged, the fifth sent again after the crash, then the rest.
    assert ids == [*events[:5], *events[4:]], log.read_text()
    assert all(r.verified_by(made["secret"]) for r in got)
    shown = (await client.get(f"/webhooks/{made['id']}", headers=admin.headers)).json()
    assert shown["deliveredThrough"] == events[-1]


async def test_two_deliver_processes_send_each_event_once_and_one_takes_over(
    client: httpx.AsyncClient, directory: Directory, database_url: str, tmp_path: Path
) -> None:
    await directory.account(ACCOUNT)
    admin: Client = await directory.client([ACCOUNT], scopes=["admin"])
    log = tmp_path / "deliver.log"
    async with receiving() as receiver:
        made = await register(client, admin, ACCOUNT, receiver.url("/hook"))
        with roster_deliver(database_url, log) as one, roster_deliver(database_url, log):
            await change(client, admin, 6)
            await receiver.wait_for("/hook", 6, within=60)
            await asyncio.sleep(1)
            # One of them is killed (the holder or not): the other delivers what follows.
            one.send_signal(signal.SIGKILL)
            one.wait(timeout=10)
            await change(client, admin, 2)
            await receiver.wait_for("/hook", 8, within=60)
            await asyncio.sleep(1)
        events = [e["id"] for e in await feed(client, admin, made)]
    ids = [r.event["id"] for r in receiver.received["/hook"]]
    assert ids == events  # each once, in order, whichever delivered


async def test_roster_serve_with_workers_delivers_each_event_once(
    fresh_database: str, tmp_path: Path
) -> None:
    """Every worker of ``roster serve --workers 2`` is a candidate; one delivers."""
    api_key = await prepare(fresh_database, ACCOUNT, "ops", ("read", "write", "admin"))
    headers = {"Authorization": f"ApiKey {api_key}"}
    environment = {"ROSTER_WEBHOOK_ALLOW_PRIVATE": "true"}
    with serve(fresh_database, workers=2, log_dir=tmp_path, **environment) as server:
        async with (
            receiving() as receiver,
            httpx.AsyncClient(base_url=server.base_url, headers=headers) as http,
        ):
            hook = {"accountId": ACCOUNT, "url": receiver.url("/hook")}
            made = (await http.post("/webhooks", json=hook)).json()
            for n in range(10):
                body = {
                    "accountId": ACCOUNT,
                    "firstName": "A",
                    "lastName": f"L{n}",
                    "roleName": "User",
                }
                assert (await http.post("/people", json=body)).status_code == 201
            await receiver.wait_for("/hook", 10, within=60)
            await asyncio.sleep(1)
            query = {"accountId": ACCOUNT, "after": made["deliveredThrough"]}
            events = (await http.get("/events", params=query)).json()["events"]
    got = receiver.received["/hook"]
    assert [r.event for r in got] == events
    assert all(r.verified_by(made["secret"]) for r in got)
