"""Liveness and readiness probes: no credentials needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from roster.api.deps import services

router = APIRouter(tags=["Operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database does not answer"}})
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers, 503 otherwise."""
    try:
        async with services(request).engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database means not ready
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format: requests by route and status, latency, database pool use."""
    found = services(request).metrics
    return Response(found.render(), media_type=found.content_type)
