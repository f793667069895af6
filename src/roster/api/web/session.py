"""Who is signed in on the web page, and the checks every form passes.

The browser holds a session id in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
unless the page is plain http on this machine), signed with ``ROSTER_SECRET_KEY`` when
one is set; the database holds its digest (core/sessions.py). The API key a person
signs in with is used once, by the server, and never reaches the page.

Every unsafe request (a POST) must come from this origin (its ``Origin``, or else its
``Referer``) and carry the session's form token, an HMAC of the session id that the page
puts in each form; the cookie's ``SameSite=Strict`` is a third guard. Signing in, before
any session exists, uses a random token of its own, held in a cookie and in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.api.deps import PrimarySnapshotConnection, WriteConnection, charge, services
from roster.api.middleware import request_id_of
from roster.core.auth import Principal
from roster.core.events import Actor, act_as
from roster.core.sessions import session_client
from roster.errors import CredentialError, RosterError

SESSION_COOKIE = "roster_session"
SIGN_IN_COOKIE = "roster_sign_in"
#: The form field (or header, for a script) that carries a form token.
TOKEN_FIELD = "csrf_token"  # noqa: S105 - a field name, not a secret
#: A sign-in form's token is good for this long.
SIGN_IN_SECONDS = 3600
#: Hosts whose plain-http pages may set cookies without ``Secure``: this machine's.
_LOCAL_HOSTS = frozenset(("127.0.0.1", "localhost", "::1"))


class SignedOut(CredentialError):
    """No live session: never signed in, signed out, expired, or its client revoked."""

    status = 401
    type = "signed_out"
    default_message = "Sign in to use the directory."


class ForgedRequest(RosterError):
    """A form that did not come from this site's page, or whose token is stale."""

    status = 403
    type = "forbidden"
    default_message = (
        "This form did not come from this page, or it has expired: reload the page and try again."
    )


def secure_cookies(request: Request) -> bool:
    """Whether cookies must be ``Secure``: always, but for plain http on this machine."""
    return request.url.scheme == "https" or (request.url.hostname or "") not in _LOCAL_HOSTS


def cookie_name(request: Request, name: str) -> str:
    """A ``Secure`` cookie takes the ``__Host-`` prefix: this host, this site's path only."""
    return f"__Host-{name}" if secure_cookies(request) else name


def cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(cookie_name(request, name))


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(request, name),
        value,
        max_age=max_age,
        path="/",
        secure=secure_cookies(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        cookie_name(request, name),
        path="/",
        secure=secure_cookies(request),
        httponly=True,
        samesite="strict",
    )


def _signature(key: str, session_id: str) -> str:
    return hmac.new(key.encode(), session_id.encode(), hashlib.sha256).hexdigest()


def seal(request: Request, session_id: str) -> str:
    """The cookie's value: the session id, signed when the server has a secret key."""
    key = services(request).settings.secret_key
    if key is None:
        return session_id
    return f"{session_id}.{_signature(key.get_secret_value(), session_id)}"


def unseal(request: Request, value: str) -> str | None:
    """The session id of a cookie's value; None when its signature is wrong or missing."""
    key = services(request).settings.secret_key
    if key is None:
        return value
    session_id, _, signature = value.rpartition(".")
    expected = _signature(key.get_secret_value(), session_id)
    return session_id if session_id and hmac.compare_digest(signature, expected) else None


def form_token(session_id: str) -> str:
    """The session's form token: derived from the session id, which only the browser has."""
    return hmac.new(session_id.encode(), b"roster form token", hashlib.sha256).hexdigest()


def same_origin(request: Request) -> bool:
    """Whether an unsafe request says it comes from this origin (``Origin``, else
    ``Referer``); a request that says nothing is refused."""
    said = request.headers.get("origin")
    if said is None or said == "null":
        referer = urlsplit(request.headers.get("referer", ""))
        said = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    return said == f"{request.url.scheme}://{request.url.netloc}"


def sign_in_token(request: Request) -> str:
    """The sign-in form's token: the browser's current one, or a new one."""
    return cookie(request, SIGN_IN_COOKIE) or secrets.token_urlsafe(24)


def good_token(given: object, expected: str | None) -> bool:
    return isinstance(given, str) and expected is not None and hmac.compare_digest(given, expected)


@dataclass(frozen=True)
class Visitor:
    """A signed-in client on the page."""

    principal: Principal
    session_id: str

    @property
    def form_token(self) -> str:
        return form_token(self.session_id)

    @property
    def can_write(self) -> bool:
        return bool({"write", "admin"} & self.principal.scopes)


async def visitor_of(request: Request, conn: AsyncConnection) -> Visitor | None:
    """The visitor whose session cookie this request carries, if it is live."""
    sealed = cookie(request, SESSION_COOKIE)
    session_id = unseal(request, sealed) if sealed else None
    if session_id is None:
        return None
    principal = await session_client(conn, session_id)
    return Visitor(principal, session_id) if principal is not None else None


async def _signed_in(request: Request, conn: AsyncConnection) -> Visitor:
    visitor = await visitor_of(request, conn)
    if visitor is None:
        raise SignedOut()
    await charge(request, visitor.principal.client_id)
    # What this unit of work changes is logged as the signed-in client's doing.
    await act_as(conn, Actor.client(visitor.principal, request_id_of(request.scope)))
    return visitor


async def _reading(request: Request, conn: PrimarySnapshotConnection) -> Visitor:
    return await _signed_in(request, conn)


async def _posting(request: Request, conn: WriteConnection) -> Visitor:
    if not same_origin(request):
        raise ForgedRequest()
    visitor = await _signed_in(request, conn)
    given = (await request.form()).get(TOKEN_FIELD) or request.headers.get("x-csrf-token")
    if not good_token(given, visitor.form_token):
        raise ForgedRequest()
    return visitor


#: The visitor of a page, read in the page's own snapshot.
Reading = Annotated[Visitor, Depends(_reading, scope="function")]
#: The visitor of a form sent to this site: same origin, right token, in the write's unit of work.
Posting = Annotated[Visitor, Depends(_posting, scope="function")]
