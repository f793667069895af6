"""The OpenAPI description's own parts: the error shape and each status's meaning, the
operation ids, and the credentials (security schemes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    field: str
    problem: str


class ErrorContent(BaseModel):
    type: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    """Every error: ``{"error": {"type", "message", "details"?}}``."""

    error: ErrorContent


_MEANING = {
    400: "Malformed request (invalid_request), or a missing credential on the Persons API",
    401: "Missing, expired or invalid credentials (see the API's credential contract)",
    403: (
        "Invalid credentials (People API), a missing scope (insufficient_scope), a change "
        "to a person shared with accounts the client cannot reach (shared_person), or an "
        "admin call needing a client of every account (insufficient_reach)"
    ),
    404: "Not found (not_found, group_not_found, account_not_found)",
    405: "Method not allowed on this path; the Allow header lists the right ones",
    409: "Conflict with an existing record",
    410: "Events after this id are no longer kept (events_expired): read the directory again",
    413: "Body over the configured limit (payload_too_large)",
    414: "URL over 65,535 bytes (uri_too_long)",
    415: "Body is not JSON (unsupported_media_type)",
    422: "A business rule the request breaks (unprocessable)",
    429: (
        "Over the client's request budget, or too many failed authentications from this "
        "address (rate_limited); see Retry-After"
    ),
    431: "Header names and values over 32 KiB (request_header_fields_too_large)",
    500: "A fault of ours (internal_error), with the request id",
    503: (
        "The database cannot be reached or is too busy right now (service_unavailable); "
        "see Retry-After"
    ),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` entries for these statuses, all in the error shape."""
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def without_fastapi_validation_errors(app: FastAPI) -> None:
    """Drop the ``422 Validation Error`` FastAPI documents on every route with parameters:
    Roster answers a malformed request with ``400 invalid_request``, and 422 only for a
    broken business rule, where a route says so.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for operations in schema["paths"].values():
                for operation in operations.values():
                    responses = operation.get("responses", {})
                    if responses.get("422", {}).get("description") == "Validation Error":
                        del responses["422"]
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


#: Each operation's id, which generated clients name their functions after.
OPERATION_IDS = {
    ("POST", "/oauth2/token"): "issueToken",
    ("POST", "/persons/find/"): "findPersons",
    ("POST", "/persons/multiple/"): "upsertPersons",
    ("GET", "/people"): "listPeople",
    ("POST", "/people"): "createPerson",
    ("PATCH", "/people/{personId}"): "updatePerson",
    ("PATCH", "/personas/{personaId}"): "updatePersona",
    ("DELETE", "/personas/{personaId}"): "deletePersona",
    ("PATCH", "/personas/{personaId}/role"): "changePersonaRole",
    ("GET", "/roles"): "listRoles",
    ("POST", "/roles"): "createRole",
    ("GET", "/teams"): "listTeams",
    ("POST", "/teams"): "createTeam",
    ("PUT", "/teams/{teamId}/members/{personaId}"): "addTeamMember",
    ("DELETE", "/teams/{teamId}/members/{personaId}"): "removeTeamMember",
    ("GET", "/budgets"): "listBudgets",
    ("POST", "/budgets"): "createBudget",
    ("POST", "/addresses"): "createAddress",
    ("GET", "/accounts"): "listAccounts",
    ("POST", "/accounts"): "createAccount",
    ("GET", "/accounts/{accountId}"): "getAccount",
    ("PATCH", "/accounts/{accountId}"): "updateAccount",
    ("GET", "/clients"): "listClients",
    ("POST", "/clients"): "createClient",
    ("GET", "/clients/{clientId}"): "getClient",
    ("POST", "/clients/{clientId}/revoke"): "revokeClient",
    ("POST", "/clients/{clientId}/rotate"): "rotateClient",
    ("GET", "/healthz"): "checkHealth",
    ("GET", "/readyz"): "checkReadiness",
    ("GET", "/metrics"): "getMetrics",
}


def operation_id(route: APIRoute) -> str:
    """The route's id from :data:`OPERATION_IDS`; else its function's name in camelCase
    (``list_widgets`` -> ``listWidgets``), never FastAPI's ``list_widgets_widgets_get``."""
    for method in sorted(route.methods or ()):
        if (method, route.path) in OPERATION_IDS:
            return OPERATION_IDS[(method, route.path)]
    return re.sub(r"_+([a-z0-9])", lambda m: m.group(1).upper(), route.name)


#: The credentials every authenticated operation takes, as the OpenAPI describes them
#: (an Authorize button, and generated clients that send them). Only described: the
#: header is parsed by authentication itself (core/auth.py), and these are no
#: dependencies, which FastAPI would run for every request (about 4% of a find's CPU).
BEARER = HTTPBearer(
    scheme_name="bearerToken",
    description="A token from POST /oauth2/token, or an API key: `Authorization: Bearer ...`.",
    auto_error=False,
)
API_KEY = APIKeyHeader(
    name="Authorization",
    scheme_name="apiKey",
    description="An API key: `Authorization: ApiKey rk_...`, or the bare key.",
    auto_error=False,
)

#: The attribute that marks a dependency authenticating the caller (api/deps.py).
_TAKES_CREDENTIALS = "roster_takes_credentials"
Call = TypeVar("Call", bound=Callable[..., Any])


def takes_credentials(call: Call) -> Call:
    """Mark ``call``, a dependency, as one that authenticates the caller: every operation
    that depends on it is described as taking :data:`BEARER` or :data:`API_KEY`."""
    setattr(call, _TAKES_CREDENTIALS, True)
    return call


def _authenticates(dependant: Dependant) -> bool:
    return any(
        getattr(each.call, _TAKES_CREDENTIALS, False) or _authenticates(each)
        for each in dependant.dependencies
    )


def declaring_credentials(app: FastAPI) -> None:
    """Describe the credentials of each operation that authenticates its caller (a
    dependency marked :func:`takes_credentials`): the security schemes, and each such
    operation's ``security``, either scheme."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
            taken: list[dict[str, list[str]]] = []
            for scheme in (BEARER, API_KEY):
                schemes[scheme.scheme_name] = jsonable_encoder(
                    scheme.model, by_alias=True, exclude_none=True
                )
                taken.append({scheme.scheme_name: []})
            # Every route as FastAPI describes it (those of included routers too).
            for route in iter_route_contexts(app.routes):
                if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
                    continue
                if _authenticates(route.original_route.dependant):
                    operations = schema["paths"][route.path_format]
                    for method in route.methods or ():
                        operations[method.lower()]["security"] = taken
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
