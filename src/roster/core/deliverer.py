"""The deliverer of webhooks (spec/events.md): one across every process and machine.

Every ``roster serve`` process (each worker) and every ``roster deliver`` is a candidate;
the one that holds the ``webhooks`` row of the ``leases`` table delivers. It renews the
lease every third of its term; another candidate takes it once it has expired (the
holder stopped, crashed, or lost the database). A holder that could not renew stops
sending before its term ends, so two deliverers never send at once while the clocks of
their machines agree to within the lease's margin.

While it holds the lease, the deliverer:

- looks at the webhooks every 2 s, or at once when this process registers or changes
  one (:meth:`Deliverer.webhooks_changed`); while none is to be served it does nothing
  else, so an idle deliverer costs a query every 2 s, not a poll of the events;
- while at least one webhook is served, looks at the newest event id every 50 ms (one
  indexed query) and wakes the webhooks' tasks when it grows: a change reaches its
  receivers within a poll of its commit;
- runs one task per webhook that is not disabled, so a slow or dead receiver delays no
  other; each sends its account's events after its cursor, in id order, one at a time,
  and moves the cursor only after a 2xx within 10 s (at least once: a crash between the
  answer and the cursor's move sends that event again, with the same ``webhook-id``);
- after a failure, tries the same event again on the spec's schedule
  (``core/webhooks.py`` ``RETRY_DELAYS``), then marks the webhook failing (tried every
  10 h), and disables it after 5 days failing;
- connects only to public addresses, checked at each connection (DNS may have changed
  since registration), unless ``ROSTER_WEBHOOK_ALLOW_PRIVATE`` allows the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpcore
import httpx
import orjson
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from roster import __version__
from roster.core.clock import now
from roster.core.events import EventFilter, EventsExpired, StoredEvent, pruned_through, read_events
from roster.core.webhooks import (
    DISABLE_AFTER,
    RETRY_DELAYS,
    TargetRefused,
    Webhook,
    find_webhook,
    public_addresses,
    signed_headers,
    target_of,
)
from roster.db.backends import DATABASE_ERRORS, backend_for
from roster.db.engine import unit_of_work
from roster.db.tables import events, leases, webhook_deliveries, webhooks

log = logging.getLogger("roster.webhooks")

LEASE = "webhooks"
#: A receiver acknowledges with a 2xx within this long (spec).
TIMEOUT_SECONDS = 10.0
#: How often the holder looks for new events, while it serves at least one webhook.
POLL_SECONDS = 0.05
#: How often the holder looks for new webhooks (registered by another process: this
#: one's wake it at once), and a task at its webhook's changes.
RECHECK_SECONDS = 2.0
#: Events one task reads at a time.
PAGE = 100
#: A webhook whose types match none of this many newer events moves its cursor past them.
SKIP_AHEAD = 10_000

Render = Callable[[StoredEvent], object]
Clock = Callable[[], datetime]


# -- the lease ---------------------------------------------------------------------------------


async def take_lease(conn: AsyncConnection, holder: str, term: timedelta, at: datetime) -> bool:
    """Take or renew the deliverer's lease until ``at + term``; whether ``holder`` has it.

    The row is taken only from its holder or once it has expired: on PostgreSQL two
    candidates updating an expired row at once take turns on its row lock, and the
    second finds it no longer expired; on SQLite writers take turns anyway.
    """
    values = {"holder": holder, "expires_at": at + term}
    inserted = await conn.execute(
        backend_for(conn).insert(leases).values(name=LEASE, **values).on_conflict_do_nothing()
    )
    if inserted.rowcount == 1:
        return True
    taken = await conn.execute(
        update(leases)
        .where(leases.c.name == LEASE, or_(leases.c.holder == holder, leases.c.expires_at < at))
        .values(**values)
    )
    return taken.rowcount == 1


async def release_lease(conn: AsyncConnection, holder: str, at: datetime) -> None:
    """Give the lease up (a clean stop): another candidate takes it at once."""
    await conn.execute(
        update(leases)
        .where(leases.c.name == LEASE, leases.c.holder == holder)
        .values(expires_at=at - timedelta(seconds=1))
    )


async def lease_holder(conn: AsyncConnection) -> tuple[str, datetime] | None:
    found = (await conn.execute(select(leases.c.holder, leases.c.expires_at))).first()
    return None if found is None else (found.holder, found.expires_at)


# -- one attempt, recorded ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: the receiver's status, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def after_failure(webhook: Webhook, at: datetime) -> dict[str, Any]:
    """The webhook's retry state after a failed attempt at ``at``: the next attempt on the
    schedule; past its end, ``failing`` (and tried every 10 h); 5 days failing, disabled."""
    attempts = webhook.attempts + 1
    if attempts < len(RETRY_DELAYS):
        return {"attempts": attempts, "next_attempt_at": at + RETRY_DELAYS[attempts]}
    since = webhook.failing_since or at
    if at - since >= DISABLE_AFTER:
        return {"attempts": attempts, "state": "disabled", "next_attempt_at": None}
    return {
        "attempts": attempts,
        "state": "failing",
        "failing_since": since,
        "next_attempt_at": at + RETRY_DELAYS[-1],
    }


@dataclass(frozen=True)
class Attempt:
    """One attempt at one event, done."""

    event_id: int
    outcome: Outcome
    at: datetime


async def record_attempts(
    conn: AsyncConnection, webhook: Webhook, attempts: Sequence[Attempt]
) -> bool:
    """Log attempts at consecutive events, every one acknowledged but perhaps the last,
    and move the webhook on: past the acknowledged ones, then to the failed one's retry;
    neither if an admin changed the webhook meanwhile (its revision moved). Whether the
    caller's view of the webhook still holds.

    The revision guards the cursor, not the cursor itself: a replay may move the cursor
    back to exactly where this view has it, and the acknowledgements written over it would
    lose the replay. A change that is not a replay only costs the events acknowledged and
    not yet written: they are sent again (at least once)."""
    await conn.execute(
        webhook_deliveries.insert(),
        [
            {
                "webhook_id": webhook.id,
                "event_id": a.event_id,
                # The first is the n-th attempt at its event; after an acknowledgement, 1.
                "attempt": webhook.attempts + 1 if n == 0 else 1,
                "status_code": a.outcome.status_code,
                "error": a.outcome.error,
                "duration_ms": a.outcome.duration_ms,
                "attempted_at": a.at,
            }
            for n, a in enumerate(attempts)
        ],
    )
    acknowledged = [a for a in attempts if a.outcome.acknowledged]
    if acknowledged:
        moved = await conn.execute(
            update(webhooks)
            .where(
                webhooks.c.id == webhook.id,
                webhooks.c.delivered_through == webhook.delivered_through,
                webhooks.c.revision == webhook.revision,
            )
            .values(
                delivered_through=acknowledged[-1].event_id,
                attempts=0,
                next_attempt_at=None,
                failing_since=None,
                state=case((webhooks.c.state == "failing", "active"), else_=webhooks.c.state),
            )
            .returning(webhooks.c.state)
        )
        found = moved.first()
        if found is None or found.state != "active":
            return False
        if len(acknowledged) == len(attempts):
            return True
        webhook = moved_past(webhook, acknowledged[-1].event_id)
    await conn.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook.id, webhooks.c.revision == webhook.revision)
        .values(**after_failure(webhook, attempts[-1].at))
    )
    return False


def moved_past(webhook: Webhook, event_id: int) -> Webhook:
    """The webhook as an acknowledgement of ``event_id`` leaves it."""
    return replace(
        webhook, delivered_through=event_id, attempts=0, next_attempt_at=None, failing_since=None
    )


class _Recorder:
    """Writes one webhook's acknowledged attempts while the next events are sent: one
    write at a time, each of every acknowledgement since the last. At least once still:
    a crash loses only the acknowledgements not yet written, whose events are sent
    again; a delivery costs a round trip to the receiver, not that and a transaction."""

    def __init__(self, engine: AsyncEngine, webhook: Webhook) -> None:
        self.engine = engine
        #: The webhook as the writes so far leave it.
        self.webhook = webhook
        self.unwritten: list[Attempt] = []
        self.writing: asyncio.Task[None] | None = None
        #: The webhook changed meanwhile (a replay, a PATCH), or a write failed: reload.
        self.stale = False

    def add(self, attempt: Attempt) -> None:
        self.unwritten.append(attempt)
        self._next()

    def _next(self) -> None:
        if self.writing is None and self.unwritten and not self.stale:
            batch, self.unwritten = self.unwritten, []
            self.writing = asyncio.create_task(self._write(batch))

    async def _write(self, batch: list[Attempt]) -> None:
        try:
            async with unit_of_work(self.engine, write=True) as conn:
                holds = await record_attempts(conn, self.webhook, batch)
        except DATABASE_ERRORS as error:
            log.warning("webhook %s: deliveries not recorded: %s", self.webhook.id, error)
            holds = False  # those events are sent again
        if holds:
            self.webhook = moved_past(self.webhook, batch[-1].event_id)
        else:
            self.stale = True
        self.writing = None
        self._next()

    async def written(self) -> bool:
        """Once every acknowledgement is written: whether the view of the webhook holds."""
        while self.writing is not None:
            await asyncio.shield(self.writing)
        return not self.stale


async def skip_to(conn: AsyncConnection, webhook: Webhook, event_id: int) -> None:
    """Move the cursor past events none of which are of the webhook's types (unless it
    moved meanwhile)."""
    await conn.execute(
        update(webhooks)
        .where(
            webhooks.c.id == webhook.id,
            webhooks.c.delivered_through == webhook.delivered_through,
            webhooks.c.revision == webhook.revision,
        )
        .values(delivered_through=event_id)
    )


async def pending_events(conn: AsyncConnection, webhook: Webhook) -> list[StoredEvent]:
    """The next events to send: the account's, of the webhook's types, after its cursor.
    A cursor older than the prune horizon goes on from the oldest event kept (those
    between were removed by retention before they could be delivered; logged)."""
    wanted = EventFilter(webhook.account_id, webhook.delivered_through, webhook.types)
    try:
        return await read_events(conn, wanted, PAGE)
    except EventsExpired:
        horizon = await pruned_through(conn)
        log.warning(
            "webhook %s: events %d to %d were pruned before they were delivered",
            webhook.id,
            webhook.delivered_through + 1,
            horizon,
        )
        return await read_events(
            conn, EventFilter(webhook.account_id, horizon, webhook.types), PAGE
        )


# -- HTTP to public addresses only -------------------------------------------------------------


class _PublicOnly(httpcore.AsyncNetworkBackend):
    """Connects to a host's address only once it is checked public (unless allowed): the
    check and the connection use the same resolution, so a name that resolves elsewhere
    the second time (DNS rebinding) cannot slip through. TLS still verifies the name."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await public_addresses(host, port, self._allow_private)
        except TargetRefused as refused:
            raise httpcore.ConnectError(f"refused: {refused}") from None
        return await self._inner.connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def http_client(allow_private: bool) -> httpx.AsyncClient:
    """The deliverer's HTTP client: no proxy from the environment, no redirects followed
    (a 3xx is a failed attempt), the system's certificate authorities, connections to
    public addresses only, one connection per receiver at a time (none shared)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx builds its pool without a network backend of ours: the same pool, with one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl.create_default_context(),
        max_connections=None,
        max_keepalive_connections=1000,
        keepalive_expiry=30.0,
        network_backend=_PublicOnly(allow_private),
    )
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, timeout=TIMEOUT_SECONDS
    )


# -- the deliverer -----------------------------------------------------------------------------


class Deliverer:
    """A candidate for the deliverer's lease, and the deliverer while it holds it."""

    def __init__(
        self,
        engine: AsyncEngine,
        render: Render,
        *,
        allow_private: bool = False,
        lease_seconds: float = 15.0,
        clock: Clock = now,
        poll_seconds: float = POLL_SECONDS,
        recheck_seconds: float = RECHECK_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
        holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.render = render
        self.allow_private = allow_private
        self.term = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.recheck_seconds = recheck_seconds
        self.timeout_seconds = timeout_seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        #: Monotonic time until which this candidate may send (its lease, less a margin).
        self._valid_until = 0.0
        self._newest = 0
        self._arrived = asyncio.Event()
        #: Set when this process registered or changed a webhook: look at them now.
        self._changed = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None

    def webhooks_changed(self) -> None:
        """A webhook was registered or changed in this process (its transaction has
        committed): the holder looks at the webhooks at once, not at its next look."""
        self._changed.set()

    def serving(self) -> bool:
        """Whether a webhook's task is running (some webhook is not disabled)."""
        return any(not task.done() for task in self._tasks.values())

    # the election

    def holding(self) -> bool:
        return time.monotonic() < self._valid_until

    async def _take(self) -> bool:
        asked = time.monotonic()
        try:
            async with unit_of_work(self.engine, write=True) as conn:
                held = await take_lease(conn, self.holder, self.term, self.clock())
        except DATABASE_ERRORS as error:
            log.warning("the deliverer's lease could not be taken or renewed: %s", error)
            return self.holding()
        # Stop a third of the term early: the next renewal is due long before that.
        self._valid_until = asked + self.term.total_seconds() * 2 / 3 if held else 0.0
        return held

    async def run(self) -> None:
        """Be a candidate until cancelled: deliver whenever this process holds the lease."""
        self._client = http_client(self.allow_private)
        try:
            while True:
                if await self._take():
                    log.info("delivering webhooks (lease holder %s)", self.holder)
                    await self._lead()
                    log.info("no longer delivering webhooks (lease lost)")
                await asyncio.sleep(self.term.total_seconds() / 3)
        finally:
            await self._stop_tasks()
            await self._client.aclose()
            if self.holding():  # bounded: a database that is down must not hold a shutdown
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release(), 5.0)

    async def _release(self) -> None:
        try:
            async with unit_of_work(self.engine, write=True) as conn:
                await release_lease(conn, self.holder, self.clock())
        except DATABASE_ERRORS:
            pass  # it expires on its own

    async def _stop_tasks(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def _lead(self) -> None:
        """Deliver while the lease holds: renew it, start a task per webhook, wake them
        when new events commit. With no webhook to serve, only look at the webhooks
        (every ``recheck_seconds``, or when this process changed one)."""
        renew_at = look_at_webhooks_at = 0.0
        try:
            while True:
                moment = time.monotonic()
                if moment >= renew_at:
                    if not await self._take():
                        return
                    renew_at = moment + self.term.total_seconds() / 3
                if not self.holding():
                    return
                try:
                    if self._changed.is_set() or moment >= look_at_webhooks_at:
                        self._changed.clear()
                        await self._start_tasks()
                        look_at_webhooks_at = moment + self.recheck_seconds
                    if not self.serving():
                        await self._idle(min(look_at_webhooks_at, renew_at) - moment)
                        continue
                    async with unit_of_work(self.engine, write=False) as conn:
                        newest = int(await conn.scalar(select(func.max(events.c.id))) or 0)
                    # New events: start the tasks of webhooks registered since (they get
                    # these events at once).
                    if newest != self._newest:
                        await self._start_tasks()
                        look_at_webhooks_at = moment + self.recheck_seconds
                except DATABASE_ERRORS as error:
                    log.warning("webhooks: the database cannot be read: %s", error)
                    await asyncio.sleep(1.0)
                    continue
                if newest != self._newest:
                    self._newest = newest
                    self._arrived.set()
                    self._arrived = asyncio.Event()
                await asyncio.sleep(self.poll_seconds)
        finally:
            await self._stop_tasks()

    async def _idle(self, seconds: float) -> None:
        """No webhook to serve: wait for the next look, or for this process to register
        or change one."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(seconds, 0.0))

    async def _start_tasks(self) -> None:
        async with unit_of_work(self.engine, write=False) as conn:
            found = await conn.execute(select(webhooks.c.id).where(webhooks.c.state != "disabled"))
            ids = [row.id for row in found]
        for webhook_id in ids:
            task = self._tasks.get(webhook_id)
            if task is None or task.done():
                self._tasks[webhook_id] = asyncio.create_task(
                    self._serve(webhook_id), name=f"webhook {webhook_id}"
                )

    # one webhook

    async def _serve(self, webhook_id: str) -> None:
        """Deliver one webhook's events in order, while the lease holds and the webhook
        is there and not disabled."""
        while self.holding():
            try:
                if not await self._step(webhook_id):
                    return
            except DATABASE_ERRORS as error:
                log.warning("webhook %s: the database cannot be reached: %s", webhook_id, error)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("webhook %s: delivery failed unexpectedly", webhook_id)
                await asyncio.sleep(self.recheck_seconds)

    async def _step(self, webhook_id: str) -> bool:
        """Send what is due now, or wait for it; whether the webhook is still served."""
        seen, arrived = self._newest, self._arrived
        due_in = 0.0
        page: list[StoredEvent] = []
        async with unit_of_work(self.engine, write=False) as conn:
            webhook = await find_webhook(conn, webhook_id)
            if webhook is None or webhook.state == "disabled":
                return False
            if webhook.next_attempt_at is not None:
                due_in = (webhook.next_attempt_at - self.clock()).total_seconds()
            if due_in <= 0:
                page = await pending_events(conn, webhook)
        if due_in > 0:  # a retry later: look again meanwhile (a re-enable, a replay)
            await asyncio.sleep(min(due_in, self.recheck_seconds))
            return True
        if not page:
            if seen - webhook.delivered_through >= SKIP_AHEAD:
                # Every event up to ``seen`` was committed before the read, which found
                # none of the webhook's types: the next reads need not pass them again.
                async with unit_of_work(self.engine, write=True) as conn:
                    await skip_to(conn, webhook, seen)
            if self._newest == seen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), self.recheck_seconds)
            return True
        recorder = _Recorder(self.engine, webhook)
        for event in page:
            if not self.holding() or recorder.stale:
                break
            # The attempt is at the moment it is sent (its signature's timestamp), not when
            # its answer is read: the schedule counts from there, and a clock that moves
            # on meanwhile (a test's, a slow answer) must not move the attempt with it.
            at = self.clock()
            outcome = await self._send(webhook, event, at)
            attempt = Attempt(event.id, outcome, at)
            if outcome.acknowledged:
                recorder.add(attempt)
                continue
            log.info(
                "webhook %s: event %d not acknowledged: %s",
                webhook.id,
                event.id,
                outcome.error or f"status {outcome.status_code}",
            )
            if await recorder.written():
                async with unit_of_work(self.engine, write=True) as conn:
                    await record_attempts(conn, recorder.webhook, [attempt])
            break
        await recorder.written()
        return self.holding()

    async def _send(self, webhook: Webhook, event: StoredEvent, at: datetime) -> Outcome:
        """POST one event, signed at ``at``; what the receiver answered (its body is not
        read)."""
        assert self._client is not None
        body = orjson.dumps(self.render(event)).decode()
        headers = {
            **signed_headers(webhook.signing_secrets(at), event.id, at, body),
            "content-type": "application/json",
            "user-agent": f"Roster-Webhooks/{__version__}",
        }
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            target_of(webhook.url, self.allow_private)
            async with asyncio.timeout(self.timeout_seconds):
                request = self._client.build_request(
                    "POST", webhook.url, content=body, headers=headers
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()
            status = response.status_code
        except TargetRefused as refused:
            error = f"refused: the URL {refused}"
        except TimeoutError:
            error = f"no answer within {self.timeout_seconds:g} s"
        except httpx.HTTPError as failed:
            error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        elapsed = round((time.monotonic() - started) * 1000)
        return Outcome(status, None if error is None else error[:256], elapsed)
