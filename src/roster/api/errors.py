"""Every error leaves in the one shape of spec/README.md."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from roster.api.middleware import error_response_parts, request_id_of
from roster.db.backends import DATABASE_ERRORS, Outage, outage
from roster.errors import (
    InvalidRequest,
    MethodNotAllowed,
    Naming,
    NotFound,
    Problem,
    RosterError,
    ServiceUnavailable,
    as_is,
)

log = logging.getLogger("roster.http")


def naming_route(naming: Naming) -> type[APIRoute]:
    """The route class of an API whose errors name fields as ``naming`` does (core errors
    name them by their core names, errors/fields of a door by the door's own)."""

    class NamingRoute(APIRoute):
        field_naming = staticmethod(naming)

    return NamingRoute


def render(error: RosterError, request: Request) -> Response:
    naming = getattr(request.scope.get("route"), "field_naming", as_is)
    status, headers, body = error_response_parts(
        error, request_id_of(request.scope), naming, request.scope.get("path", "")
    )
    response = Response(content=body, status_code=status)
    response.raw_headers = headers
    return response


def _location(loc: tuple[int | str, ...]) -> str:
    """``("body", "persons", 3, "first_name")`` -> ``persons[3].first_name``."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    return name or "body"


def _problem(error: dict[str, Any]) -> Problem:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        known = "parameter" if error["loc"][0] == "query" else "field"
        return Problem(_location(error["loc"]), f"is not a known {known}", core=False)
    if kind == "missing":
        return Problem(_location(error["loc"]), "is required", core=False)
    if kind == "json_invalid":
        malformed = error.get("ctx", {}).get("error", "malformed")
        return Problem("body", f"is not valid JSON ({malformed})", core=False)
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    return Problem(_location(error["loc"]), message[:1].lower() + message[1:], core=False)


def validation_error(exc: RequestValidationError) -> InvalidRequest:
    """A 400 naming every field or parameter that was wrong."""
    problems = [_problem(e) for e in exc.errors()]
    if problems and problems[0].field == "body" and problems[0].problem.startswith("is not valid"):
        message = "The request body is not valid JSON."
    else:
        named = ", ".join(dict.fromkeys(p.field for p in problems))
        message = f"Invalid request: check {named}."
    return InvalidRequest(message, details=problems)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette only reports the first route)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


#: Faults of the database (or of reaching it), answered 503 or 500 by :func:`fault_error`.
DATABASE_FAULTS = DATABASE_ERRORS


def unavailable(found: Outage) -> ServiceUnavailable:
    """The 503 for a database that cannot serve now; clients may retry after a second."""
    message = (
        "The directory's database is too busy to answer in time. Please retry shortly."
        if found is Outage.BUSY
        else None
    )
    return ServiceUnavailable(message, headers={"Retry-After": "1"})


def fault_error(request: Request, exc: Exception) -> RosterError:
    """The error a database fault is answered with (logged here): 503 while the database
    cannot serve (``roster.db.backends.outage``), else 500 with the request id."""
    request_id = request_id_of(request.scope)
    found = outage(exc)
    if found is None:
        log.error("database fault", exc_info=exc, extra={"request_id": request_id})
        return RosterError(f"Something went wrong on our side. Request id: {request_id}.")
    # The kind of fault only: a driver's message can quote the values sent.
    log.warning(
        "database unavailable",
        extra={"request_id": request_id, "outage": found.value, "error": type(exc).__name__},
    )
    return unavailable(found)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RosterError)
    async def _roster_error(request: Request, exc: RosterError) -> Response:
        return render(exc, request)

    async def _database_fault(request: Request, exc: Exception) -> Response:
        return render(fault_error(request, exc), request)

    for fault in DATABASE_FAULTS:
        app.add_exception_handler(fault, _database_fault)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(validation_error(exc), request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if isinstance(exc.__cause__, RosterError):
            return render(exc.__cause__, request)
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            return render(
                MethodNotAllowed(
                    f"{request.method} is not allowed on {request.url.path}; use {allow}.",
                    headers={"Allow": allow},
                ),
                request,
            )
        if exc.status_code == 404:
            return render(NotFound(f"There is no endpoint at {request.url.path}."), request)
        if exc.status_code == 400:
            return render(InvalidRequest(str(exc.detail)), request)
        error = RosterError(str(exc.detail), status=exc.status_code)
        return render(error, request)
