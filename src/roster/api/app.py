"""``create_app(settings)``: the whole HTTP service, built from one settings object."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from roster import __version__
from roster.api import health, oauth, people, persons, web
from roster.api.deps import Services
from roster.api.errors import install_error_handlers
from roster.api.metrics import Metrics
from roster.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from roster.api.openapi import without_fastapi_validation_errors
from roster.api.ratelimit import ClientRateLimiter
from roster.db.engine import create_engine
from roster.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """A Roster app with its own engine (created lazily, disposed at shutdown)."""
    engine = create_engine(settings)
    services = Services(
        settings=settings,
        engine=engine,
        limiter=ClientRateLimiter(settings.rate_limit, settings.redis_url),
        metrics=Metrics(engine),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await services.engine.dispose()

    app = FastAPI(
        title="Roster",
        version=__version__,
        description="A self-hosted people directory: the Persons API and the People API.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    without_fastapi_validation_errors(app)
    app.include_router(oauth.router)
    app.include_router(persons.router)
    app.include_router(people.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
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
