"""The one family of errors: each knows its HTTP status, its type code and a message.

Core functions raise these; the API layer renders them in the shape of spec/README.md.
An API whose contract gives a different status for the same fault (the two seeds
disagree about credentials) re-raises with :meth:`RosterError.with_status`.

Core names a field by its core name (``email_address``, see core/fields.py), in a
problem's ``field`` and in a message built by a function of the naming; each door
renders the error with its own names (:meth:`RosterError.body`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

#: How a door names a field, given its core name.
Naming = Callable[[str], str]
#: A message, or how to write it with a door's names for the fields it mentions.
Message = str | Callable[[Naming], str]


def as_is(name: str) -> str:
    """Core's own naming (the command line's too)."""
    return name


@dataclass(frozen=True)
class Problem:
    """One field-level complaint, rendered as ``{"field": ..., "problem": ...}``."""

    field: str
    problem: str
    #: ``field`` is core's name for it, which each door renders as its own; false when a
    #: door named it (a parameter as the client sent it), which is shown as it is.
    core: bool = True

    def named(self, naming: Naming) -> str:
        return naming(self.field) if self.core else self.field


class RosterError(Exception):
    """Base of every error the service answers on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong on our side."

    def __init__(
        self,
        message: Message | None = None,
        *,
        details: Sequence[Problem] = (),
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self._message = message or self.default_message
        self.details = tuple(details)
        self.headers = dict(headers or {})
        self.status_code = status if status is not None else self.status
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The message, naming fields by their core names."""
        return self.message_in(as_is)

    def message_in(self, naming: Naming) -> str:
        """The message, naming fields as a door does."""
        return self._message(naming) if callable(self._message) else self._message

    @classmethod
    def saying(
        cls, say: Callable[[Naming], str], fields: Sequence[str] = (), problem: str = ""
    ) -> Self:
        """The error whose message ``say`` writes with a door's names for the fields, and
        whose details blame ``fields`` (core names) with ``problem``."""
        return cls(say, details=[Problem(field, problem) for field in fields])

    def with_status(self, status: int) -> RosterError:
        """The same error, answered with another status (an API's own contract)."""
        answered = copy.copy(self)
        answered.status_code = status
        return answered

    def body(self, naming: Naming = as_is) -> dict[str, object]:
        """The JSON body of the error shape, with a door's names for the fields."""
        error: dict[str, object] = {"type": self.type, "message": self.message_in(naming)}
        if self.details:
            error["details"] = [
                {"field": d.named(naming), "problem": d.problem} for d in self.details
            ]
        return {"error": error}


class InvalidRequest(RosterError):
    status = 400
    type = "invalid_request"
    default_message = "The request is malformed."

    @classmethod
    def field(cls, field: str, problem: str, *, core: bool = True) -> InvalidRequest:
        """A malformed request blamed on one field or parameter, by its core name (or, not
        ``core``, by the name a door gave it)."""
        return cls(blamed_on(field, problem, core=core), details=[Problem(field, problem, core)])


def blamed_on(field: str, problem: str, *, core: bool = True) -> Message:
    """The message of a request blamed on one field: ``Invalid email_address: ...``."""
    if not core:
        return f"Invalid {field}: {problem}."
    return lambda name: f"Invalid {name(field)}: {problem}."


class BothGroupIdentifiersProvided(InvalidRequest):
    type = "both_group_identifiers_provided"
    default_message = (
        "You have provided both group ids and group external references for the find persons "
        "operation. Please only provide one of the two."
    )


class CredentialError(RosterError):
    """A caller that could not be authenticated; each API picks the status."""

    status = 401


class MissingCredentials(CredentialError):
    type = "missing_authorization"
    default_message = (
        "Your request does not include an 'Authorization' header with a bearer token "
        "for your account."
    )


class ExpiredToken(CredentialError):
    type = "expired_token"
    default_message = (
        "The bearer token you have provided in the 'Authorization' header has expired. "
        "Please obtain a new one."
    )


class InvalidCredentials(CredentialError):
    type = "invalid_authorization"
    status = 403
    default_message = "The bearer token you have provided in the 'Authorization' header is invalid."


class InsufficientScope(RosterError):
    status = 403
    type = "insufficient_scope"
    default_message = "Your API client does not have the scope this call needs."

    @classmethod
    def needing(cls, scope: str) -> InsufficientScope:
        return cls(f"This call needs the '{scope}' scope, which your API client does not have.")


class OutOfReach(RosterError):
    """An admin client asking for more than it reaches itself: a client of every account,
    or a new account (the admin API)."""

    status = 403
    type = "insufficient_reach"
    default_message = "Your API client does not reach every account this call needs."


class NotFound(RosterError):
    status = 404
    type = "not_found"
    default_message = "There are no person records matching the information provided."


class GroupNotFound(NotFound):
    type = "group_not_found"
    default_message = "A group you named does not exist or is not reachable with your credentials."


class AccountNotFound(NotFound):
    type = "account_not_found"
    default_message = "The account does not exist or is not reachable with your credentials."


class MethodNotAllowed(RosterError):
    status = 405
    type = "method_not_allowed"
    default_message = "This method is not allowed on this path."


class Conflict(RosterError):
    status = 409
    type = "conflict"
    default_message = "The request conflicts with an existing record."


class PayloadTooLarge(RosterError):
    status = 413
    type = "payload_too_large"
    default_message = "The request body is larger than this server accepts."


class UriTooLong(RosterError):
    status = 414
    type = "uri_too_long"
    default_message = "The request's URL is longer than this server accepts."


class RequestHeaderFieldsTooLarge(RosterError):
    status = 431
    type = "request_header_fields_too_large"
    default_message = "The request's headers are larger than this server accepts."


class UnsupportedMediaType(RosterError):
    status = 415
    type = "unsupported_media_type"
    default_message = "The request body must be JSON, sent with 'Content-Type: application/json'."


class Unprocessable(RosterError):
    status = 422
    type = "unprocessable"
    default_message = "The request is well formed but breaks a rule of the directory."


class RateLimited(RosterError):
    status = 429
    type = "rate_limited"
    default_message = "You have made too many requests. Please slow down."


class ServiceUnavailable(RosterError):
    status = 503
    type = "service_unavailable"
    default_message = "The directory's database cannot be reached right now. Please retry shortly."
