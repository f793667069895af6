"""Liveness and readiness probes (no credentials), and the Prometheus metrics (a token
when ``ROSTER_METRICS_TOKEN`` is set)."""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from sqlalchemy import text

from roster.api.deps import services
from roster.api.openapi import error_responses
from roster.errors import InvalidCredentials, MissingCredentials

router = APIRouter(tags=["Operations"])


class Health(BaseModel):
    status: Literal["ok"]


class ReplicaReadiness(BaseModel):
    """A streaming replica as this process last polled it (docs/scaling.md)."""

    replica: str
    state: Literal["starting", "serving", "lagging", "down"]
    lag_seconds: float | None


class Readiness(BaseModel):
    """Whether the database answers: ``ok``, or ``unavailable`` with a 503. Replicas
    are capacity, not a condition: a replica down or behind is listed, still 200."""

    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unreachable"]
    replicas: list[ReplicaReadiness] = []


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database does not answer"}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 otherwise; each replica's state and lag."""
    shared = services(request)
    replicas = [
        ReplicaReadiness(replica=r.name, state=r.state, lag_seconds=r.lag_seconds)
        for r in shared.replicas.replicas
    ]
    try:
        async with shared.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means not ready
        answer = Readiness(status="unavailable", database="unreachable", replicas=replicas)
        status = 503
    else:
        answer, status = Readiness(status="ok", database="ok", replicas=replicas), 200
    return JSONResponse(answer.model_dump(exclude_defaults=not replicas), status_code=status)


METRICS_TOKEN = HTTPBearer(
    scheme_name="metricsToken",
    description="ROSTER_METRICS_TOKEN, when the operator set one.",
    auto_error=False,
)
_BEARER_PREFIX = "bearer "


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format (version 0.0.4)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 403),
    },
    # Appended to the token FastAPI lists: without ROSTER_METRICS_TOKEN none is needed.
    openapi_extra={"security": [{}]},
)
async def metrics(request: Request, _token: object = Security(METRICS_TOKEN)) -> Response:
    """Prometheus text format: requests by route and status, latency, database pool use."""
    found = services(request)
    expected = found.settings.metrics_token
    if expected is not None:
        _check_metrics_token(request.headers.get("authorization"), expected.get_secret_value())
    return Response(found.metrics.render(), media_type=found.metrics.content_type)


def _check_metrics_token(header: str | None, expected: str) -> None:
    """``Authorization: Bearer <ROSTER_METRICS_TOKEN>``, compared in constant time."""
    challenge = {"WWW-Authenticate": 'Bearer realm="metrics"'}
    if not header:
        raise MissingCredentials(
            "The metrics need 'Authorization: Bearer <ROSTER_METRICS_TOKEN>'.", headers=challenge
        )
    given = header[len(_BEARER_PREFIX) :] if header.lower().startswith(_BEARER_PREFIX) else ""
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise InvalidCredentials("The metrics token is not the one configured.", headers=challenge)
