"""``create_app(settings)``: the whole HTTP service, built from one settings object."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from roster import __version__
from roster.api import admin, erasure, events, health, oauth, people, persons, web, webhooks
from roster.api.deps import Services
from roster.api.docs import install_docs
from roster.api.errors import install_error_handlers
from roster.api.metrics import Metrics
from roster.api.middleware import (
    ReplicaRetryMiddleware,
    RequestContextMiddleware,
    RequestLimitsMiddleware,
)
from roster.api.openapi import (
    declaring_credentials,
    operation_id,
    without_fastapi_validation_errors,
)
from roster.api.ratelimit import AuthFailureLimiter, ClientRateLimiter, SharedWindows
from roster.api.scim import bulk as scim_bulk  # noqa: F401  (its routes)
from roster.api.scim import groups as scim_groups  # noqa: F401  (its routes)
from roster.api.scim import routes as scim
from roster.db.engine import create_engine, listing_engine
from roster.db.replicas import ReplicaSet
from roster.settings import Settings

#: What a browser page on an allowed origin may send, and read from the answers.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_EXPOSED_HEADERS = (
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
    "X-Request-ID",
)


class AllowedOriginsOnly(CORSMiddleware):
    """Starlette's CORS, without the ``Access-Control-Expose-Headers`` it puts on answers
    to origins it does not allow: those, and requests that name no origin (Starlette 1.x
    hands them here too), get no CORS header at all."""

    async def simple_response(
        self, scope: Scope, receive: Receive, send: Send, request_headers: Headers
    ) -> None:
        origin = request_headers.get("origin")
        if origin is not None and self.is_allowed_origin(origin):
            await super().simple_response(scope, receive, send, request_headers)
        else:
            await self.app(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    """A Roster app with its own engine (created lazily, disposed at shutdown)."""
    engine = create_engine(settings, statement_timeout=settings.database_statement_timeout_seconds)
    shared = SharedWindows(settings.redis_url) if settings.redis_url else None
    replicas = ReplicaSet(settings, engine)
    services = Services(
        settings=settings,
        engine=engine,
        replicas=replicas,
        listing_engine=listing_engine(settings, engine),
        limiter=ClientRateLimiter(settings.rate_limit, shared),
        auth_failures=AuthFailureLimiter(settings.auth_failure_limit, shared),
        metrics=Metrics(engine, replicas),
        deliverer=webhooks.deliverer(settings, engine) if settings.webhook_delivery else None,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await replicas.start()
        pruning = asyncio.create_task(
            events.prune_daily(services.engine, settings.event_retention_days)
        )
        delivering = (
            asyncio.create_task(services.deliverer.run())
            if services.deliverer is not None
            else None
        )
        yield
        pruning.cancel()
        if delivering is not None:
            delivering.cancel()
            await asyncio.gather(delivering, return_exceptions=True)
        await replicas.stop()
        await services.engine.dispose()
        await services.listing_engine.dispose()

    app = FastAPI(
        title="Roster",
        version=__version__,
        description="A self-hosted people directory: the Persons API and the People API.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by install_docs, from Roster's own files
        redoc_url=None,  # ReDoc would load its script from a CDN
    )
    app.state.services = services
    install_error_handlers(app)
    without_fastapi_validation_errors(app)
    declaring_credentials(app)
    app.include_router(scim.router)  # first: it turns every other path away at once
    app.include_router(oauth.router)
    app.include_router(persons.router)
    app.include_router(people.router)
    app.include_router(events.router)
    app.include_router(erasure.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    install_docs(app)
    app.include_router(web.router)
    if settings.database_replica_urls:
        app.add_middleware(ReplicaRetryMiddleware)
    app.add_middleware(RequestLimitsMiddleware, max_body_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        # Inside the request context, so preflights get a request id and a log line too.
        app.add_middleware(
            AllowedOriginsOnly,
            allow_origins=list(settings.cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=list(CORS_EXPOSED_HEADERS),
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, metrics=services.metrics)
    return app


def tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a server that streams large pages.

    The objects alive at start (modules, the app, SQLAlchemy's tables) are frozen out of
    the collector's generations, and a collection starts after 50,000 new objects, not
    700: a chunk of rows is garbage well before that. On a 100,000-row page with every
    embed, the collector took 2 s of 7.5 s with the defaults and none with these
    (docs/operations.md). Only reference cycles wait longer to be freed.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def app_from_environment() -> FastAPI:
    """The app uvicorn's workers build (``roster serve``): settings from the environment."""
    from roster.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tune_garbage_collector()  # a server process's own setting, once the app is built
    return app
