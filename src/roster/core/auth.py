"""API clients and how a caller proves it is one.

A client has a ``client_id``, a random secret and a random API key; the token endpoint
gives it random bearer tokens. Only SHA-256 digests of secrets, keys and tokens are
stored: each is a 256-bit random value, so a fast digest is as strong as a slow
password hash here, lets a key or token be looked up by its digest, and leaves nothing
in the database that grants access (a copy of it forges nothing). Every request reads
the client row with the key or token, in one query, so a revocation holds from the
next request on.

A rotation replaces the secret and key. The replaced ones stop at once, or are kept
(as digests, in ``retired_credentials``) for a grace period during which they still
prove the client; what they obtain meanwhile (a token, a session) ends with the grace.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    null,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import Event, append_events
from roster.core.fields import CLIENT
from roster.core.people.paging import Page, Paging
from roster.db.backends import backend_for
from roster.db.tables import (
    access_tokens,
    accounts,
    api_client_accounts,
    api_clients,
    retired_credentials,
    web_sessions,
)
from roster.errors import (
    AccountNotFound,
    Conflict,
    ExpiredToken,
    InsufficientScope,
    InvalidCredentials,
    InvalidRequest,
    MissingCredentials,
    NotFound,
    OutOfReach,
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
#: The longest grace period a rotation gives the replaced secret and key.
MAX_GRACE = timedelta(days=7)
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
_NOW = bindparam("now", type_=retired_credentials.c.expires_at.type)
#: A client by a key a rotation replaced, still in its grace period (read only when the
#: key is no client's current one), with the end of that grace.
_CLIENT_BY_RETIRED_KEY = client_with_reach(
    and_(
        retired_credentials.c.digest == bindparam("credential"),
        retired_credentials.c.kind == "api_key",
        retired_credentials.c.expires_at > _NOW,
    ),
    retired_credentials.join(
        _CLIENTS_WITH_REACH, api_clients.c.id == retired_credentials.c.client_id
    ),
    retired_credentials.c.expires_at,
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
    #: When the credential that proved it stops working: a secret or key a rotation
    #: replaced, in its grace period (None: it lasts). What it obtains ends by then too.
    credential_ends: datetime | None = None

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
    rotated_at: datetime | None = None


@dataclass(frozen=True)
class Rotation:
    """What a rotation prints once: the new credentials, and when the old ones stop."""

    credentials: ClientCredentials
    rotated_at: datetime
    #: When the replaced secret and key stop working (``rotated_at``: at once).
    previous_expire_at: datetime


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_in: int


class InvalidClient(RosterError):
    """Wrong or revoked client credentials at the token endpoint (RFC 6749 ``invalid_client``)."""

    status = 401
    type = "invalid_client"
    default_message = "Client authentication failed."


def _new_credentials(client_id: str) -> ClientCredentials:
    return ClientCredentials(
        client_id=client_id,
        client_secret=secrets.token_urlsafe(32),
        api_key=API_KEY_PREFIX + secrets.token_urlsafe(32),
    )


async def create_client(
    conn: AsyncConnection,
    name: str,
    scopes: Iterable[str],
    account_ids: Iterable[str] | None,
    *,
    by: Principal | None = None,
) -> ClientCredentials:
    """Create a client limited to ``account_ids`` (``None``: every account).

    ``by``: the admin client asking (None: the operator). It grants no scope it lacks and
    no account it does not reach: an account it does not reach is answered as unknown,
    and only a client of every account creates another one."""
    asked = set(scopes)
    scope_set = sorted(asked, key=SCOPES.index) if asked <= set(SCOPES) else None
    if not scope_set:
        raise InvalidRequest.field("scopes", f"give one or more of {', '.join(SCOPES)}")
    CLIENT["name"].check(name)
    reach = None if account_ids is None else sorted(set(account_ids))
    if by is not None:
        for scope in scope_set:
            by.require(scope)
        if reach is None and by.account_ids is not None:
            raise OutOfReach("Only a client of every account may create a client of every account.")
    if reach is not None:
        if not reach:
            raise InvalidRequest.field("account_ids", "give at least one account, or all accounts")
        known = set(await conn.scalars(select(accounts.c.id).where(accounts.c.id.in_(reach))))
        unknown = [a for a in reach if a not in known or (by is not None and not by.can_reach(a))]
        if unknown:
            raise AccountNotFound(
                f"No account {', '.join(map(repr, unknown))}"
                + (" that you can reach." if by is not None else "."),
                details=[Problem("account_ids", f"{a!r} not found") for a in unknown],
            )
    credentials = _new_credentials("cl_" + secrets.token_hex(10))
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


#: What each client event lists as ``changed``.
_CHANGED = {
    "created": ("name", "scopes", "all_accounts"),
    "revoked": ("revoked_at",),
    # Never their values: an event carries no secret and no key.
    "rotated": ("client_secret", "api_key", "rotated_at"),
}


async def _log_client(conn: AsyncConnection, client_id: str, change: str, **more: Any) -> None:
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
        "rotated_at": row.rotated_at,
        "revoked_at": row.revoked_at,
        **more,
    }
    given = _CHANGED[change]
    await append_events(
        conn,
        [Event(a, f"client.{change}", "client", client_id, given, data) for a in account_ids],
    )


def _within(by: Principal | None) -> ColumnElement[bool]:
    """The clients an admin client manages: those reaching only accounts it reaches (every
    client, for a client of every account or the operator)."""
    if by is None or by.account_ids is None:
        return true()
    elsewhere = select(api_client_accounts.c.client_id).where(
        api_client_accounts.c.client_id == api_clients.c.id,
        api_client_accounts.c.account_id.not_in(sorted(by.account_ids)),
    )
    return and_(api_clients.c.all_accounts.is_(False), ~exists(elsewhere))


async def clients_page(
    conn: AsyncConnection,
    paging: Paging | None = None,
    *,
    by: Principal | None = None,
    client_id: str | None = None,
) -> Page[ClientSummary]:
    """The clients ``by`` manages (see :func:`_within`), oldest first, without secrets; one
    page of them with ``paging``, every one without; only ``client_id`` when given."""
    where = _within(by)
    if client_id is not None:
        where = and_(where, api_clients.c.id == client_id)
    statement = (
        select(api_clients).where(where).order_by(api_clients.c.created_at, api_clients.c.id)
    )
    count = None
    if paging is not None:
        count = await conn.scalar(select(func.count()).select_from(api_clients).where(where))
        statement = statement.offset(paging.offset).limit(paging.limit)
    rows = (await conn.execute(statement)).all()
    reached = select(api_client_accounts.c.client_id, api_client_accounts.c.account_id)
    if paging is not None or client_id is not None:
        reached = reached.where(api_client_accounts.c.client_id.in_([row.id for row in rows]))
    reach: dict[str, list[str]] = {}
    for reaching, account_id in await conn.execute(
        reached.order_by(api_client_accounts.c.account_id)
    ):
        reach.setdefault(reaching, []).append(account_id)
    found = [
        ClientSummary(
            client_id=row.id,
            name=row.name,
            scopes=tuple(row.scopes.split()),
            account_ids=None if row.all_accounts else tuple(reach.get(row.id, ())),
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            rotated_at=row.rotated_at,
        )
        for row in rows
    ]
    given = paging or Paging(len(found), 0)
    return Page(len(found) if count is None else count, given.limit, given.offset, found)


async def list_clients(conn: AsyncConnection) -> list[ClientSummary]:
    """Every client, oldest first, without secrets."""
    return list((await clients_page(conn)).rows)


async def get_client(
    conn: AsyncConnection, client_id: str, *, by: Principal | None = None
) -> ClientSummary:
    """One client ``by`` manages, without secrets; ``not_found`` for any other."""
    found = (await clients_page(conn, by=by, client_id=client_id)).rows
    if not found:
        raise _no_client(client_id, by)
    return found[0]


def _no_client(client_id: str, by: Principal | None) -> NotFound:
    mine = " that you can manage" if by is not None else ""
    return NotFound(f"There is no API client {client_id!r}{mine}.")


async def _managed(conn: AsyncConnection, client_id: str, by: Principal | None) -> Any:
    """The client's row, locked until the unit of work ends, if ``by`` manages it."""
    row = (
        await conn.execute(
            select(api_clients)
            .where(api_clients.c.id == client_id, _within(by))
            .with_for_update(of=api_clients)
        )
    ).one_or_none()
    if row is None:
        raise _no_client(client_id, by)
    return row


async def revoke_client(
    conn: AsyncConnection, client_id: str, *, by: Principal | None = None
) -> datetime:
    """Revoke a client: its key and unexpired tokens stop working from the next request.

    Revoking a revoked client changes nothing and gives its first revocation's time."""
    row = await _managed(conn, client_id, by)
    if row.revoked_at is not None:
        at: datetime = row.revoked_at
        return at
    at = now()
    await conn.execute(
        update(api_clients).where(api_clients.c.id == client_id).values(revoked_at=at)
    )
    for table in (access_tokens, web_sessions, retired_credentials):
        await conn.execute(delete(table).where(table.c.client_id == client_id))
    await _log_client(conn, client_id, "revoked")
    return at


async def rotate_client(
    conn: AsyncConnection,
    client_id: str,
    grace: timedelta = timedelta(0),
    *,
    by: Principal | None = None,
) -> Rotation:
    """Give a client a new secret and key. The old ones, and the tokens and sessions
    obtained before, stop at once, or when ``grace`` (at most :data:`MAX_GRACE`) ends;
    a secret or key replaced earlier stops by then too. A revoked client is ``conflict``."""
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidRequest.field(
            "grace_period_seconds",
            f"must be between 0 and {int(MAX_GRACE.total_seconds())} seconds",
        )
    row = await _managed(conn, client_id, by)
    if row.revoked_at is not None:
        raise Conflict(f"API client {client_id!r} is revoked; create a new client instead.")
    at = now()
    ends = at + grace
    retired = retired_credentials.c
    await conn.execute(
        delete(retired_credentials).where(retired.client_id == client_id, retired.expires_at <= at)
    )
    for table in (retired_credentials, access_tokens, web_sessions):
        mine = table.c.client_id == client_id
        if grace:
            await conn.execute(
                update(table).where(mine, table.c.expires_at > ends).values(expires_at=ends)
            )
        else:
            await conn.execute(delete(table).where(mine))
    if grace:
        await conn.execute(
            insert(retired_credentials),
            [
                {
                    "digest": row.secret_hash,
                    "client_id": client_id,
                    "kind": "secret",
                    "expires_at": ends,
                },
                {
                    "digest": row.api_key_hash,
                    "client_id": client_id,
                    "kind": "api_key",
                    "expires_at": ends,
                },
            ],
        )
    credentials = _new_credentials(client_id)
    await conn.execute(
        update(api_clients)
        .where(api_clients.c.id == client_id)
        .values(
            secret_hash=digest(credentials.client_secret),
            api_key_hash=digest(credentials.api_key),
            rotated_at=at,
        )
    )
    await _log_client(conn, client_id, "rotated", previous_credentials_expire_at=ends)
    return Rotation(credentials, at, ends)


async def issue_token(
    conn: AsyncConnection, client_id: str, client_secret: str, ttl_seconds: int
) -> AccessToken:
    """OAuth2 client credentials: a bearer token for a live client with the right secret.

    Tokens that expired more than :data:`EXPIRED_TOKENS_KEPT` ago are deleted on the way
    (by the index on ``expires_at``: a few rows at a time)."""
    try:
        client = await client_by_secret(conn, client_id, client_secret)
    except InvalidCredentials:
        raise InvalidClient() from None
    issued = now()
    expires_at = ends_by(client, issued + timedelta(seconds=ttl_seconds))
    token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        delete(access_tokens).where(access_tokens.c.expires_at < issued - EXPIRED_TOKENS_KEPT)
    )
    await conn.execute(
        insert(access_tokens).values(
            token_hash=digest(token),
            client_id=client_id,
            issued_at=issued,
            expires_at=expires_at,
        )
    )
    return AccessToken(token, max(0, int((expires_at - issued).total_seconds())))


def ends_by(client: Principal, end: datetime) -> datetime:
    """``end``, or sooner: when the credential that proved the client stops."""
    ends = client.credential_ends
    return end if ends is None else min(end, ends)


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
    if kind != "bearer":
        return await client_by_key(conn, credential)
    rows = await backend_for(conn).fetch_plain(
        conn, _CLIENT_BY_TOKEN, {"credential": digest(credential)}
    )
    if rows and (expires_at := rows[0][6]) is not None and expires_at <= now():
        raise ExpiredToken()
    return principal_of(rows)


async def client_by_key(conn: AsyncConnection, api_key: str) -> Principal:
    """The live client whose API key this is (or was, before a rotation whose grace
    period has not ended), or ``InvalidCredentials``."""
    given = digest(api_key)
    rows = await backend_for(conn).fetch_plain(conn, _CLIENT_BY_KEY, {"credential": given})
    if rows:
        return principal_of(rows)
    retired = (
        await conn.execute(_CLIENT_BY_RETIRED_KEY, {"credential": given, "now": now()})
    ).all()
    return replace(principal_of(retired), credential_ends=retired[0][6])


async def client_by_secret(conn: AsyncConnection, client_id: str, client_secret: str) -> Principal:
    """The live client with this id and secret, or ``InvalidCredentials`` (a wrong id
    costs the same comparison as a wrong secret)."""
    rows = await backend_for(conn).fetch_plain(conn, _CLIENT_WITH_SECRET, {"credential": client_id})
    stored = rows[0][-1] if rows else _DUMMY_DIGEST
    given = digest(client_secret)
    if hmac.compare_digest(stored, given):
        return principal_of(rows)
    if rows:  # a secret a rotation replaced, in its grace period?
        retired = retired_credentials.c
        for replaced, ends in await conn.execute(
            select(retired.digest, retired.expires_at).where(
                retired.client_id == client_id, retired.kind == "secret", retired.expires_at > _NOW
            ),
            {"now": now()},
        ):
            if hmac.compare_digest(replaced, given):
                return replace(principal_of(rows), credential_ends=ends)
    raise InvalidCredentials()


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
