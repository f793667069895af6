"""Webhooks (spec/events.md): an account's registered HTTPS endpoints, their signing
secrets, their delivery cursor and the log of every attempt.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com): the body is the
event exactly as ``GET /events`` renders it, signed with HMAC-SHA256 over
``id.timestamp.body`` (:func:`signed_headers`). The deliverer (``core/deliverer.py``)
moves the cursor; everything an admin does is here. Nothing here commits.

Targets on private, loopback, link-local and other non-public addresses are refused
(server-side request forgery) when a webhook is registered and again at every
connection (:func:`public_addresses`), unless the operator allows them.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks import Webhook as StandardWebhook

from roster.core.clock import now
from roster.core.events import EventsExpired, check_types, pruned_through
from roster.core.fields import WEBHOOK
from roster.db.tables import events, webhook_deliveries, webhooks
from roster.errors import InvalidRequest, NotFound

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
#: Random bytes in a signing secret (Standard Webhooks asks for 24 to 64).
SECRET_BYTES = 24
STATES = ("active", "failing", "disabled")
#: What an admin may set: re-enable (resume from the cursor) or pause.
SETTABLE_STATES = ("active", "disabled")
#: The wait before each attempt at one event (spec): the first at once, then 5 s, 5 min,
#: 30 min, 2 h, 5 h, 10 h, 10 h. After the last one fails the webhook is ``failing`` and
#: the event is tried every 10 h; 5 days failing, it is ``disabled``.
RETRY_DELAYS = tuple(timedelta(seconds=s) for s in (0, 5, 300, 1800, 7200, 18000, 36000, 36000))
DISABLE_AFTER = timedelta(days=5)
#: A rotated secret still signs (beside the new one) this long, unless the request says.
DEFAULT_GRACE = timedelta(hours=24)
MAX_GRACE = timedelta(days=7)


class TargetRefused(Exception):
    """A webhook's URL is not one Roster delivers to (its scheme, or its address)."""


# -- what a webhook is -------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    id: str
    account_id: str
    url: str
    types: tuple[str, ...]
    description: str | None
    state: str
    failing_since: datetime | None
    #: The last event acknowledged (or passed by the types filter): delivery goes on after it.
    delivered_through: int
    #: Failed attempts at the next event, and when the next attempt is due (None: now).
    attempts: int
    next_attempt_at: datetime | None
    revision: int
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Webhook:
        return cls(**{**row, "types": tuple(orjson.loads(row["types"]))})

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets that sign a delivery at ``at``: the current one, and the previous
        one during a rotation's grace period."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and at < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class WithSecret:
    """A webhook as registration and rotation answer it: with its new secret, once."""

    webhook: Webhook
    secret: str


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event."""

    id: int
    webhook_id: str
    event_id: int
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_COLUMNS = (
    webhooks.c.id,
    webhooks.c.account_id,
    webhooks.c.url,
    webhooks.c.types,
    webhooks.c.description,
    webhooks.c.state,
    webhooks.c.failing_since,
    webhooks.c.delivered_through,
    webhooks.c.attempts,
    webhooks.c.next_attempt_at,
    webhooks.c.revision,
    webhooks.c.previous_secret_expires_at,
    webhooks.c.created_at,
    webhooks.c.updated_at,
    webhooks.c.secret,
    webhooks.c.previous_secret,
)


def new_secret() -> str:
    """``whsec_`` and the base64 of random bytes, as Standard Webhooks writes secrets."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(
    secrets_: Sequence[str], event_id: int, at: datetime, body: str
) -> dict[str, str]:
    """The Standard Webhooks headers of a delivery: one ``v1,`` signature per secret,
    space-separated (a receiver accepts any that verifies)."""
    signatures = " ".join(
        StandardWebhook(secret).sign(str(event_id), at, body) for secret in secrets_
    )
    return {
        "webhook-id": str(event_id),
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }


# -- targets -----------------------------------------------------------------------------------


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is on the public internet: not private, loopback, link-local,
    unspecified, reserved, shared (CGNAT) or multicast (an IPv4-mapped IPv6 address is
    judged as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def target_of(url: str, allow_private: bool) -> tuple[str, int]:
    """The host and port a webhook URL names; ``TargetRefused`` if Roster does not deliver
    there: HTTPS only (plain HTTP too when private targets are allowed), a host, no
    credentials in the URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(f"is not a URL ({error})") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise TargetRefused("must be an https:// URL")
    if not parts.hostname:
        raise TargetRefused("must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("must not hold credentials (user:password@)")
    if parts.fragment:
        raise TargetRefused("must not hold a fragment (#...)")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def public_addresses(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to, every one of them public (unless private ones
    are allowed); ``TargetRefused`` otherwise, or when it does not resolve."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as error:
            raise TargetRefused(f"{host!r} does not resolve ({error})") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise TargetRefused(f"{host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise TargetRefused(
                    f"{host!r} resolves to {address}, which is not a public address "
                    "(private, loopback and link-local targets are refused)"
                )
    return [str(a) for a in dict.fromkeys(addresses)]


@dataclass(frozen=True)
class CheckedUrl:
    """A webhook URL checked (:func:`checked_url`): only such a URL is registered. Its
    host is resolved before the unit of work that writes it opens, so no transaction
    (on SQLite, the write lock) waits for a resolver."""

    url: str


async def checked_url(url: str, allow_private: bool) -> CheckedUrl:
    """The URL, if Roster delivers there (its scheme, and every address its host
    resolves to), and its field's rules (core/fields.py); ``invalid_request`` naming
    ``url`` otherwise."""
    url = WEBHOOK["url"].check(url)
    try:
        host, port = target_of(url, allow_private)
        await public_addresses(host, port, allow_private)
    except TargetRefused as refused:
        raise InvalidRequest.field("url", str(refused)) from None
    return CheckedUrl(url)


def _checked_types(types: Sequence[str]) -> list[str]:
    try:
        return check_types(types)
    except ValueError as error:
        raise InvalidRequest.field("types", str(error)) from None


def _checked_description(description: str | None) -> str | None:
    """The description by its field's rules (core/fields.py); null clears it."""
    return None if description is None else WEBHOOK["description"].check(description)


# -- registering and changing ------------------------------------------------------------------


async def register_webhook(
    conn: AsyncConnection,
    account_id: str,
    url: CheckedUrl,
    types: Sequence[str],
    description: str | None,
) -> WithSecret:
    """A new webhook of the account (which the caller has checked), delivering the events
    that commit after it (``replay`` sends older ones); its secret, shown once."""
    wanted = _checked_types(types)
    at = now()
    secret = new_secret()
    newest = await conn.scalar(select(func.max(events.c.id)))
    webhook_id = f"wh_{secrets.token_hex(12)}"
    await conn.execute(
        webhooks.insert().values(
            id=webhook_id,
            account_id=account_id,
            url=url.url,
            types=orjson.dumps(wanted).decode(),
            description=_checked_description(description),
            secret=secret,
            state="active",
            delivered_through=int(newest or 0),
            attempts=0,
            revision=0,
            created_at=at,
            updated_at=at,
        )
    )
    return WithSecret(await get_webhook(conn, webhook_id, None), secret)


async def list_webhooks(
    conn: AsyncConnection, account_ids: frozenset[str] | None, account_id: str | None = None
) -> list[Webhook]:
    """The webhooks of the accounts a client reaches (``None``: every account), of one
    account if given, oldest first."""
    query = select(*_COLUMNS).order_by(webhooks.c.created_at, webhooks.c.id)
    if account_ids is not None:
        query = query.where(webhooks.c.account_id.in_(sorted(account_ids)))
    if account_id is not None:
        query = query.where(webhooks.c.account_id == account_id)
    return [Webhook.of(row._asdict()) for row in await conn.execute(query)]


async def find_webhook(conn: AsyncConnection, webhook_id: str) -> Webhook | None:
    found = (await conn.execute(select(*_COLUMNS).where(webhooks.c.id == webhook_id))).first()
    return None if found is None else Webhook.of(found._asdict())


async def get_webhook(
    conn: AsyncConnection, webhook_id: str, account_ids: frozenset[str] | None
) -> Webhook:
    """The webhook, if it is of an account the client reaches; ``not_found`` otherwise
    (the same answer: no client learns of another account's webhooks)."""
    found = await find_webhook(conn, webhook_id)
    if found is None or (account_ids is not None and found.account_id not in account_ids):
        shown = webhook_id[: WEBHOOK["id"].max_length]
        raise NotFound(f"There is no webhook {shown!r} that you can reach.")
    return found


async def _update(conn: AsyncConnection, webhook: Webhook, **values: Any) -> Webhook:
    await conn.execute(
        update(webhooks)
        .where(webhooks.c.id == webhook.id)
        .values(**values, revision=webhooks.c.revision + 1, updated_at=now())
    )
    return await get_webhook(conn, webhook.id, None)


#: Set again on re-enabling, a new URL or a replay: the next event is tried at once.
_RETRY_AT_ONCE = {"attempts": 0, "next_attempt_at": None}


async def update_webhook(
    conn: AsyncConnection,
    webhook_id: str,
    account_ids: frozenset[str] | None,
    changes: Mapping[str, Any],
) -> Webhook:
    """Change a webhook's ``url`` (a :class:`CheckedUrl`), ``types``, ``description`` or
    ``state`` (the keys of ``changes``). ``state: active`` re-enables a failing or
    disabled webhook: delivery resumes at its cursor, the next event tried at once;
    ``disabled`` pauses it."""
    webhook = await get_webhook(conn, webhook_id, account_ids)
    values: dict[str, Any] = {}
    if "url" in changes:
        url: CheckedUrl = changes["url"]
        values.update(url=url.url, **_RETRY_AT_ONCE)
    if "types" in changes:
        values["types"] = orjson.dumps(_checked_types(changes["types"])).decode()
    if "description" in changes:
        values["description"] = _checked_description(changes["description"])
    if "state" in changes:
        state = changes["state"]
        if state not in SETTABLE_STATES:
            raise InvalidRequest.field("state", f"must be one of {', '.join(SETTABLE_STATES)}")
        if state == "active" and webhook.state != "active":
            values.update(state="active", failing_since=None, **_RETRY_AT_ONCE)
        elif state == "disabled":
            values["state"] = "disabled"
    if not values:
        return webhook
    return await _update(conn, webhook, **values)


async def delete_webhook(
    conn: AsyncConnection, webhook_id: str, account_ids: frozenset[str] | None
) -> None:
    """Remove a webhook and its deliveries' log; nothing more is delivered to it."""
    webhook = await get_webhook(conn, webhook_id, account_ids)
    await conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook.id)
    )
    await conn.execute(delete(webhooks).where(webhooks.c.id == webhook.id))


async def rotate_secret(
    conn: AsyncConnection,
    webhook_id: str,
    account_ids: frozenset[str] | None,
    grace: timedelta = DEFAULT_GRACE,
) -> WithSecret:
    """A new signing secret, shown once; the old one signs beside it for ``grace`` (none:
    it stops at once)."""
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidRequest.field(
            "grace_period_seconds", f"must be between 0 and {int(MAX_GRACE.total_seconds())}"
        )
    webhook = await get_webhook(conn, webhook_id, account_ids)
    secret = new_secret()
    keeps = grace > timedelta(0)
    rotated = await _update(
        conn,
        webhook,
        secret=secret,
        previous_secret=webhook.secret if keeps else None,
        previous_secret_expires_at=now() + grace if keeps else None,
    )
    return WithSecret(rotated, secret)


async def replay(
    conn: AsyncConnection, webhook_id: str, account_ids: frozenset[str] | None, from_id: int
) -> Webhook:
    """Deliver again the events from ``from_id`` on: the cursor moves to just before it
    (forward, past events a receiver can never take, as well as back). ``events_expired``
    if events after that point were pruned. A disabled webhook keeps its state."""
    if from_id < 1:
        raise InvalidRequest.field("from", "must be an event id (1 or more)")
    webhook = await get_webhook(conn, webhook_id, account_ids)
    if from_id - 1 < await pruned_through(conn):
        raise EventsExpired(
            f"Events from {from_id} are no longer kept (the retention period is over)."
        )
    return await _update(conn, webhook, delivered_through=from_id - 1, **_RETRY_AT_ONCE)


async def list_deliveries(
    conn: AsyncConnection,
    webhook_id: str,
    account_ids: frozenset[str] | None,
    limit: int,
    before: int | None = None,
) -> list[Delivery]:
    """The webhook's delivery attempts, newest first, those before an attempt's id."""
    webhook = await get_webhook(conn, webhook_id, account_ids)
    query = select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook.id)
    if before is not None:
        query = query.where(webhook_deliveries.c.id < before)
    found = await conn.execute(query.order_by(webhook_deliveries.c.id.desc()).limit(limit))
    return [Delivery(**row._asdict()) for row in found]


async def prune_deliveries(conn: AsyncConnection, retention_days: int) -> int:
    """Remove the attempts older than the change log's retention period; how many."""
    cutoff = now() - timedelta(days=retention_days)
    removed = await conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.attempted_at < cutoff)
    )
    return removed.rowcount or 0
