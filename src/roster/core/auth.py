"""API clients and how a caller proves it is one.

A client has a ``client_id``, a random secret and a random API key; the token endpoint
gives it random bearer tokens. Only SHA-256 digests of secrets, keys and tokens are
stored: each is a 256-bit random value, so a fast digest is as strong as a slow
password hash here, lets a key or token be looked up by its digest, and leaves nothing
in the database that grants access (a copy of it forges nothing). Every request reads
the client row with the key or token, in one query, so a revocation holds from the
next request on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    bindparam,
    delete,
    insert,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import Event, append_events
from roster.db.backends import backend_for
from roster.db.tables import access_tokens, accounts, api_client_accounts, api_clients
from roster.errors import (
    ExpiredToken,
    InsufficientScope,
    InvalidCredentials,
    InvalidRequest,
    MissingCredentials,
    NotFound,
    Problem,
    RosterError,
)

SCOPES = ("read", "write", "admin")
API_KEY_PREFIX = "rk_"
ACCESS_TOKEN_PREFIX = "rt_"  # noqa: S105 - a prefix, not a secret
#: Expired tokens are kept this long, and answered ``expired_token`` meanwhile; the
#: token endpoint deletes older ones as it issues new ones. After that an expired token
#: is unknown, and answered as invalid.
EXPIRED_TOKENS_KEPT = timedelta(days=1)
#: Compared against when no client matches, so that a wrong client id costs the
#: same time as a wrong secret.
_DUMMY_DIGEST = hashlib.sha256(b"no such client").hexdigest()

_CLIENTS_WITH_REACH = api_clients.outerjoin(
    api_client_accounts, api_client_accounts.c.client_id == api_clients.c.id
)


def client_with_reach(
    match: ColumnElement[bool],
    source: FromClause = _CLIENTS_WITH_REACH,
    expires_at: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """A client row per account it reaches (one row with a null account if it reaches all),
    with the credential's expiry (null for an API key, a client id or a session)."""
    return (
        select(
            api_clients.c.id,
            api_clients.c.name,
            api_clients.c.scopes,
            api_clients.c.all_accounts,
            api_clients.c.revoked_at,
            api_client_accounts.c.account_id,
            null() if expires_at is None else expires_at,
        )
        .select_from(source)
        .where(match)
    )


# Built once: every request runs one of these, one query for a key or a token alike.
_CLIENT_BY_KEY = client_with_reach(api_clients.c.api_key_hash == bindparam("credential"))
_CLIENT_BY_TOKEN = client_with_reach(
    access_tokens.c.token_hash == bindparam("credential"),
    access_tokens.join(_CLIENTS_WITH_REACH, api_clients.c.id == access_tokens.c.client_id),
    access_tokens.c.expires_at,
)
#: A client by id, with the digest of its secret after the usual columns.
_CLIENT_WITH_SECRET = client_with_reach(api_clients.c.id == bindparam("credential")).add_columns(
    api_clients.c.secret_hash
)


def digest(secret: str) -> str:
    """The stored form of a secret or key."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """An authenticated API client: what it may do and which accounts it reaches."""

    client_id: str
    name: str
    scopes: frozenset[str]
    account_ids: frozenset[str] | None  # None: every account

    def can_reach(self, account_id: str) -> bool:
        return self.account_ids is None or account_id in self.account_ids

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise InsufficientScope.needing(scope)


@dataclass(frozen=True)
class ClientCredentials:
    """What creating a client prints once; never stored in clear."""

    client_id: str
    client_secret: str
    api_key: str


@dataclass(frozen=True)
class ClientSummary:
    client_id: str
    name: str
    scopes: tuple[str, ...]
    account_ids: tuple[str, ...] | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_in: int


class InvalidClient(RosterError):
    """Wrong or revoked client credentials at the token endpoint (RFC 6749 ``invalid_client``)."""

    status = 401
    type = "invalid_client"
    default_message = "Client authentication failed."


async def create_client(
    conn: AsyncConnection,
    name: str,
    scopes: Iterable[str],
    account_ids: Iterable[str] | None,
) -> ClientCredentials:
    """Create a client limited to ``account_ids`` (``None``: every account)."""
    scope_set = sorted(set(scopes), key=SCOPES.index) if set(scopes) <= set(SCOPES) else None
    if not scope_set:
        raise InvalidRequest.field("scope", f"give one or more of {', '.join(SCOPES)}")
    if not name.strip():
        raise InvalidRequest.field("name", "must not be blank")
    reach = None if account_ids is None else sorted(set(account_ids))
    if reach is not None:
        if not reach:
            raise InvalidRequest.field("account", "give at least one account, or all accounts")
        known = set(await conn.scalars(select(accounts.c.id).where(accounts.c.id.in_(reach))))
        unknown = [a for a in reach if a not in known]
        if unknown:
            raise NotFound(
                f"No account {', '.join(map(repr, unknown))}.",
                details=[Problem("account", f"{a!r} not found") for a in unknown],
            )
    credentials = ClientCredentials(
        client_id="cl_" + secrets.token_hex(10),
        client_secret=secrets.token_urlsafe(32),
        api_key=API_KEY_PREFIX + secrets.token_urlsafe(32),
    )
    await conn.execute(
        insert(api_clients).values(
            id=credentials.client_id,
            name=name,
            secret_hash=digest(credentials.client_secret),
            api_key_hash=digest(credentials.api_key),
            scopes=" ".join(scope_set),
            all_accounts=reach is None,
            created_at=now(),
        )
    )
    if reach:
        await conn.execute(
            insert(api_client_accounts),
            [{"client_id": credentials.client_id, "account_id": a} for a in reach],
        )
    await _log_client(conn, credentials.client_id, "created")
    return credentials


async def _log_client(conn: AsyncConnection, client_id: str, change: str) -> None:
    """``client.<change>`` in each account the client reaches (every account, for a client
    of all accounts), with the client as it is now: never a secret or a key, nor the
    other accounts it reaches (no account learns of another)."""
    row = (await conn.execute(select(api_clients).where(api_clients.c.id == client_id))).one()
    reached = select(api_client_accounts.c.account_id).where(
        api_client_accounts.c.client_id == client_id
    )
    every = select(accounts.c.id).order_by(accounts.c.id)
    account_ids = list(
        await conn.scalars(
            every if row.all_accounts else reached.order_by(api_client_accounts.c.account_id)
        )
    )
    data = {
        "id": client_id,
        "name": row.name,
        "scopes": row.scopes.split(),
        "all_accounts": row.all_accounts,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }
    given = ("name", "scopes", "all_accounts") if change == "created" else ("revoked_at",)
    await append_events(
        conn,
        [Event(a, f"client.{change}", "client", client_id, given, data) for a in account_ids],
    )


async def list_clients(conn: AsyncConnection) -> list[ClientSummary]:
    """Every client, oldest first, without secrets."""
    reach: dict[str, list[str]] = {}
    for client_id, account_id in await conn.execute(
        select(api_client_accounts.c.client_id, api_client_accounts.c.account_id).order_by(
            api_client_accounts.c.account_id
        )
    ):
        reach.setdefault(client_id, []).append(account_id)
    rows = await conn.execute(
        select(api_clients).order_by(api_clients.c.created_at, api_clients.c.id)
    )
    return [
        ClientSummary(
            client_id=row.id,
            name=row.name,
            scopes=tuple(row.scopes.split()),
            account_ids=None if row.all_accounts else tuple(reach.get(row.id, ())),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
        )
        for row in rows
    ]


async def revoke_client(conn: AsyncConnection, client_id: str) -> datetime:
    """Revoke a client: its key and unexpired tokens stop working from the next request."""
    revoked = await conn.execute(
        update(api_clients)
        .where(api_clients.c.id == client_id, api_clients.c.revoked_at.is_(None))
        .values(revoked_at=now())
        .returning(api_clients.c.revoked_at)
    )
    at: datetime | None = revoked.scalar_one_or_none()
    if at is not None:
        await conn.execute(delete(access_tokens).where(access_tokens.c.client_id == client_id))
        await _log_client(conn, client_id, "revoked")
        return at
    existing: datetime | None = await conn.scalar(
        select(api_clients.c.revoked_at).where(api_clients.c.id == client_id)
    )
    if existing is None:
        raise NotFound(f"There is no API client {client_id!r}.")
    return existing


async def issue_token(
    conn: AsyncConnection, client_id: str, client_secret: str, ttl_seconds: int
) -> AccessToken:
    """OAuth2 client credentials: a bearer token for a live client with the right secret.

    Tokens that expired more than :data:`EXPIRED_TOKENS_KEPT` ago are deleted on the way
    (by the index on ``expires_at``: a few rows at a time)."""
    try:
        await client_by_secret(conn, client_id, client_secret)
    except InvalidCredentials:
        raise InvalidClient() from None
    issued = now()
    token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        delete(access_tokens).where(access_tokens.c.expires_at < issued - EXPIRED_TOKENS_KEPT)
    )
    await conn.execute(
        insert(access_tokens).values(
            token_hash=digest(token),
            client_id=client_id,
            issued_at=issued,
            expires_at=issued + timedelta(seconds=ttl_seconds),
        )
    )
    return AccessToken(token, ttl_seconds)


def parse_authorization(header: str | None) -> tuple[str, str]:
    """Split an ``Authorization`` value into ``("bearer" | "key", credential)``.

    ``Bearer <token>`` (any case), ``ApiKey <key>`` and a bare key are accepted; a
    Roster API key sent as a bearer token is taken as the key it is.
    """
    value = (header or "").strip()
    if not value:
        raise MissingCredentials()
    scheme, _, credential = value.partition(" ")
    credential = credential.strip()
    if not credential:
        return "key", scheme
    if " " in credential:
        raise InvalidCredentials()
    kind = scheme.lower()
    if kind == "bearer":
        return ("key" if credential.startswith(API_KEY_PREFIX) else "bearer"), credential
    if kind == "apikey":
        return "key", credential
    raise InvalidCredentials()


async def authenticate(conn: AsyncConnection, header: str | None) -> Principal:
    """The client an ``Authorization`` header proves, or a :class:`CredentialError`."""
    kind, credential = parse_authorization(header)
    statement = _CLIENT_BY_TOKEN if kind == "bearer" else _CLIENT_BY_KEY
    rows = await backend_for(conn).fetch_plain(conn, statement, {"credential": digest(credential)})
    if rows and (expires_at := rows[0][6]) is not None and expires_at <= now():
        raise ExpiredToken()
    return principal_of(rows)


async def client_by_key(conn: AsyncConnection, api_key: str) -> Principal:
    """The live client whose API key this is, or ``InvalidCredentials``."""
    rows = await backend_for(conn).fetch_plain(
        conn, _CLIENT_BY_KEY, {"credential": digest(api_key)}
    )
    return principal_of(rows)


async def client_by_secret(conn: AsyncConnection, client_id: str, client_secret: str) -> Principal:
    """The live client with this id and secret, or ``InvalidCredentials`` (a wrong id
    costs the same comparison as a wrong secret)."""
    rows = await backend_for(conn).fetch_plain(conn, _CLIENT_WITH_SECRET, {"credential": client_id})
    stored = rows[0][-1] if rows else _DUMMY_DIGEST
    if not hmac.compare_digest(stored, digest(client_secret)):
        raise InvalidCredentials()
    return principal_of(rows)


def principal_of(rows: Sequence[Sequence[Any]]) -> Principal:
    """The client that rows of :func:`client_with_reach` describe (one row per account it
    reaches, columns after the reach ignored); ``InvalidCredentials`` for no row or a
    revoked client."""
    if not rows:
        raise InvalidCredentials()
    client_id, name, scopes, all_accounts, revoked_at = rows[0][:5]
    if revoked_at is not None:
        raise InvalidCredentials()
    return Principal(
        client_id=client_id,
        name=name,
        scopes=frozenset(scopes.split()),
        account_ids=None
        if all_accounts
        else frozenset(row[5] for row in rows if row[5] is not None),
    )
