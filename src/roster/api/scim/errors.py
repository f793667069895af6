"""SCIM's error body (RFC 7644 §3.12), which every answer under ``/scim/`` gives instead of
Roster's own error shape, whoever raised the error (a route, the app, the middleware)."""

from __future__ import annotations

from typing import ClassVar

import orjson

from roster.errors import Conflict, InvalidRequest, Naming, RosterError

SCIM_PREFIX = "/scim/"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"


def is_scim_path(path: str) -> bool:
    return path.startswith(SCIM_PREFIX)


class ScimInvalid(InvalidRequest):
    """A 400 with its SCIM ``scimType``."""

    scim_type: ClassVar[str] = "invalidValue"


class InvalidFilter(ScimInvalid):
    type = "invalid_filter"
    scim_type = "invalidFilter"


class InvalidSyntax(ScimInvalid):
    type = "invalid_syntax"
    scim_type = "invalidSyntax"


class InvalidPath(ScimInvalid):
    type = "invalid_path"
    scim_type = "invalidPath"


class InvalidCursor(ScimInvalid):
    type = "invalid_cursor"
    scim_type = "invalidCursor"  # RFC 9865


class NoTarget(ScimInvalid):
    type = "no_target"
    scim_type = "noTarget"


class Uniqueness(Conflict):
    type = "uniqueness"


class PreconditionFailed(RosterError):
    status = 412
    type = "precondition_failed"
    default_message = "The resource has changed since the version named in If-Match."


def scim_type_of(error: RosterError, status: int) -> str | None:
    """The ``scimType`` of an error: its own, else the one its status implies."""
    own: str | None = getattr(error, "scim_type", None)
    if own is not None:
        return own
    if status == 400:
        return "invalidValue"
    if status == 409:
        return "uniqueness"
    return None


def scim_error_parts(error: RosterError, naming: Naming) -> tuple[int, dict[str, str], bytes]:
    """Status, extra headers and body of an error on a SCIM path. A 422 of the core (a
    rule of the directory, such as an unknown role) is SCIM's 400 ``invalidValue``."""
    status = 400 if error.status_code == 422 else error.status_code
    body: dict[str, object] = {
        "schemas": [ERROR_SCHEMA],
        "status": str(status),
        "detail": error.message_in(naming),
    }
    scim_type = scim_type_of(error, status)
    if scim_type is not None:
        body["scimType"] = scim_type
    headers = {"WWW-Authenticate": 'Bearer realm="roster"'} if status == 401 else {}
    return status, headers, orjson.dumps(body)
