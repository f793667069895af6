"""The error shape and each status's meaning, for the OpenAPI description."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
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
    403: "Invalid credentials (People API) or a missing scope (insufficient_scope)",
    404: "Not found (not_found, group_not_found, account_not_found)",
    405: "Method not allowed on this path; the Allow header lists the right ones",
    409: "Conflict with an existing record",
    413: "Body over the configured limit (payload_too_large)",
    415: "Body is not JSON (unsupported_media_type)",
    422: "A business rule the request breaks (unprocessable)",
    429: "Over the client's request budget (rate_limited); see Retry-After",
    500: "A fault of ours (internal_error), with the request id",
    503: "The database cannot be reached right now (service_unavailable)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses`` entries for these statuses, all in the error shape."""
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def install(app: FastAPI) -> None:
    """Serve an OpenAPI description without FastAPI's default 422 entries: request
    validation errors here are 400 ``invalid_request`` in the error shape, which
    every operation already documents."""

    def describe() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    default = operation.get("responses", {}).get("422", {})
                    if "HTTPValidationError" in str(default.get("content", "")):
                        del operation["responses"]["422"]
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = describe  # type: ignore[method-assign]
