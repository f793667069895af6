"""The one family of errors: each knows its HTTP status, its type code and a message.

Core functions raise these; the API layer renders them in the shape of spec/README.md.
An API whose contract gives a different status for the same fault (the two seeds
disagree about credentials) re-raises with :meth:`RosterError.with_status`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self


@dataclass(frozen=True)
class Problem:
    """One field-level complaint, rendered as ``{"field": ..., "problem": ...}``."""

    field: str
    problem: str


class RosterError(Exception):
    """Base of every error the service answers on purpose."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "Something went wrong on our side."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[Problem] = (),
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = tuple(details)
        self.headers = dict(headers or {})
        self.status_code = status if status is not None else self.status
        super().__init__(self.message)

    def with_status(self, status: int) -> RosterError:
        """The same error, answered with another status (an API's own contract)."""
        return type(self)(self.message, details=self.details, headers=self.headers, status=status)

    def body(self) -> dict[str, object]:
        """The JSON body of the error shape."""
        error: dict[str, object] = {"type": self.type, "message": self.message}
        if self.details:
            error["details"] = [{"field": d.field, "problem": d.problem} for d in self.details]
        return {"error": error}


#: How a door names a core field (the People API says ``emailAddress``).
FieldNames = Callable[[str], str]


def core_name(name: str) -> str:
    return name


class NamesFields(RosterError):
    """An error whose message names fields: the core names them by their core names
    (``email_address``), and each door renames them as its API does (:meth:`named`)."""

    _say: Callable[[FieldNames], str] | None = None
    _fields: tuple[str, ...] = ()
    _problem: str = ""

    @classmethod
    def saying(
        cls,
        say: Callable[[FieldNames], str],
        fields: Sequence[str] = (),
        problem: str = "",
        names: FieldNames = core_name,
    ) -> Self:
        """The error whose message ``say`` writes with the field names a door gives."""
        error = cls(say(names), details=[Problem(names(f), problem) for f in fields])
        error._say, error._fields, error._problem = say, tuple(fields), problem
        return error

    def named(self, names: FieldNames) -> RosterError:
        """The same error, its fields named by ``names``."""
        if self._say is None:
            return self
        return self.saying(self._say, self._fields, self._problem, names)


class InvalidRequest(RosterError):
    status = 400
    type = "invalid_request"
    default_message = "The request is malformed."

    @classmethod
    def field(cls, field: str, problem: str) -> InvalidRequest:
        """A malformed request blamed on one named field or parameter."""
        return cls(f"Invalid {field}: {problem}.", details=[Problem(field, problem)])


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
