"""Browser sessions of the web page: a signed-in client, kept server-side.

A session id is 256 random bits. The browser holds it (in a cookie); the database holds
only its SHA-256 digest, so a copy of the database signs no one in. Every request
reads the session and its client in one statement: a session of a revoked client, or
one past its end, stops at the next request. Sessions have a fixed lifetime from
sign-in (``ROSTER_TOKEN_TTL_SECONDS``, as a bearer token); signing out deletes one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.auth import Principal, client_with_reach, digest, ends_by, principal_of
from roster.core.clock import now
from roster.db.tables import api_clients, web_sessions
from roster.errors import InvalidCredentials


@dataclass(frozen=True)
class NewSession:
    """A session just started: its id (for the browser only) and when it ends."""

    session_id: str
    expires_at: datetime


#: The client of a live session: one statement for the session and its client's reach.
_SESSION_CLIENT = client_with_reach(
    api_clients.c.id
    == select(web_sessions.c.client_id)
    .where(
        web_sessions.c.id_digest == bindparam("digest"),
        web_sessions.c.expires_at > bindparam("now", type_=web_sessions.c.expires_at.type),
    )
    .scalar_subquery()
)


async def start_session(
    conn: AsyncConnection, principal: Principal, ttl_seconds: int
) -> NewSession:
    """A new session for an authenticated client (ending by the end of the credential it
    signed in with); ended sessions are swept away meanwhile."""
    started = now()
    await conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= started))
    ends = ends_by(principal, started + timedelta(seconds=ttl_seconds))
    session = NewSession(secrets.token_urlsafe(32), ends)
    await conn.execute(
        insert(web_sessions).values(
            id_digest=digest(session.session_id),
            client_id=principal.client_id,
            created_at=started,
            expires_at=session.expires_at,
        )
    )
    return session


async def session_client(conn: AsyncConnection, session_id: str) -> Principal | None:
    """The client of a live session; None for an unknown, ended or revoked one."""
    found = await conn.execute(_SESSION_CLIENT, {"digest": digest(session_id), "now": now()})
    try:
        return principal_of(found.all())
    except InvalidCredentials:
        return None


async def end_session(conn: AsyncConnection, session_id: str) -> None:
    """Sign out: the session is deleted (nothing happens for an unknown one)."""
    await conn.execute(delete(web_sessions).where(web_sessions.c.id_digest == digest(session_id)))
