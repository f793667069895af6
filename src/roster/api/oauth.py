"""``POST /oauth2/token``: the OAuth2 client-credentials grant (RFC 6749 section 4.4).

Its errors follow RFC 6749 section 5.2 (``{"error": "invalid_client"}``), not the
service's own error shape, because OAuth2 client libraries parse them.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from roster.api.deps import WriteConnection, client_address, services
from roster.api.fields import NO_NUL
from roster.api.openapi import error_responses
from roster.api.ratelimit import Budget
from roster.core.auth import InvalidClient, issue_token
from roster.core.fields import UNSTORABLE, storable

router = APIRouter(tags=["Authentication"])
#: The form's fields, as the OpenAPI states them; the endpoint checks them itself, so that
#: every refusal has RFC 6749's shape.
GRANT_TYPE = "client_credentials"
_TEXT = {"type": "string", "minLength": 1, "pattern": NO_NUL}
#: The form as the OpenAPI document states it (RFC 6749 4.4.2; the credentials may come
#: in HTTP Basic instead, 2.3.1). The endpoint reads the form itself, so that every
#: refusal has RFC 6749's shape.
TOKEN_FORM = {
    "type": "object",
    "title": "TokenRequest",
    "properties": {
        "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
        "client_id": {**_TEXT, "description": "Or send both in HTTP Basic instead."},
        "client_secret": {**_TEXT, "description": "Or send both in HTTP Basic instead."},
    },
    "required": ["grant_type", "client_id", "client_secret"],
}


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 token type
    expires_in: int


class OAuthError(BaseModel):
    error: str
    error_description: str | None = None


def _oauth_error(
    status: int, error: str, description: str, retry_after: str | None = None
) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="roster"'
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _form_encoded(content_type: str | None) -> bool:
    """A body the token endpoint reads: form-urlencoded (RFC 6749 4.4.2), or multipart."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


def _too_many_failures(budget: Budget) -> JSONResponse:
    return _oauth_error(
        429,
        "rate_limited",
        "Too many failed authentications from your address; "
        f"retry in {budget.retry_after} seconds.",
        retry_after=budget.retry_after,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """The client id and secret of an HTTP Basic header (form-urlencoded, RFC 6749 2.3.1)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if colon else None


@router.post(
    "/oauth2/token",
    response_model=TokenResponse,
    responses={
        400: {"model": OAuthError, "description": "invalid_request or unsupported_grant_type"},
        401: {"model": OAuthError, "description": "invalid_client"},
        429: {
            "model": OAuthError,
            "description": "rate_limited: too many failed authentications from this address",
        },
        **error_responses(413, 414, 431, 500, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": TOKEN_FORM}},
        }
    },
)
async def token(request: Request, conn: WriteConnection) -> JSONResponse:
    """Exchange client credentials (form fields or HTTP Basic) for a bearer token."""
    form = await request.form() if _form_encoded(request.headers.get("content-type")) else {}
    grant_type, client_id, client_secret = (
        value if isinstance(value := form.get(name), str) else None
        for name in ("grant_type", "client_id", "client_secret")
    )
    basic = _basic_credentials(request.headers.get("authorization"))
    for name, value in (
        ("grant_type", grant_type),
        ("client_id", client_id if basic is None else basic[0]),
        ("client_secret", client_secret if basic is None else basic[1]),
    ):
        if value is not None and not storable(value):
            return _oauth_error(400, "invalid_request", f"{name} {UNSTORABLE}.")
    if grant_type is None:
        if not _form_encoded(request.headers.get("content-type")):
            return _oauth_error(
                400,
                "invalid_request",
                "Send a form-encoded body (application/x-www-form-urlencoded) with grant_type, "
                "client_id and client_secret, not "
                f"{request.headers.get('content-type') or 'a body without a Content-Type'}.",
            )
        return _oauth_error(400, "invalid_request", "grant_type is required.")
    if grant_type != GRANT_TYPE:
        return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    if basic is not None and (client_id or client_secret):
        return _oauth_error(400, "invalid_request", "Send the client credentials one way only.")
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        return _oauth_error(400, "invalid_request", "client_id and client_secret are required.")
    found = services(request)
    address = client_address(request)
    refused = found.auth_failures.refusal(address)
    if refused is not None:
        return _too_many_failures(refused)
    try:
        issued = await issue_token(conn, client_id, client_secret, found.settings.token_ttl_seconds)
    except InvalidClient:
        failures = await found.auth_failures.failed(address)
        if not failures.allowed:
            return _too_many_failures(failures)
        return _oauth_error(401, "invalid_client", "Client authentication failed.")
    return JSONResponse(
        TokenResponse(access_token=issued.access_token, expires_in=issued.expires_in).model_dump(),
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
