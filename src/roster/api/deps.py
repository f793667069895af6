"""What a request needs: its unit of work, its authenticated client, a JSON body.

Each API states its own credential contract (the two seeds answer missing, invalid
and expired credentials with different statuses); the authentication itself is the
core's and is the same for both.
"""

from __future__ import annotations

import asyncio
import email.message
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from roster.api.metrics import Metrics
from roster.api.middleware import RETRY_ON_PRIMARY, request_id_of
from roster.api.openapi import takes_credentials
from roster.api.ratelimit import AuthFailureLimiter, Budget, ClientRateLimiter
from roster.core.auth import Principal, authenticate
from roster.core.deliverer import Deliverer
from roster.core.events import Actor, act_as
from roster.db.backends import DATABASE_ERRORS
from roster.db.engine import database_unavailable, read_snapshot, unit_of_work
from roster.db.replicas import REPLICA_CONNECT_SECONDS, ReplicaSet
from roster.errors import (
    CredentialError,
    ExpiredToken,
    InvalidCredentials,
    MissingCredentials,
    RateLimited,
    UnsupportedMediaType,
)
from roster.settings import Settings


@dataclass
class Services:
    """What every request shares: settings, the engine, the replicas, the rate limiters,
    the metrics."""

    settings: Settings
    engine: AsyncEngine
    replicas: ReplicaSet
    #: GET /people's (db/engine.py listing_engine): ``engine`` itself on SQLite.
    listing_engine: AsyncEngine
    limiter: ClientRateLimiter
    auth_failures: AuthFailureLimiter
    metrics: Metrics
    #: This process's candidate deliverer of webhooks (None: ``webhook_delivery`` off),
    #: told when a request registers or changes a webhook.
    deliverer: Deliverer | None = None


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _credential(request: Request) -> str | None:
    return request.headers.get("authorization")


@asynccontextmanager
async def on_replica_or_primary(
    request: Request,
    opened: Callable[[AsyncEngine], AbstractAsyncContextManager[AsyncConnection]],
    primary: AsyncEngine | None = None,
) -> AsyncIterator[AsyncConnection]:
    """A reading unit of work on a serving replica that has this client's writes, or on
    the primary (through ``primary``, when not the services' engine): a replica that
    cannot be reached is skipped (and marked down) before the request's first statement,
    so it costs the request nothing, and so is one that does not give a connection
    within ``REPLICA_CONNECT_SECONDS``."""
    shared = services(request)
    replica = await shared.replicas.for_reading(_credential(request))
    if replica is not None:
        stack = AsyncExitStack()
        try:
            async with asyncio.timeout(REPLICA_CONNECT_SECONDS):
                conn = await stack.enter_async_context(opened(replica.engine))
        except TimeoutError:
            # Its pool is busy, or a pooler in front holds the statement while its
            # server is gone: the primary serves this one; the polls judge the replica.
            await stack.aclose()
        except DATABASE_ERRORS as error:
            if not database_unavailable(error):
                raise
            replica.mark_down()
        else:
            request.state.read_from = replica
            try:
                async with stack:
                    yield conn
            except DATABASE_ERRORS as error:
                if database_unavailable(error):
                    # Gone under this read: ReplicaRetryMiddleware serves it again.
                    replica.mark_down()
                    setattr(request.state, RETRY_ON_PRIMARY, True)
                raise
            return
    async with opened(primary or shared.engine) as conn:
        yield conn


def snapshot_for(request: Request) -> AbstractAsyncContextManager[AsyncConnection]:
    """A read transaction of one snapshot for this request, on a replica or the primary."""
    return on_replica_or_primary(request, read_snapshot)


async def _read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with on_replica_or_primary(request, lambda e: unit_of_work(e, write=False)) as conn:
        yield conn


async def _listing_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    reading = services(request).listing_engine  # on the primary: plans for its values
    async with on_replica_or_primary(
        request, lambda e: unit_of_work(e, write=False), reading
    ) as conn:
        yield conn


async def _write_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    shared = services(request)
    async with unit_of_work(shared.engine, write=True) as conn:
        yield conn
    await shared.replicas.written(_credential(request))


async def _snapshot_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with snapshot_for(request) as conn:
        yield conn


async def _primary_read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with unit_of_work(services(request).engine, write=False) as conn:
        yield conn


async def _primary_snapshot_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    async with read_snapshot(services(request).engine) as conn:
        yield conn


#: The request's unit of work: committed before the answer is sent.
ReadConnection = Annotated[AsyncConnection, Depends(_read_connection, scope="function")]
WriteConnection = Annotated[AsyncConnection, Depends(_write_connection, scope="function")]
#: GET /people's unit of work, on the listing engine.
ListingConnection = Annotated[AsyncConnection, Depends(_listing_connection, scope="function")]
#: A read transaction of its own, for answers whose parts must agree (a count and its rows).
SnapshotConnection = Annotated[AsyncConnection, Depends(_snapshot_connection, scope="function")]
#: The same on the primary always: the directory page's sessions are written and read
#: back at once, by a browser whose cookie changes as it signs in.
PrimaryReadConnection = Annotated[
    AsyncConnection, Depends(_primary_read_connection, scope="function")
]
PrimarySnapshotConnection = Annotated[
    AsyncConnection, Depends(_primary_snapshot_connection, scope="function")
]


@dataclass(frozen=True)
class CredentialContract:
    """The statuses one API answers when a caller cannot be authenticated."""

    missing: int
    invalid: int
    expired: int

    def status_of(self, error: CredentialError) -> int:
        if isinstance(error, MissingCredentials):
            return self.missing
        if isinstance(error, ExpiredToken):
            return self.expired
        assert isinstance(error, InvalidCredentials)
        return self.invalid


PrincipalDependency = Callable[[Request, AsyncConnection], Awaitable[Principal]]


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For when the request
    comes from a trusted proxy: ``FORWARDED_ALLOW_IPS``)."""
    return request.client.host if request.client else "unknown"


def too_many_failures(budget: Budget) -> RateLimited:
    """429 for an address over its budget of failed authentications."""
    return RateLimited(
        "Too many failed authentications from your address; "
        f"retry in {budget.retry_after} seconds.",
        headers={"Retry-After": budget.retry_after},
    )


def authenticated(
    contract: CredentialContract,
    scope: str,
    *,
    listing: bool = False,
    write: bool | None = None,
) -> PrincipalDependency:
    """A dependency giving the authenticated client, which must hold ``scope``.

    It shares the request's unit of work (``write``: by default read for ``read`` and
    write otherwise; the listing engine's with ``listing``), so authenticating costs no
    extra connection.
    """
    writes = scope != "read" if write is None else write
    connection = _write_connection if writes else _read_connection
    if listing:
        connection = _listing_connection

    @takes_credentials
    async def principal(
        request: Request,
        # A default, not an annotation: annotations are resolved in module scope,
        # where this closure's `connection` does not exist.
        conn: AsyncConnection = Depends(connection, scope="function"),
    ) -> Principal:
        return await _authenticate(request, conn, contract, scope)

    return principal


def authenticated_briefly(
    contract: CredentialContract, scope: str
) -> Callable[[Request], Awaitable[Principal]]:
    """:func:`authenticated` on a connection of its own, given back at once: for a
    request that then waits (a long poll) without holding a pooled connection."""

    @takes_credentials
    async def principal(request: Request) -> Principal:
        async with unit_of_work(services(request).engine, write=False) as conn:
            return await _authenticate(request, conn, contract, scope)

    return principal


async def _authenticate(
    request: Request, conn: AsyncConnection, contract: CredentialContract, scope: str
) -> Principal:
    """The request's client, holding ``scope``, under ``contract``; named as the actor of
    what ``conn``'s unit of work changes."""
    shared = services(request)
    address = client_address(request)
    refused = shared.auth_failures.refusal(address)
    if refused is not None:
        raise too_many_failures(refused)
    try:
        found = await _proven(request, conn)
    except CredentialError as error:
        # A wrong key or a forged token is a guess; a missing or expired one is not.
        if isinstance(error, InvalidCredentials):
            failures = await shared.auth_failures.failed(address)
            if not failures.allowed:
                raise too_many_failures(failures) from None
        raise error.with_status(contract.status_of(error)) from None
    await charge(request, found.client_id)
    found.require(scope)
    # What this unit of work changes is logged as this client's doing.
    await act_as(conn, Actor.client(found, request_id_of(request.scope)))
    return found


async def _proven(request: Request, conn: AsyncConnection) -> Principal:
    """The client the request's credentials prove. A replica may not have replayed a
    client or token created a moment ago: what it does not know, the primary decides."""
    header = request.headers.get("authorization")
    try:
        return await authenticate(conn, header)
    except CredentialError:
        if getattr(request.state, "read_from", None) is None:
            raise
    async with unit_of_work(services(request).engine, write=False) as primary:
        return await authenticate(primary, header)


async def charge(request: Request, client_id: str) -> None:
    """Count one request of this client against its budget (``RateLimited`` once spent);
    the answer carries the budget's headers, and the access log the client id."""
    shared = services(request)
    if getattr(request.state, "rate_limit", None) is not None:
        return  # served again after a replica failed under it: counted once
    request.state.client_id = client_id
    budget = await shared.limiter.spend(client_id)
    request.state.rate_limit = budget
    if not budget.allowed:
        raise RateLimited(
            f"You have used this client's budget of {shared.settings.rate_limit}; "
            f"retry in {budget.reset_after} seconds."
        )


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


async def require_json_body(request: Request) -> None:
    """415 unless a request that carries a body says it is JSON."""
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    if body_field is None:
        return
    if not body_field.field_info.is_required() and not _has_body(request):
        return  # an optional body left out (POST /clients/{id}/rotate)
    content_type = request.headers.get("content-type")
    if content_type:
        parsed = email.message.Message()
        parsed["content-type"] = content_type
        subtype = parsed.get_content_subtype()
        if parsed.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return
    raise UnsupportedMediaType(
        f"This endpoint takes a JSON body; send 'Content-Type: application/json' "
        f"(got {content_type or 'none'!r})."
    )
