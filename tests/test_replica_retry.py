"""ReplicaRetryMiddleware: a read whose replica failed under it is served again before
any of its answer is sent, with the body the route read replayed; nothing else is."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from roster.api.middleware import RETRY_ON_PRIMARY, ReplicaRetryMiddleware


def flaky_app(failures: int) -> tuple[ReplicaRetryMiddleware, list[object]]:
    """An app whose first ``failures`` requests fail as a read on a dying replica does
    (the flag, then a 503); the bodies each attempt read."""
    seen: list[object] = []

    async def echo(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        if len(seen) <= failures:
            setattr(request.state, RETRY_ON_PRIMARY, True)
            return JSONResponse({"error": "replica gone"}, status_code=503)
        return JSONResponse({"echo": body, "read_from": getattr(request.state, "read_from", None)})

    async def replica_read(request: Request) -> JSONResponse:
        request.state.read_from = "replica"
        return await echo(request)

    app = Starlette(routes=[Route("/find", replica_read, methods=["POST"])])
    return ReplicaRetryMiddleware(app), seen


async def post(app: ReplicaRetryMiddleware, body: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with (
        asyncio.timeout(5),  # a body not replayed leaves the route waiting for it
        httpx.AsyncClient(transport=transport, base_url="http://roster") as http,
    ):
        return await http.post("/find", json=body)


async def test_a_read_that_met_a_dying_replica_is_served_again_with_its_body() -> None:
    app, seen = flaky_app(failures=1)
    answer = await post(app, {"email_address": "ann@example.com"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["echo"] == {"email_address": "ann@example.com"}
    assert seen == [{"email_address": "ann@example.com"}] * 2  # the body, replayed


async def test_it_is_served_again_once_only() -> None:
    app, seen = flaky_app(failures=2)
    answer = await post(app, {"n": 1})
    assert answer.status_code == 503  # the second failure is the answer
    assert answer.json() == {"error": "replica gone"}
    assert len(seen) == 2


async def test_an_error_without_the_flag_is_answered_as_it_is() -> None:
    seen: list[int] = []

    async def failing(request: Request) -> JSONResponse:
        seen.append(1)
        return JSONResponse({"error": "primary gone"}, status_code=503)

    app = ReplicaRetryMiddleware(Starlette(routes=[Route("/find", failing, methods=["POST"])]))
    answer = await post(app, {})
    assert (answer.status_code, answer.json(), seen) == (503, {"error": "primary gone"}, [1])
